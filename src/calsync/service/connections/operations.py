"""What an operator asks of the whole deployment, across tenants: the connections, which ones
the worker syncs, and how far behind it is. Callers are the CLI and ``/metrics``; there is no
caller identity here, so nothing of this is reachable through the tenant API."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select

from calsync.domain import ConnectionStatus, ErrorReason
from calsync.metrics import QueueSnapshot
from calsync.service.runtime import Runtime
from calsync.store.models import Connection, utcnow
from calsync.store.unit import DatabaseError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatorConnection:
    id: str
    tenant_id: str
    schedule_id: str
    provider_id: str
    provider_name: str
    external_account_email: str | None
    status: ConnectionStatus
    error_reason: ErrorReason
    last_synced_at: datetime | None
    last_error: str | None


def syncable() -> ColumnElement[bool]:
    """Connections the worker syncs: not disconnected, and not waiting to be connected again
    after the account refused its credentials (the same rule as ``leases.claim_due``)."""
    return and_(
        Connection.status != ConnectionStatus.DISCONNECTED.value,
        Connection.error_reason != ErrorReason.TOKEN_REVOKED.value,
    )


def list_connections(rt: Runtime, *, tenant_id: str | None = None) -> list[OperatorConnection]:
    """Every connection (of one tenant, if given), by tenant and creation time."""
    query = select(Connection).order_by(Connection.tenant_id, Connection.created_at, Connection.id)
    if tenant_id is not None:
        query = query.where(Connection.tenant_id == tenant_id)
    with rt.db() as session:
        return [_operator_view(rt, row) for row in session.scalars(query)]


def _operator_view(rt: Runtime, row: Connection) -> OperatorConnection:
    provider = next(
        (p for p in rt.providers.all() if p.id.lower() == row.provider_id.lower()), None
    )
    return OperatorConnection(
        id=row.id,
        tenant_id=row.tenant_id,
        schedule_id=row.schedule_id,
        provider_id=row.provider_id,
        provider_name=provider.name if provider else "(not configured)",
        external_account_email=row.external_account_email,
        status=ConnectionStatus(row.status),
        error_reason=ErrorReason(row.error_reason),
        last_synced_at=row.last_synced_at,
        last_error=row.last_error,
    )


def get_connection(rt: Runtime, *, connection_id: str) -> OperatorConnection | None:
    with rt.db() as session:
        row = session.get(Connection, connection_id)
        return _operator_view(rt, row) if row is not None else None


def syncable_connection_ids(rt: Runtime, *, tenant_id: str | None = None) -> list[str]:
    query = select(Connection.id).where(syncable()).order_by(Connection.created_at, Connection.id)
    if tenant_id is not None:
        query = query.where(Connection.tenant_id == tenant_id)
    with rt.db() as session:
        return list(session.scalars(query))


def queue_snapshot(rt: Runtime) -> QueueSnapshot | None:
    """Sync lag (age of the oldest sync among syncable connections; a connection that never
    synced counts from its creation), how many are due now, and connections by status.
    None when the database cannot be reached."""
    try:
        return _queue_snapshot(rt)
    except DatabaseError as exc:
        log.warning("metrics cannot read the database", extra={"reason": str(exc)[:200]})
        return None


def _queue_snapshot(rt: Runtime) -> QueueSnapshot:
    now = utcnow()
    with rt.db() as session:
        oldest = session.scalar(
            select(func.min(func.coalesce(Connection.last_synced_at, Connection.created_at))).where(
                syncable()
            )
        )
        due = session.scalar(
            select(func.count())
            .select_from(Connection)
            .where(syncable(), Connection.next_sync_at <= now)
        )
        counts = session.execute(
            select(Connection.status, func.count()).group_by(Connection.status)
        )
        by_status = {str(status): int(count) for status, count in counts}
    # min() over a TypeDecorator column comes back raw on some backends: normalise it.
    if isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    lag = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return QueueSnapshot(
        lag_seconds=lag,
        due_now=int(due or 0),
        by_status={s.value: by_status.get(s.value, 0) for s in ConnectionStatus},
    )
