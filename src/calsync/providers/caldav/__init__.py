"""CalDAV provider adapter (RFC 4791 / 6578 / 6764), built on a small httpx WebDAV client."""

from calsync.providers.caldav.adapter import CalDavProvider

__all__ = ["CalDavProvider"]
