"""Google Calendar as a provider kind: its defaults, features, adapter, OAuth and push."""

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
from calsync.providers.google.adapter import GoogleCalendarProvider
from calsync.providers.google.notifications import GoogleNotifications
from calsync.providers.kinds import (
    AdapterSettings,
    ProviderConfig,
    ProviderKindSpec,
    oauth_client_from_options,
)

# calsync lets Google users pick calendars too (the vendor's seed says primary only; a provider
# entry can restore that with list_event_from_calendars = "PRIMARY_CALENDAR_ONLY").
GOOGLE_FEATURES = ProviderFeatures(
    connect_methods=(ConnectMethod.OAUTH,),
    update_sync_config=True,
    list_event_from_calendars=ListEventFromCalendars.SPECIFIC_CALENDARS,
    sync_to_calendar=SyncToCalendar.PRIMARY_CALENDAR_ONLY,
)
GOOGLE_DEFAULTS: dict[str, Any] = {
    "authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
    "token_url": "https://oauth2.googleapis.com/token",
    "revoke_url": "https://oauth2.googleapis.com/revoke",
    "userinfo_url": "https://openidconnect.googleapis.com/v1/userinfo",
    "api_url": "https://www.googleapis.com/calendar/v3",
    "scopes": [
        "openid",
        "email",
        "https://www.googleapis.com/auth/calendar.readonly",
        "https://www.googleapis.com/auth/calendar.events",
    ],
    "authorize_params": {"access_type": "offline", "prompt": "consent"},
}


def build_adapter(provider: ProviderConfig, settings: AdapterSettings) -> CalendarProvider:
    return GoogleCalendarProvider(
        str(provider.options["api_url"]),
        timeout=settings.timeout,
        horizon_past_days=settings.horizon_past_days,
        horizon_future_days=settings.horizon_future_days,
    )


KIND_SPEC = ProviderKindSpec(
    kind=ProviderKind.GOOGLE,
    default_name="Google",
    calendar_type=CalendarType.GOOGLE,
    features=GOOGLE_FEATURES,
    build_adapter=build_adapter,
    defaults=GOOGLE_DEFAULTS,
    oauth_client=oauth_client_from_options,
    push=GoogleNotifications(),
)
