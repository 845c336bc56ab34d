"""Microsoft Graph provider adapter (Microsoft 365 / Outlook.com calendars, OAuth bearer)."""

from calsync.providers.microsoft.adapter import (
    CURSOR_PREFIX,
    DEFAULT_API_URL,
    GraphCalendarProvider,
)
from calsync.providers.microsoft.convert import EXPORT_PROPERTY_ID, event_to_ical
from calsync.providers.microsoft.kind import KIND_SPEC
from calsync.providers.microsoft.push import MAX_LIFETIME, GraphPushChannels

__all__ = [
    "CURSOR_PREFIX",
    "DEFAULT_API_URL",
    "EXPORT_PROPERTY_ID",
    "KIND_SPEC",
    "MAX_LIFETIME",
    "GraphCalendarProvider",
    "GraphPushChannels",
    "event_to_ical",
]
