"""Google Calendar (API v3) provider adapter."""

from calsync.providers.google.adapter import SYNC_PREFIX, GoogleCalendarProvider
from calsync.providers.google.kind import KIND_SPEC

__all__ = ["KIND_SPEC", "SYNC_PREFIX", "GoogleCalendarProvider"]
