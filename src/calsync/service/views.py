"""What service functions return: plain values, independent of the database and of HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from calsync.domain import CalendarType, ConnectionStatus, ErrorReason, SyncConfig


@dataclass(frozen=True)
class ConnectionView:
    id: str
    provider_id: str
    calendar_type: CalendarType
    schedule_id: str
    user_id: str | None
    app_id: str | None
    external_account_email: str | None
    status: ConnectionStatus
    error_reason: ErrorReason
    sync_config: SyncConfig


@dataclass(frozen=True)
class ScheduleView:
    id: str
    owner_user_id: str | None
    owner_name: str
    time_zone: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CalendarView:
    id: str
    name: str


class EventView(NamedTuple):
    """One busy block. A named tuple, not a dataclass: List Events makes up to 1,000 a call,
    and a frozen dataclass costs three times as much to build."""

    schedule_id: str
    calendar_type: CalendarType
    calendar_name: str | None
    title: str | None
    start: str
    end: str
    all_day: bool
    schedule_owner_id: str | None
    schedule_owner_name: str | None


@dataclass(frozen=True)
class EventsPage:
    events: list[EventView]
    next_cursor: str | None
    failed_provider_ids: list[str]
    # The oldest freshAsOf of the connections the page used (X-Calsync-Fresh-As-Of).
    fresh_as_of: datetime | None = None


@dataclass(frozen=True)
class ConnectionList:
    connections: list[ConnectionView]
    failed_provider_ids: list[str]


@dataclass(frozen=True)
class CalendarSyncView:
    calendar_id: str
    name: str
    synced_at: datetime | None
    resources: int
    instances: int


@dataclass(frozen=True)
class FreshnessView:
    """How the connection's stored busy times are kept current."""

    # PUSH (the provider notifies us), CHANGE_CHECK (asked every interval), POLL (re-read).
    method: str
    interval_seconds: float
    next_check_at: datetime | None
    live_push_channels: int
    push_channels: int
    next_channel_expiry: datetime | None


@dataclass(frozen=True)
class ExportSyncView:
    """Where a connection exports to and how it went."""

    target: str | None
    calendar_id: str | None
    calendar_created_by_calsync: bool
    exported_events: int
    pending_writes: int
    refused_writes: int  # sessions whose event the provider refused, waiting for a retry
    external_edits_restored: int
    last_external_edit_at: datetime | None
    last_export_at: datetime | None


@dataclass(frozen=True)
class SyncReport:
    """calsync's own view of a connection's sync health (``/v1/connections/{id}/sync``)."""

    connection_id: str
    status: ConnectionStatus
    error_reason: ErrorReason
    last_synced_at: datetime | None
    last_sync_attempt_at: datetime | None
    next_sync_at: datetime | None
    failure_count: int
    last_error: str | None
    calendars: list[CalendarSyncView]
    export: ExportSyncView | None = None
    fresh_as_of: datetime | None = None
    freshness: FreshnessView | None = None
