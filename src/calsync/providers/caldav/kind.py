"""CalDAV as a provider kind: any server at a configured URL, connected with credentials."""

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
from calsync.providers.caldav.adapter import CalDavProvider
from calsync.providers.kinds import AdapterSettings, ProviderConfig, ProviderKindSpec

CALDAV_FEATURES = ProviderFeatures(
    connect_methods=(ConnectMethod.CREDENTIALS,),
    update_sync_config=True,
    list_event_from_calendars=ListEventFromCalendars.SPECIFIC_CALENDARS,
    sync_to_calendar=SyncToCalendar.DEDICATED_CALENDAR,
)


def build_adapter(provider: ProviderConfig, settings: AdapterSettings) -> CalendarProvider:
    return CalDavProvider(provider.url, timeout=settings.timeout)


KIND_SPEC = ProviderKindSpec(
    kind=ProviderKind.CALDAV,
    default_name="CalDAV",
    calendar_type=CalendarType.OTHER,
    features=CALDAV_FEATURES,
    build_adapter=build_adapter,
    needs_url=True,
)
