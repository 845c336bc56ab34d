"""How a connection's sync is doing: last success, last error, next due time, counts."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from calsync.domain import ConnectionStatus, ErrorReason, Identity
from calsync.service.connections.manage import READ, load_connection
from calsync.service.runtime import Runtime
from calsync.service.sync.checks import adapter_feature
from calsync.service.views import CalendarSyncView, ExportSyncView, FreshnessView, SyncReport
from calsync.store import checks as stored_checks
from calsync.store import connections as stored_connections
from calsync.store.db import transaction
from calsync.store.models import (
    ConnectionCalendar,
    EventInstance,
    ExportedEvent,
    ExportTarget,
    ImportedObject,
)


def sync_report(rt: Runtime, *, identity: Identity, connection_id: str) -> SyncReport:
    with transaction(rt.db) as session:
        row = load_connection(
            session,
            identity,
            connection_id,
            READ,
        )
        resources = dict(
            session.execute(
                select(ImportedObject.calendar_id, func.count())
                .where(ImportedObject.connection_id == row.id)
                .group_by(ImportedObject.calendar_id)
            ).all()
        )
        instances = dict(
            session.execute(
                select(EventInstance.calendar_id, func.count())
                .where(EventInstance.connection_id == row.id)
                .group_by(EventInstance.calendar_id)
            ).all()
        )
        calendars = [
            CalendarSyncView(
                calendar_id=c.calendar_id,
                name=c.name,
                synced_at=c.synced_at,
                resources=int(resources.get(c.calendar_id, 0)),
                instances=int(instances.get(c.calendar_id, 0)),
            )
            for c in session.scalars(
                select(ConnectionCalendar)
                .where(ConnectionCalendar.connection_id == row.id)
                .order_by(ConnectionCalendar.calendar_id)
            )
        ]
        active = row.status != ConnectionStatus.DISCONNECTED.value
        export = _export_view(session, row.id)
        provider_id = row.provider_id
        return SyncReport(
            connection_id=row.id,
            status=ConnectionStatus(row.status),
            error_reason=ErrorReason(row.error_reason),
            last_synced_at=row.last_synced_at,
            last_sync_attempt_at=row.last_sync_attempt_at,
            next_sync_at=row.next_sync_at if active else None,
            failure_count=row.failure_count,
            last_error=row.last_error,
            calendars=calendars,
            export=export,
            fresh_as_of=row.fresh_as_of or row.last_synced_at,
            freshness=_freshness(rt, connection_id, provider_id) if active else None,
        )


def _freshness(rt: Runtime, connection_id: str, provider_id: str) -> FreshnessView:
    """PUSH when every imported calendar has a live channel, CHANGE_CHECK when the provider
    has a cheap change check (and checks are on), else POLL at the poll interval."""
    with rt.store.reading() as tx:
        found = stored_checks.freshness_of(tx, connection_id, datetime.now(UTC))
        calendars = len(stored_connections.calendar_ids(tx, connection_id))
    settings = rt.settings
    method, interval = "POLL", settings.poll_interval_seconds
    if calendars and found.live_push_channels >= calendars:
        method = "PUSH"
    elif settings.check_interval_seconds > 0 and _has_change_check(rt, provider_id):
        method, interval = "CHANGE_CHECK", settings.check_interval_seconds
    return FreshnessView(
        method=method,
        interval_seconds=interval,
        next_check_at=found.next_check_at if method == "CHANGE_CHECK" else None,
        live_push_channels=found.live_push_channels,
        push_channels=found.push_channels,
        next_channel_expiry=found.next_channel_expiry,
    )


def _has_change_check(rt: Runtime, provider_id: str) -> bool:
    provider = rt.providers.get(provider_id)
    return provider is not None and adapter_feature(rt, provider, "change_check") is not None


def _export_view(session: Session, connection_id: str) -> ExportSyncView | None:
    target = session.get(ExportTarget, connection_id)
    if target is None:
        return None
    exported, pending, refused = session.execute(
        select(
            func.count(ExportedEvent.external_id),
            func.count(
                case((ExportedEvent.external_id.is_(None) & (ExportedEvent.refusals == 0), 1))
            ),
            func.count(case((ExportedEvent.refusals > 0, 1))),
        ).where(ExportedEvent.connection_id == connection_id)
    ).one()
    return ExportSyncView(
        target=target.target,
        calendar_id=target.calendar_id,
        calendar_created_by_calsync=bool(
            target.dedicated_created and target.calendar_id == target.dedicated_calendar_id
        ),
        exported_events=int(exported),
        pending_writes=int(pending),  # started and not confirmed (a crash may have left them)
        refused_writes=int(refused),
        external_edits_restored=target.external_edits,
        last_external_edit_at=target.last_external_edit_at,
        last_export_at=target.exported_at,
    )
