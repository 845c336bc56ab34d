"""CalDAV provider adapter (RFC 4791 / 6578 / 6764), built on a small httpx WebDAV client."""

from calsync.providers.caldav.adapter import CalDavProvider
from calsync.providers.caldav.kind import KIND_SPEC

__all__ = ["KIND_SPEC", "CalDavProvider"]
