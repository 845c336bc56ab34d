"""Sessions: the platform's bookings and classes, the desired state of the export.

The platform upserts them through calsync's own /v1 API; every change that alters the exported
event raises the session's ``revision`` and makes the schedule's connections due, so a worker
reconciles the external calendars (``service.export``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from calsync.domain import Identity, Permission
from calsync.errors import NotFound
from calsync.service.access.auth import require_any
from calsync.service.runtime import Runtime
from calsync.store import connections
from calsync.store.db import transaction
from calsync.store.models import PlatformSession, Schedule, utcnow
from calsync.store.unit import Tx
from calsync.tz import epoch_ms, zone

CONFIRMED = "CONFIRMED"
CANCELLED = "CANCELLED"
STATUSES = (CONFIRMED, CANCELLED)
MAX_LIST = 1000


@dataclass(frozen=True)
class SessionInput:
    """A validated session as the platform sent it: timed (aware ``start``/``end``) or all-day
    (``start_date`` and exclusive ``end_date``), in ``time_zone`` (IANA)."""

    title: str
    status: str
    time_zone: str | None = None  # None: the schedule's
    start: datetime | None = None
    end: datetime | None = None
    start_date: date | None = None
    end_date: date | None = None
    location: str | None = None
    description: str | None = None

    @property
    def all_day(self) -> bool:
        return self.start_date is not None


@dataclass(frozen=True)
class SessionView:
    session_id: str
    schedule_id: str
    title: str
    status: str
    all_day: bool
    start: datetime | None
    end: datetime | None
    start_date: date | None
    end_date: date | None
    time_zone: str
    location: str | None
    description: str | None
    revision: int
    created_at: datetime
    updated_at: datetime


def bounds_ms(data: SessionInput, time_zone: str) -> tuple[int, int]:
    """The session's span in epoch ms; all-day sessions span local midnights of their zone."""
    if data.start_date is not None and data.end_date is not None:
        tz = zone(time_zone)
        start = datetime.combine(data.start_date, time(), tz)
        end = datetime.combine(data.end_date, time(), tz)
    else:
        assert data.start is not None and data.end is not None
        start, end = data.start, data.end
    return epoch_ms(start), epoch_ms(end)


def to_view(row: PlatformSession) -> SessionView:
    timed = not row.all_day
    return SessionView(
        session_id=row.session_id,
        schedule_id=row.schedule_id,
        title=row.title,
        status=row.status,
        all_day=row.all_day,
        start=datetime.fromtimestamp(row.start_ms / 1000, UTC) if timed else None,
        end=datetime.fromtimestamp(row.end_ms / 1000, UTC) if timed else None,
        start_date=date.fromisoformat(row.start_date) if row.start_date else None,
        end_date=date.fromisoformat(row.end_date) if row.end_date else None,
        time_zone=row.time_zone,
        location=row.location,
        description=row.description,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _content(row: PlatformSession) -> tuple[object, ...]:
    """What the exported event shows: a change here is a new revision."""
    return (
        row.title,
        row.status,
        row.all_day,
        row.start_ms,
        row.end_ms,
        row.start_date,
        row.end_date,
        row.time_zone,
        row.location,
        row.description,
    )


def _schedule(session: Session, identity: Identity, schedule_id: str) -> Schedule:
    row = session.get(Schedule, (identity.tenant_id, schedule_id.lower()))
    if row is None:
        raise NotFound(f"schedule {schedule_id} not found")
    return row


def put_session(
    rt: Runtime, *, identity: Identity, schedule_id: str, session_id: str, data: SessionInput
) -> tuple[SessionView, bool]:
    """Create or replace a session; returns it and whether it was created. Sessions are the
    platform's data: only identities that manage every connection (apps, admins) write them."""
    require_any(identity, Permission.MANAGE_ALL_CONNECTIONS)
    with transaction(rt.db) as session:
        schedule = _schedule(session, identity, schedule_id)
        row = session.get(PlatformSession, (identity.tenant_id, schedule.id, session_id))
        created = row is None
        now = utcnow()
        if row is None:
            row = PlatformSession(
                tenant_id=identity.tenant_id,
                schedule_id=schedule.id,
                session_id=session_id,
                revision=0,
                created_at=now,
            )
            session.add(row)
        before = None if created else _content(row)
        time_zone = data.time_zone or schedule.time_zone
        start_ms, end_ms = bounds_ms(data, time_zone)
        row.title, row.status, row.all_day = data.title, data.status, data.all_day
        row.start_ms, row.end_ms = start_ms, end_ms
        row.start_date = data.start_date.isoformat() if data.start_date else None
        row.end_date = data.end_date.isoformat() if data.end_date else None
        row.time_zone, row.location, row.description = (
            time_zone,
            data.location,
            data.description,
        )
        if before != _content(row):
            row.revision = (row.revision or 0) + 1
            row.updated_at = now
            request_export(session, identity.tenant_id, schedule.id)
        session.flush()
        view = to_view(row)
    rt.work_available.set()
    return view, created


def cancel_session(
    rt: Runtime, *, identity: Identity, schedule_id: str, session_id: str
) -> SessionView:
    """Cancel a session: its exported event is removed from external calendars."""
    require_any(identity, Permission.MANAGE_ALL_CONNECTIONS)
    with transaction(rt.db) as session:
        schedule = _schedule(session, identity, schedule_id)
        row = session.get(PlatformSession, (identity.tenant_id, schedule.id, session_id))
        if row is None:
            raise NotFound(f"session {session_id} not found")
        if row.status != CANCELLED:
            row.status = CANCELLED
            row.revision += 1
            row.updated_at = utcnow()
            request_export(session, identity.tenant_id, schedule.id)
        view = to_view(row)
    rt.work_available.set()
    return view


def get_session(
    rt: Runtime, *, identity: Identity, schedule_id: str, session_id: str
) -> SessionView:
    require_any(identity, Permission.MANAGE_ALL_CONNECTIONS, Permission.READ_ALL_CONNECTIONS)
    with transaction(rt.db) as session:
        schedule = _schedule(session, identity, schedule_id)
        row = session.get(PlatformSession, (identity.tenant_id, schedule.id, session_id))
        if row is None:
            raise NotFound(f"session {session_id} not found")
        return to_view(row)


@dataclass(frozen=True)
class SessionsPage:
    sessions: list[SessionView]
    # (start_ms, session_id) of the last session when more follow: where the next page starts
    next_after: tuple[int, str] | None


def list_sessions(
    rt: Runtime,
    *,
    identity: Identity,
    schedule_id: str,
    start: datetime | None,
    end: datetime | None,
    include_cancelled: bool = True,
    limit: int = MAX_LIST,
    after: tuple[int, str] | None = None,
) -> SessionsPage:
    """One page of the schedule's sessions overlapping [start, end) (either bound optional),
    by (start, session id), after ``after``."""
    require_any(identity, Permission.MANAGE_ALL_CONNECTIONS, Permission.READ_ALL_CONNECTIONS)
    with transaction(rt.db) as session:
        schedule = _schedule(session, identity, schedule_id)
        rows = _window_rows(
            session,
            identity.tenant_id,
            schedule.id,
            start,
            end,
            include_cancelled,
            limit + 1,
            after,
        )
        views = [to_view(r) for r in rows[:limit]]
    if len(rows) <= limit:
        return SessionsPage(views, None)
    last = rows[limit - 1]
    return SessionsPage(views, (last.start_ms, last.session_id))


def sessions_in_window(
    rt: Runtime, tenant_id: str, schedule_id: str, start: datetime, end: datetime
) -> list[SessionView]:
    """Confirmed sessions overlapping [start, end), for callers that checked access already."""
    with rt.db() as session:
        rows = _window_rows(session, tenant_id, schedule_id, start, end, False, MAX_LIST)
        return [to_view(r) for r in rows]


def _window_rows(
    session: Session,
    tenant_id: str,
    schedule_id: str,
    start: datetime | None,
    end: datetime | None,
    include_cancelled: bool,
    limit: int,
    after: tuple[int, str] | None = None,
) -> list[PlatformSession]:
    query = select(PlatformSession).where(
        PlatformSession.tenant_id == tenant_id, PlatformSession.schedule_id == schedule_id
    )
    if after is not None:
        query = query.where(
            tuple_(PlatformSession.start_ms, PlatformSession.session_id) > tuple_(*after)
        )
    if end is not None:
        query = query.where(PlatformSession.start_ms < epoch_ms(end))
    if start is not None:
        query = query.where(PlatformSession.end_ms > epoch_ms(start))
    if not include_cancelled:
        query = query.where(PlatformSession.status == CONFIRMED)
    query = query.order_by(PlatformSession.start_ms, PlatformSession.session_id).limit(limit)
    return list(session.scalars(query))


def request_export(session: Session, tenant_id: str, schedule_id: str) -> None:
    """Make the schedule's active connections due now, so a worker exports the change
    (``store.connections.mark_schedule_export_due``)."""
    connections.mark_schedule_export_due(Tx(session), tenant_id, schedule_id, utcnow())
