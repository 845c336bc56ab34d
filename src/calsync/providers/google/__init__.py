"""Google Calendar (API v3) provider adapter."""

from calsync.providers.google.adapter import SYNC_PREFIX, GoogleCalendarProvider

__all__ = ["SYNC_PREFIX", "GoogleCalendarProvider"]
