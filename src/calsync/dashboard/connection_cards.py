"""A schedule's connections as the dashboard shows them: provider, account, state in words,
last successful and next sync, where bookings go, the current problem."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from calsync.dashboard.plain_words import (
    STATUS_TONE,
    STATUS_WORDS,
    ExportState,
    Problem,
    export_state,
    problem,
)
from calsync.domain import ConnectionStatus, Identity
from calsync.service.connections import manage as connections
from calsync.service.runtime import Runtime
from calsync.service.sync.report import sync_report
from calsync.service.views import ConnectionView, SyncReport
from calsync.store.models import utcnow


@dataclass(frozen=True)
class ConnectionCard:
    connection: ConnectionView
    provider_name: str
    status_text: str
    tone: str
    last_synced_at: datetime | None
    next_sync_at: datetime | None
    export: ExportState
    problem: Problem | None


def provider_name(rt: Runtime, provider_id: str) -> str:
    provider = rt.providers.get(provider_id)
    return provider.name if provider else "The calendar provider"


def _export_calendar_name(rt: Runtime, report: SyncReport) -> str:
    """The name of the calendar bookings go to, as far as calsync knows it; else the name it
    gives the calendar it creates."""
    target = report.export.calendar_id if report.export else None
    known = next((c.name for c in report.calendars if c.calendar_id == target and c.name), None)
    return known or rt.settings.export_calendar_name


def card(rt: Runtime, identity: Identity, view: ConnectionView, time_zone: str) -> ConnectionCard:
    """The card of one connection; times in words are in ``time_zone`` (the schedule's)."""
    report = sync_report(rt, identity=identity, connection_id=view.id)
    name = provider_name(rt, view.provider_id)
    calendar_name = _export_calendar_name(rt, report)
    return ConnectionCard(
        connection=view,
        provider_name=name,
        status_text=STATUS_WORDS[report.status],
        tone=STATUS_TONE[report.status],
        last_synced_at=report.last_synced_at,
        next_sync_at=report.next_sync_at,
        export=export_state(
            view.sync_config.export,
            report.export,
            error_reason=report.error_reason,
            calendar_name=calendar_name,
            time_zone=time_zone,
            now=utcnow(),
        ),
        problem=problem(
            report,
            name,
            export_target=view.sync_config.export.target,
            calendar_name=calendar_name,
        ),
    )


def schedule_cards(
    rt: Runtime, *, identity: Identity, schedule_id: str, time_zone: str
) -> list[ConnectionCard]:
    """The schedule's connections that are not disconnected, oldest first."""
    listed = connections.list_connections(rt, identity=identity, schedule_ids=[schedule_id])
    return [
        card(rt, identity, view, time_zone)
        for view in listed.connections
        if view.status is not ConnectionStatus.DISCONNECTED
    ]
