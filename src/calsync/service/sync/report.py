"""How a connection's sync is doing: last success, last error, next due time, counts."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from calsync.domain import ConnectionStatus, ErrorReason, Identity
from calsync.service.connections.manage import READ, load_connection
from calsync.service.runtime import Runtime
from calsync.service.views import CalendarSyncView, ExportSyncView, SyncReport
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
        )


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
