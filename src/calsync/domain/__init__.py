"""Domain vocabulary shared by every layer: enums of the API contract and plain value types."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class CalendarType(StrEnum):
    UNDEFINED = "UNDEFINED"
    GOOGLE = "GOOGLE"
    I_CAL = "I_CAL"
    OUTLOOK = "OUTLOOK"
    OFFICE_365 = "OFFICE_365"
    MICROSOFT = "MICROSOFT"
    OTHER = "OTHER"


class ConnectMethod(StrEnum):
    UNDEFINED = "UNDEFINED"
    OAUTH = "OAUTH"
    CREDENTIALS = "CREDENTIALS"


class ListEventFromCalendars(StrEnum):
    UNDEFINED = "UNDEFINED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    PRIMARY_CALENDAR_ONLY = "PRIMARY_CALENDAR_ONLY"
    SPECIFIC_CALENDARS = "SPECIFIC_CALENDARS"


class SyncToCalendar(StrEnum):
    UNDEFINED = "UNDEFINED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    PRIMARY_CALENDAR_ONLY = "PRIMARY_CALENDAR_ONLY"
    SPECIFIC_CALENDAR = "SPECIFIC_CALENDAR"
    DEDICATED_CALENDAR = "DEDICATED_CALENDAR"


class ConnectionStatus(StrEnum):
    UNDEFINED = "UNDEFINED"
    CONNECTED = "CONNECTED"
    SYNC_IN_PROGRESS = "SYNC_IN_PROGRESS"
    SYNCED = "SYNCED"
    DISCONNECTED = "DISCONNECTED"
    ERROR = "ERROR"


class ErrorReason(StrEnum):
    UNDEFINED = "UNDEFINED"
    TOKEN_REVOKED = "TOKEN_REVOKED"
    EXTERNAL_CALENDAR_CREATION_FAILED = "EXTERNAL_CALENDAR_CREATION_FAILED"
    EXTERNAL_CALENDAR_DELETED = "EXTERNAL_CALENDAR_DELETED"


# Export failures that hold a connection in ERROR until its sync config changes.
EXPORT_ERROR_REASONS = frozenset(
    {
        ErrorReason.EXTERNAL_CALENDAR_DELETED.value,
        ErrorReason.EXTERNAL_CALENDAR_CREATION_FAILED.value,
    }
)


class ProviderKind(StrEnum):
    GOOGLE = "google"
    MICROSOFT = "microsoft"
    CALDAV = "caldav"
    ICS = "ics"


class Permission(StrEnum):
    LIST_PROVIDERS = "CALENDAR.LIST_EXTERNAL_CALENDAR_PROVIDERS"
    READ_OWN_CONNECTIONS = "CALENDAR.READ_OWN_EXTERNAL_CALENDAR_CONNECTIONS"
    READ_ALL_CONNECTIONS = "CALENDAR.READ_ALL_EXTERNAL_CALENDAR_CONNECTIONS"
    MANAGE_OWN_CONNECTIONS = "CALENDAR.MANAGE_OWN_EXTERNAL_CALENDAR_CONNECTIONS"
    MANAGE_ALL_CONNECTIONS = "CALENDAR.MANAGE_ALL_EXTERNAL_CALENDAR_CONNECTIONS"
    READ_EVENTS = "CALENDAR.READ_EXTERNAL_CALENDAR_EVENTS"


class IdentityType(StrEnum):
    APP = "APP"
    USER = "USER"


@dataclass(frozen=True)
class ProviderFeatures:
    connect_methods: tuple[ConnectMethod, ...]
    update_sync_config: bool
    list_event_from_calendars: ListEventFromCalendars
    sync_to_calendar: SyncToCalendar


@dataclass(frozen=True)
class ImportConfig:
    """``syncConfig.listEventFromCalendars``: ``calendar_ids`` is None for ``primaryCalendar``."""

    enabled: bool = False
    calendar_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ExportConfig:
    """``syncConfig.syncToCalendar``: target is ``primary``, ``dedicated`` or None (unset)."""

    enabled: bool = False
    target: str | None = None
    include_buffer_time: bool | None = None
    append_single_participant_name: bool | None = None


@dataclass(frozen=True)
class SyncConfig:
    import_: ImportConfig = field(default_factory=ImportConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


@dataclass(frozen=True)
class Identity:
    """Who is calling: an app or a user of one tenant, with the permissions its key carries."""

    tenant_id: str
    type: IdentityType
    permissions: frozenset[Permission]
    user_id: str | None = None
    app_id: str | None = None
    key_id: str | None = None

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions
