"""The connections aggregate: a connected account, its lifecycle and its settings."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case
from sqlalchemy import update as sql_update

from calsync.domain import ConnectionStatus
from calsync.domain.lifecycle import NOTIFICATION_COALESCE, Lifecycle
from calsync.store.announcements import announce_status
from calsync.store.models import Connection
from calsync.store.rows import lock_active_connection
from calsync.store.unit import Tx

LIFECYCLE_FIELDS = tuple(f.name for f in fields(Lifecycle))


@dataclass(frozen=True)
class ConnectionRecord:
    """A stored connection (its sealed secret stays sealed)."""

    id: str
    tenant_id: str
    provider_id: str
    schedule_id: str
    user_id: str | None
    app_id: str | None
    external_account_email: str | None
    sync_config: dict[str, Any]
    secret: bytes | None
    account_state: dict[str, Any]
    lifecycle: Lifecycle
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    max_instance_ms: int | None

    @property
    def status(self) -> str:
        return self.lifecycle.status

    @property
    def error_reason(self) -> str:
        return self.lifecycle.error_reason


def lifecycle_of(row: Connection) -> Lifecycle:
    return Lifecycle(**{name: getattr(row, name) for name in LIFECYCLE_FIELDS})


def set_lifecycle(row: Connection, state: Lifecycle) -> None:
    """Write a transition's result onto a row the caller holds (the row's transaction commits),
    and the ``connection.status_changed`` message it causes, if any, in the same transaction."""
    for name in LIFECYCLE_FIELDS:
        setattr(row, name, getattr(state, name))
    announce_status(row)


def record_of(row: Connection) -> ConnectionRecord:
    return ConnectionRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        provider_id=row.provider_id,
        schedule_id=row.schedule_id,
        user_id=row.user_id,
        app_id=row.app_id,
        external_account_email=row.external_account_email,
        sync_config=row.sync_config,
        secret=row.secret,
        account_state=row.account_state,
        lifecycle=lifecycle_of(row),
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        max_instance_ms=row.max_instance_ms,
    )


def get(tx: Tx, connection_id: str) -> ConnectionRecord | None:
    row = tx.session.get(Connection, connection_id)
    return record_of(row) if row is not None else None


def lock_active(tx: Tx, connection_id: str) -> ConnectionRecord | None:
    """Lock a not-disconnected connection for the rest of ``tx`` (see
    ``store.rows.lock_active_connection``); None when it is disconnected or gone."""
    row = lock_active_connection(tx.session, connection_id)
    return record_of(row) if row is not None else None


def save_lifecycle(tx: Tx, connection_id: str, state: Lifecycle) -> None:
    row = tx.session.get(Connection, connection_id)
    if row is not None:
        set_lifecycle(row, state)


def update(tx: Tx, connection_id: str, **values: Any) -> None:
    """Set plain columns (``sync_config``, ``account_state``, ``secret``, ...); lifecycle
    fields change only through ``save_lifecycle``."""
    bad = set(values) & set(LIFECYCLE_FIELDS)
    if bad:
        raise ValueError(f"lifecycle fields change through save_lifecycle: {sorted(bad)}")
    row = tx.session.get(Connection, connection_id)
    if row is not None:
        for name, value in values.items():
            setattr(row, name, value)


def mark_schedule_export_due(tx: Tx, tenant_id: str, schedule_id: str, now: datetime) -> None:
    """``lifecycle.export_due`` for every active connection of the schedule, as one UPDATE.
    A connection backing off after failures (a rate limit, an outage) keeps its retry time:
    the change is exported when it retries, and the provider is not hammered meanwhile."""
    tx.session.execute(
        sql_update(Connection)
        .where(
            Connection.tenant_id == tenant_id,
            Connection.schedule_id == schedule_id,
            Connection.status != ConnectionStatus.DISCONNECTED.value,
            Connection.failure_count == 0,
        )
        .values(next_sync_at=now, export_requested_at=now)
    )


def mark_notified(tx: Tx, connection_id: str, now: datetime) -> None:
    """``lifecycle.notified`` as one UPDATE (no read of the row first); running: the lease is
    held."""
    soon = now + NOTIFICATION_COALESCE
    running = and_(Connection.lease_owner.is_not(None), Connection.lease_expires_at > now)
    tx.session.execute(
        sql_update(Connection)
        .where(Connection.id == connection_id)
        .values(
            next_sync_at=case(
                (Connection.next_sync_at > soon, soon),
                (and_(running, Connection.next_sync_at <= now), soon),
                else_=Connection.next_sync_at,
            )
        )
    )


# --- events ---
# Imported here, not above, so that this block merges apart from the rest of the module.
from sqlalchemy import select  # noqa: E402

from calsync.store.models import ConnectionCalendar  # noqa: E402


def rows_of(tx: Tx, connection_ids: list[str]) -> list[Connection]:
    """The ORM rows of ``connection_ids`` that exist, in that order. A bridge for the
    transition period (as ``lifecycle_of``): List Events' live read hands them to
    ``accounts.with_account`` and ``sync.instances.expansion_context``, which still take a
    row; once they take a ``ConnectionRecord`` this returns records."""
    if not connection_ids:
        return []
    rows = {
        r.id: r
        for r in tx.session.scalars(select(Connection).where(Connection.id.in_(connection_ids)))
    }
    return [rows[cid] for cid in connection_ids if cid in rows]


def calendar_ids(tx: Tx, connection_id: str) -> list[str]:
    """The ids of the calendars the connection imports."""
    return list(
        tx.session.scalars(
            select(ConnectionCalendar.calendar_id).where(
                ConnectionCalendar.connection_id == connection_id
            )
        )
    )
