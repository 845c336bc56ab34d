"""iCalendar feeds as a provider kind: a schedule subscribes to a feed URL (import only)."""

from __future__ import annotations

from calsync.domain import (
    CalendarType,
    ConnectMethod,
    ListEventFromCalendars,
    ProviderFeatures,
    ProviderKind,
    SyncToCalendar,
)
from calsync.providers.base import CalendarProvider
from calsync.providers.ics.adapter import IcsFeedProvider
from calsync.providers.kinds import AdapterSettings, ProviderConfig, ProviderKindSpec

ICS_FEATURES = ProviderFeatures(
    connect_methods=(ConnectMethod.CREDENTIALS,),
    update_sync_config=True,
    list_event_from_calendars=ListEventFromCalendars.PRIMARY_CALENDAR_ONLY,
    sync_to_calendar=SyncToCalendar.NOT_SUPPORTED,
)


def build_adapter(provider: ProviderConfig, settings: AdapterSettings) -> CalendarProvider:
    return IcsFeedProvider(timeout=settings.timeout, allow_private=settings.feed_allow_private)


KIND_SPEC = ProviderKindSpec(
    kind=ProviderKind.ICS,
    default_name="Calendar feed",
    calendar_type=CalendarType.OTHER,
    features=ICS_FEATURES,
    build_adapter=build_adapter,
)
