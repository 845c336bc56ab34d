"""Export: make a connection's target calendar show its schedule's sessions.

Level-triggered reconciliation, run by the worker after the import of the same claim:

1. Resolve the target calendar (the primary one, or the dedicated one, created on first use).
2. Remove what calsync exported anywhere else (export turned off, target changed).
3. Read the target calendar's changes since the last run: an exported event the account
   owner deleted or edited (its etag is not the one calsync wrote) is written again as the
   session says; the platform is the source of truth.
4. Create or update every confirmed session in the horizon whose exported revision is behind,
   and delete the events of cancelled or removed sessions, in batches of the provider's size.

Every write is idempotent. Before a create, a mapping row without ``external_id`` records the
intent; a crash between the external write and the commit of its result leaves that row, and
the next run looks the event up by its uid (``find_event``) before writing again, so no session
ever gets two events.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import and_, delete, or_, select

from calsync.domain import ErrorReason
from calsync.providers.base import (
    AuthRejected,
    CalendarGone,
    CalendarProvider,
    CalendarWriter,
    ProviderError,
    ProviderUnreachable,
    RateLimitedByProvider,
)
from calsync.service.connections import sync_config as sc
from calsync.service.export.edits import notice_external_edits
from calsync.service.export.writes import (
    AccountCall,
    ExportReport,
    chunks,
    delete_chunk,
    remove_exported,
    write_chunk,
)
from calsync.service.platform.sessions import CONFIRMED
from calsync.service.runtime import Runtime
from calsync.service.sync import leases
from calsync.service.sync.instances import horizon_ms
from calsync.store.db import transaction
from calsync.store.models import (
    Connection,
    ExportedEvent,
    ExportTarget,
    PlatformSession,
    utcnow,
)

log = logging.getLogger(__name__)
TRANSIENT = (AuthRejected, ProviderUnreachable, RateLimitedByProvider)
T = TypeVar("T")


class ExportBlocked(Exception):
    """The export cannot go on until the account owner or the platform acts: ``reason`` is
    EXTERNAL_CALENDAR_DELETED or EXTERNAL_CALENDAR_CREATION_FAILED."""

    def __init__(self, reason: ErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def export_connection(
    rt: Runtime,
    row: Connection,
    adapter: CalendarProvider,
    call: AccountCall,
    primary_id: str | None,
) -> ExportReport:
    """Reconcile one connection's export. ``call`` runs a provider call with the account
    (refreshing OAuth tokens as needed). Raises ExportBlocked, or ProviderError for failures
    worth retrying (the sync's backoff handles those)."""
    report = ExportReport()
    config = sc.from_json(row.sync_config)
    writer = adapter.writer
    wanted = config.export.target if config.export.enabled and writer is not None else None
    target = _target(rt, row.id)
    if wanted is None or writer is None:
        if writer is not None:
            remove_exported(rt, row.id, writer, call, keep_calendar=None, report=report)
        _set_target(rt, row.id, target=None, calendar_id=None)
        return report
    if wanted == "dedicated" and target.dedicated_calendar_id is None and not _has_work(rt, row):
        # The dedicated calendar is created with the first session to export, not before.
        remove_exported(rt, row.id, writer, call, keep_calendar=None, report=report)
        return report
    calendar_id = _resolve_calendar(rt, row, adapter, writer, call, wanted, target, primary_id)
    remove_exported(rt, row.id, writer, call, keep_calendar=calendar_id, report=report)
    if target.calendar_id != calendar_id:
        _set_target(rt, row.id, target=wanted, calendar_id=calendar_id)
    try:
        report.restored = notice_external_edits(rt, row, adapter, call, calendar_id)
        _converge(rt, row, writer, call, calendar_id, report)
    except CalendarGone:
        _calendar_gone(rt, row.id, wanted, calendar_id)
        if wanted == "dedicated" and rt.settings.export_recreate_deleted_calendar:
            report.problems.append("the dedicated calendar was deleted; calsync created it again")
            calendar_id = _resolve_calendar(
                rt, row, adapter, writer, call, wanted, _target(rt, row.id), None
            )
            _set_target(rt, row.id, target=wanted, calendar_id=calendar_id)
            _converge(rt, row, writer, call, calendar_id, report)
        else:
            raise ExportBlocked(
                ErrorReason.EXTERNAL_CALENDAR_DELETED,
                f"the {wanted} export calendar was deleted in the external account; "
                "update the sync config to export again",
            ) from None
    with transaction(rt.db) as session:
        stored = session.get(ExportTarget, row.id)
        if stored is not None:
            stored.exported_at = utcnow()
    return report


# --- target calendar --------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    target: str | None
    calendar_id: str | None
    dedicated_calendar_id: str | None
    cursor: str | None


def _target(rt: Runtime, connection_id: str) -> _Target:
    with transaction(rt.db) as session:
        row = session.get(ExportTarget, connection_id)
        if row is None:
            row = ExportTarget(
                connection_id=connection_id, dedicated_created=False, external_edits=0
            )
            session.add(row)
        return _Target(row.target, row.calendar_id, row.dedicated_calendar_id, row.cursor)


def _set_target(
    rt: Runtime, connection_id: str, *, target: str | None, calendar_id: str | None
) -> None:
    with transaction(rt.db) as session:
        row = session.get(ExportTarget, connection_id)
        if row is not None and (row.target, row.calendar_id) != (target, calendar_id):
            row.target, row.calendar_id, row.cursor = target, calendar_id, None


def _resolve_calendar(
    rt: Runtime,
    row: Connection,
    adapter: CalendarProvider,
    writer: CalendarWriter,
    call: AccountCall,
    wanted: str,
    target: _Target,
    primary_id: str | None,
) -> str:
    if wanted == "primary":
        if primary_id:
            return primary_id
        calendars = call(adapter.list_calendars)
        primary = next((c for c in calendars if c.is_primary), calendars[0] if calendars else None)
        if primary is None:
            raise ExportBlocked(
                ErrorReason.EXTERNAL_CALENDAR_DELETED, "the external account has no calendar"
            )
        return str(primary.id)
    if target.dedicated_calendar_id:
        return target.dedicated_calendar_id
    name = rt.settings.export_calendar_name
    with transaction(rt.db) as session:
        stored = session.get(ExportTarget, row.id)
        assert stored is not None
        if not stored.dedicated_key:  # recorded before the create: a retry finds the calendar
            stored.dedicated_key = secrets.token_hex(8)
        key = stored.dedicated_key
    try:
        created = call(lambda account: writer.create_calendar(account, name, key=key))
    except TRANSIENT:
        raise
    except ProviderError as exc:
        raise ExportBlocked(
            ErrorReason.EXTERNAL_CALENDAR_CREATION_FAILED,
            f"the dedicated calendar {name!r} could not be created: {exc}",
        ) from exc
    calendar_id = created.id
    with transaction(rt.db) as session:
        stored = session.get(ExportTarget, row.id)
        assert stored is not None
        stored.dedicated_calendar_id = calendar_id
        stored.dedicated_created = True
    log.info("dedicated calendar created", extra={"connection_id": row.id})
    return calendar_id


def _calendar_gone(rt: Runtime, connection_id: str, wanted: str, calendar_id: str) -> None:
    """Forget a deleted target calendar and everything calsync had written into it."""
    with transaction(rt.db) as session:
        session.execute(
            delete(ExportedEvent).where(
                ExportedEvent.connection_id == connection_id,
                ExportedEvent.calendar_id == calendar_id,
            )
        )
        stored = session.get(ExportTarget, connection_id)
        if stored is not None:
            stored.target, stored.calendar_id, stored.cursor = None, None, None
            if stored.dedicated_calendar_id == calendar_id:
                stored.dedicated_calendar_id, stored.dedicated_created = None, False
                stored.dedicated_key = None
    log.warning(
        "export calendar deleted externally",
        extra={"connection_id": connection_id, "target": wanted},
    )


# --- convergence ------------------------------------------------------------------------


def _has_work(rt: Runtime, row: Connection) -> bool:
    low, high = horizon_ms(rt)
    with rt.db() as session:
        found = session.scalar(
            select(PlatformSession.session_id)
            .where(
                PlatformSession.tenant_id == row.tenant_id,
                PlatformSession.schedule_id == row.schedule_id,
                PlatformSession.status == CONFIRMED,
                PlatformSession.end_ms > low,
                PlatformSession.start_ms < high,
            )
            .limit(1)
        )
    return found is not None


def _converge(
    rt: Runtime,
    row: Connection,
    writer: CalendarWriter,
    call: AccountCall,
    calendar_id: str,
    report: ExportReport,
) -> None:
    low, high = horizon_ms(rt)
    with rt.db() as session:
        mappings = {
            m.session_id: m
            for m in session.scalars(
                select(ExportedEvent).where(ExportedEvent.connection_id == row.id)
            )
        }
        # The horizon's sessions, and the exported ones wherever they are now (a session
        # moved beyond the horizon still moves its event).
        sessions = {
            s.session_id: s
            for s in session.scalars(
                select(PlatformSession).where(
                    PlatformSession.tenant_id == row.tenant_id,
                    PlatformSession.schedule_id == row.schedule_id,
                    or_(
                        and_(PlatformSession.end_ms > low, PlatformSession.start_ms < high),
                        PlatformSession.session_id.in_(sorted(mappings)),
                    ),
                )
            )
        }
        # Sessions cancelled (or deleted) whose events are still out there, wherever in time.
        cancelled = set(
            session.scalars(
                select(PlatformSession.session_id).where(
                    PlatformSession.tenant_id == row.tenant_id,
                    PlatformSession.schedule_id == row.schedule_id,
                    PlatformSession.status != CONFIRMED,
                    PlatformSession.session_id.in_(sorted(mappings)),
                )
            )
        )
        existing = set(
            session.scalars(
                select(PlatformSession.session_id).where(
                    PlatformSession.tenant_id == row.tenant_id,
                    PlatformSession.schedule_id == row.schedule_id,
                    PlatformSession.session_id.in_(sorted(mappings)),
                )
            )
        )
        session.expunge_all()
    # A mapping left in another calendar (its removal failed) is remove_exported's to retry;
    # its session is written here once that is done.
    elsewhere = {sid for sid, m in mappings.items() if m.calendar_id != calendar_id}
    to_write = [
        s
        for s in sorted(sessions.values(), key=lambda s: (s.start_ms, s.session_id))
        if s.status == CONFIRMED
        and s.session_id not in elsewhere
        and (
            (m := mappings.get(s.session_id)) is None
            or m.external_id is None
            or m.revision != s.revision
        )
    ]
    now = utcnow()
    waiting = [s for s in to_write if _waits(mappings.get(s.session_id), s, now)]
    if waiting:
        held = {s.session_id for s in waiting}
        to_write = [s for s in to_write if s.session_id not in held]
        retry = min(t for s in waiting if (t := mappings[s.session_id].retry_at) is not None)
        report.problems.append(
            f"{len(waiting)} session(s) the provider refused wait to be written again "
            f"(the first after {retry:%Y-%m-%d %H:%M} UTC, or at once when changed)"
        )
    to_delete = [
        m
        for sid, m in mappings.items()
        if sid not in elsewhere and (sid in cancelled or sid not in existing)
    ]
    for chunk in chunks(to_write, writer.max_batch):
        _keep_lease(rt, row.id)
        write_chunk(rt, row, writer, call, calendar_id, chunk, mappings, report)
    for chunk_m in chunks(to_delete, writer.max_batch):
        _keep_lease(rt, row.id)
        delete_chunk(rt, row.id, writer, call, calendar_id, chunk_m, report)


def _waits(m: ExportedEvent | None, s: PlatformSession, now: datetime) -> bool:
    """The provider refused this revision of the session, and its retry time is ahead."""
    return (
        m is not None
        and m.retry_at is not None
        and m.retry_at > now
        and m.refused_revision == s.revision
    )


class LeaseLost(ProviderUnreachable):
    """Another owner took the connection (our lease ran out, or a disconnect is cleaning
    up): stop writing; what is left is done by whoever holds it now."""


def _keep_lease(rt: Runtime, connection_id: str) -> None:
    if not leases.acquire(rt, connection_id, rt.instance_id):
        raise LeaseLost("the connection's lease was taken over; the export stops here")
