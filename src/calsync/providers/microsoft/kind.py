"""Microsoft Graph as a provider kind: its defaults, features, adapter, OAuth and push."""

from __future__ import annotations

from typing import Any

from calsync.domain import (
    CalendarType,
    ConnectMethod,
    ListEventFromCalendars,
    ProviderFeatures,
    ProviderKind,
    SyncToCalendar,
)
from calsync.providers.base import CalendarProvider
from calsync.providers.kinds import (
    AdapterSettings,
    ProviderConfig,
    ProviderKindSpec,
    oauth_client_from_options,
)
from calsync.providers.microsoft.adapter import GraphCalendarProvider
from calsync.providers.microsoft.notifications import GraphNotifications

MICROSOFT_FEATURES = ProviderFeatures(
    connect_methods=(ConnectMethod.OAUTH,),
    update_sync_config=True,
    list_event_from_calendars=ListEventFromCalendars.SPECIFIC_CALENDARS,
    sync_to_calendar=SyncToCalendar.PRIMARY_CALENDAR_ONLY,
)
MICROSOFT_DEFAULTS: dict[str, Any] = {
    "tenant": "common",
    "authorize_url": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
    "token_url": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
    "revoke_url": "",
    "api_url": "https://graph.microsoft.com/v1.0",
    "userinfo_url": "https://graph.microsoft.com/v1.0/me",
    "scopes": ["openid", "email", "offline_access", "User.Read", "Calendars.ReadWrite"],
    "authorize_params": {},
}


def build_adapter(provider: ProviderConfig, settings: AdapterSettings) -> CalendarProvider:
    return GraphCalendarProvider(
        str(provider.options["api_url"]),
        timeout=settings.timeout,
        horizon_past_days=settings.horizon_past_days,
        horizon_future_days=settings.horizon_future_days,
    )


KIND_SPEC = ProviderKindSpec(
    kind=ProviderKind.MICROSOFT,
    default_name="Microsoft",
    calendar_type=CalendarType.MICROSOFT,
    features=MICROSOFT_FEATURES,
    build_adapter=build_adapter,
    defaults=MICROSOFT_DEFAULTS,
    oauth_client=oauth_client_from_options,
    push=GraphNotifications(),
)
