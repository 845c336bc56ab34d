"""Connections: connect, read, list, list calendars, update sync config, disconnect."""

from __future__ import annotations

import time
from typing import NamedTuple

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from calsync.domain import (
    ConnectionStatus,
    ErrorReason,
    Identity,
    ListEventFromCalendars,
    Permission,
    SyncConfig,
    SyncToCalendar,
    lifecycle,
)
from calsync.errors import (
    ConnectionAlreadyDisconnected,
    ConnectionNotConnected,
    FieldViolation,
    InvalidArgument,
    NotFound,
    NotSupportedByProvider,
    PermissionDenied,
)
from calsync.providers.base import AuthRejected, ExternalCalendar, ProviderError
from calsync.service.access.auth import may_act_on, require_any
from calsync.service.connections import sync_config as sc
from calsync.service.connections.accounts import (
    provider_for,
    record_token_revoked,
    unavailable,
    with_account,
)
from calsync.service.connections.retire import capture, retire_later
from calsync.service.connections.view import to_view
from calsync.service.runtime import Runtime
from calsync.service.sync.push import stop_channels_later
from calsync.service.views import CalendarView, ConnectionList, ConnectionView
from calsync.store.connections import lifecycle_of, set_lifecycle
from calsync.store.db import transaction
from calsync.store.models import (
    Connection,
    ConnectionCalendar,
    EventInstance,
    ImportedObject,
    Schedule,
    utcnow,
)
from calsync.store.rows import lock_active_connection

CALENDAR_CACHE_SECONDS = 30.0


def _owner_of(session: Session, row: Connection) -> str | None:
    schedule = session.get(Schedule, (row.tenant_id, row.schedule_id))
    return schedule.owner_user_id if schedule else None


class Access(NamedTuple):
    """A permission pair of spec 3.1: ``own`` for the caller's schedules, ``all_`` for any."""

    own: Permission
    all_: Permission


READ = Access(Permission.READ_OWN_CONNECTIONS, Permission.READ_ALL_CONNECTIONS)
MANAGE = Access(Permission.MANAGE_OWN_CONNECTIONS, Permission.MANAGE_ALL_CONNECTIONS)


def load_connection(
    session: Session, identity: Identity, connection_id: str, access: Access
) -> Connection:
    """The tenant's connection, or NotFound; PermissionDenied if the caller may not act on it."""
    own, all_ = access
    require_any(identity, own, all_)
    row = session.get(Connection, connection_id)
    if row is None or row.tenant_id != identity.tenant_id:
        raise NotFound(f"connection {connection_id} not found")
    if not may_act_on(identity, _owner_of(session, row), own=own, all_=all_):
        raise PermissionDenied("the caller does not own this connection's schedule")
    return row


def get_connection(rt: Runtime, *, identity: Identity, connection_id: str) -> ConnectionView:
    with transaction(rt.db) as session:
        row = load_connection(
            session,
            identity,
            connection_id,
            READ,
        )
        return to_view(rt, row)


def list_connections(
    rt: Runtime, *, identity: Identity, schedule_ids: list[str] | None
) -> ConnectionList:
    """Connections by creation time; without READ_ALL only those of schedules the caller owns."""
    require_any(identity, Permission.READ_OWN_CONNECTIONS, Permission.READ_ALL_CONNECTIONS)
    with transaction(rt.db) as session:
        query = select(Connection).where(Connection.tenant_id == identity.tenant_id)
        if schedule_ids:
            query = query.where(Connection.schedule_id.in_([s.lower() for s in schedule_ids]))
        if not identity.has(Permission.READ_ALL_CONNECTIONS):
            owned = select(Schedule.id).where(
                Schedule.tenant_id == identity.tenant_id,
                Schedule.owner_user_id == (identity.user_id or "").lower(),
            )
            query = query.where(Connection.schedule_id.in_(owned))
        rows = session.scalars(query.order_by(Connection.created_at, Connection.id)).all()
        return ConnectionList([to_view(rt, r) for r in rows], failed_provider_ids=[])


def list_calendars(rt: Runtime, *, identity: Identity, connection_id: str) -> list[CalendarView]:
    with transaction(rt.db) as session:
        row = load_connection(
            session,
            identity,
            connection_id,
            READ,
        )
        provider = provider_for(rt, row)
        if not _is_connected(row):
            raise ConnectionNotConnected("the connection is not connected")
        features = provider.features
        if (
            features.list_event_from_calendars is not ListEventFromCalendars.SPECIFIC_CALENDARS
            and features.sync_to_calendar is not SyncToCalendar.SPECIFIC_CALENDAR
        ):
            raise NotSupportedByProvider("this provider cannot list calendars")
    return [CalendarView(id=c.id, name=c.name) for c in fetch_calendars(rt, row)]


def fetch_calendars(rt: Runtime, row: Connection, *, fresh: bool = False) -> list[ExternalCalendar]:
    """The account's calendars, live (cached briefly). A refused login marks the connection
    ERROR / TOKEN_REVOKED and raises ConnectionNotConnected."""
    cached = rt.calendar_cache.get(row.id)
    if cached and not fresh and time.monotonic() - cached[0] < CALENDAR_CACHE_SECONDS:
        return cached[1]
    provider = provider_for(rt, row)
    try:
        calendars = with_account(rt, row, rt.providers.adapter(provider).list_calendars)
    except AuthRejected as exc:
        record_token_revoked(rt, row.id, str(exc))
        raise ConnectionNotConnected("the external account refused the stored credentials") from exc
    except ProviderError as exc:
        raise unavailable(provider.id, exc) from exc
    rt.calendar_cache[row.id] = (time.monotonic(), calendars)
    return calendars


def _is_connected(row: Connection) -> bool:
    if row.status in (ConnectionStatus.DISCONNECTED.value, ConnectionStatus.UNDEFINED.value):
        return False
    return not (
        row.status == ConnectionStatus.ERROR.value
        and row.error_reason == ErrorReason.TOKEN_REVOKED.value
    )


def update_sync_config(
    rt: Runtime,
    *,
    identity: Identity,
    connection_id: str,
    requested: SyncConfig,
    present: set[str],
    field_mask: list[str] | None,
) -> ConnectionView:
    with transaction(rt.db) as session:
        row = load_connection(
            session,
            identity,
            connection_id,
            MANAGE,
        )
        if row.status == ConnectionStatus.DISCONNECTED.value:
            raise ConnectionNotConnected("the connection is disconnected")
        provider = provider_for(rt, row)
        merged = sc.merge(
            sc.from_json(row.sync_config), requested, present=present, field_mask=field_mask
        )
        merged = sc.with_default_target(merged, provider.features)
        sc.check_supported(merged, provider.features)
    wanted = merged.import_.calendar_ids
    if wanted is not None:
        if merged.import_.enabled and not wanted:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "syncConfig.listEventFromCalendars.calendars.calendars",
                        "must list at least one calendar when import is enabled",
                        "MIN_SIZE",
                    )
                ]
            )
        known = {c.id for c in fetch_calendars(rt, row, fresh=True)}
        unknown = [
            FieldViolation(
                f"syncConfig.listEventFromCalendars.calendars.calendars[{i}].id",
                f"calendar {cid!r} does not exist in the external account",
                "OTHER",
            )
            for i, cid in enumerate(wanted)
            if cid not in known
        ]
        if unknown:
            raise InvalidArgument(unknown)
    with transaction(rt.db) as session:
        fresh_row = lock_active_connection(session, connection_id)
        if fresh_row is None:
            raise ConnectionNotConnected("the connection was disconnected meanwhile")
        export_changed = sc.from_json(fresh_row.sync_config).export != merged.export
        fresh_row.sync_config = sc.to_json(merged)
        fresh_row.updated_at = now = utcnow()
        state = lifecycle.config_changed(
            lifecycle_of(fresh_row), now, export_changed=export_changed
        )
        set_lifecycle(fresh_row, state)
        view = to_view(rt, fresh_row)
    rt.work_available.set()
    return view


def disconnect(rt: Runtime, *, identity: Identity, connection_id: str) -> ConnectionView:
    with transaction(rt.db) as session:
        row = load_connection(
            session,
            identity,
            connection_id,
            MANAGE,
        )
        if row.status == ConnectionStatus.DISCONNECTED.value:
            raise ConnectionAlreadyDisconnected("the connection is already disconnected")
        stop_channels_later(rt, row)
        retirement = capture(session, row)
        disconnect_row(session, row)
        view = to_view(rt, row)
    rt.calendar_cache.pop(connection_id, None)
    retire_later(rt, retirement)
    return view


def disconnect_row(session: Session, row: Connection) -> bytes | None:
    """Mark DISCONNECTED, forget the secret and everything imported. Idempotent. Returns the
    forgotten secret so the caller can revoke the grant once the change is committed."""
    secret = row.secret
    set_lifecycle(row, lifecycle.disconnected(lifecycle_of(row)))
    row.secret = None
    row.account_state = {}
    row.updated_at = utcnow()
    for model in (EventInstance, ImportedObject, ConnectionCalendar):
        session.execute(delete(model).where(model.connection_id == row.id))
    return secret
