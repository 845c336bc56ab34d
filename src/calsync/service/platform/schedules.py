"""Schedules: the platform's calendars, registered through calsync's own /v1 API."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from calsync.domain import ConnectionStatus, Identity, Permission
from calsync.errors import NotFound
from calsync.service.access.auth import require_any
from calsync.service.connections.manage import disconnect_row
from calsync.service.connections.retire import capture, retire_later
from calsync.service.runtime import Runtime
from calsync.service.sync.instances import reexpand_connection
from calsync.service.sync.push import stop_channels_later
from calsync.service.views import ScheduleView
from calsync.store.db import transaction
from calsync.store.models import Connection, PlatformSession, Schedule, utcnow


def _view(row: Schedule) -> ScheduleView:
    return ScheduleView(
        id=row.id,
        owner_user_id=row.owner_user_id,
        owner_name=row.owner_name,
        time_zone=row.time_zone,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _require_manager(identity: Identity) -> None:
    """Schedules are the platform's data: only identities that may manage every connection
    (apps, admins) feed them."""
    require_any(identity, Permission.MANAGE_ALL_CONNECTIONS)


def _active_connections(session: Session, tenant_id: str, schedule_id: str) -> list[Connection]:
    return list(
        session.scalars(
            select(Connection).where(
                Connection.tenant_id == tenant_id,
                Connection.schedule_id == schedule_id,
                Connection.status != ConnectionStatus.DISCONNECTED.value,
            )
        )
    )


def put_schedule(
    rt: Runtime,
    *,
    identity: Identity,
    schedule_id: str,
    owner_user_id: str | None,
    owner_name: str,
    time_zone: str,
) -> ScheduleView:
    """Create or replace a schedule. A new owner disconnects its connections (spec 3.4);
    a new time zone re-places its all-day events."""
    _require_manager(identity)
    schedule_id = schedule_id.lower()
    owner = owner_user_id.lower() if owner_user_id else None
    with transaction(rt.db) as session:
        row = session.get(Schedule, (identity.tenant_id, schedule_id))
        now = utcnow()
        if row is None:
            row = Schedule(tenant_id=identity.tenant_id, id=schedule_id, created_at=now)
            session.add(row)
            owner_changed = tz_changed = False
        else:
            owner_changed = row.owner_user_id != owner
            tz_changed = row.time_zone != time_zone
        row.owner_user_id, row.owner_name, row.time_zone = owner, owner_name, time_zone
        row.updated_at = now
        session.flush()
        forgotten: list[str] = []
        for connection in _active_connections(session, identity.tenant_id, schedule_id):
            if owner_changed:
                stop_channels_later(rt, connection)
                forgotten.append(capture(session, connection))
                disconnect_row(session, connection)
            elif tz_changed:
                reexpand_connection(rt, session, connection)
        view = _view(row)
    for retirement in forgotten:
        retire_later(rt, retirement)
    return view


def get_schedule(rt: Runtime, *, identity: Identity, schedule_id: str) -> ScheduleView:
    _require_manager(identity)
    with transaction(rt.db) as session:
        row = session.get(Schedule, (identity.tenant_id, schedule_id.lower()))
        if row is None:
            raise NotFound(f"schedule {schedule_id} not found")
        return _view(row)


def list_schedules(rt: Runtime, *, identity: Identity) -> list[ScheduleView]:
    _require_manager(identity)
    with transaction(rt.db) as session:
        rows = session.scalars(
            select(Schedule)
            .where(Schedule.tenant_id == identity.tenant_id)
            .order_by(Schedule.created_at, Schedule.id)
        )
        return [_view(r) for r in rows]


def visible_schedules(rt: Runtime, *, identity: Identity) -> list[ScheduleView]:
    """The schedules an identity may look at: all of the tenant's for managers (apps,
    admins), the ones it owns for a staff member (the ownership rule of ``auth.owns``)."""
    if identity.has(Permission.MANAGE_ALL_CONNECTIONS):
        return list_schedules(rt, identity=identity)
    if not identity.user_id:
        return []
    with transaction(rt.db) as session:
        rows = session.scalars(
            select(Schedule)
            .where(
                Schedule.tenant_id == identity.tenant_id,
                func.lower(Schedule.owner_user_id) == identity.user_id.lower(),
            )
            .order_by(Schedule.created_at, Schedule.id)
        )
        return [_view(r) for r in rows]


def visible_schedule(rt: Runtime, *, identity: Identity, schedule_id: str) -> ScheduleView:
    """The schedule, or NotFound when it does not exist or the identity may not see it."""
    if identity.has(Permission.MANAGE_ALL_CONNECTIONS):
        return get_schedule(rt, identity=identity, schedule_id=schedule_id)
    for schedule in visible_schedules(rt, identity=identity):
        if schedule.id == schedule_id.lower():
            return schedule
    raise NotFound(f"schedule {schedule_id} not found")


def delete_schedule(rt: Runtime, *, identity: Identity, schedule_id: str) -> ScheduleView:
    """Remove a schedule; its connections are disconnected first (and stay readable)."""
    _require_manager(identity)
    with transaction(rt.db) as session:
        row = session.get(Schedule, (identity.tenant_id, schedule_id.lower()))
        if row is None:
            raise NotFound(f"schedule {schedule_id} not found")
        forgotten: list[str] = []
        for connection in _active_connections(session, identity.tenant_id, row.id):
            stop_channels_later(rt, connection)
            forgotten.append(capture(session, connection))
            disconnect_row(session, connection)
        view = _view(row)
        session.execute(
            delete(PlatformSession).where(
                PlatformSession.tenant_id == identity.tenant_id,
                PlatformSession.schedule_id == row.id,
            )
        )
        session.delete(row)
    for retirement in forgotten:
        retire_later(rt, retirement)
    return view
