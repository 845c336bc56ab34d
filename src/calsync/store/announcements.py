"""What a connection tells the platform's webhooks, written in the transaction of the change.

- ``connection.status_changed``: whenever a connection's status or error reason settles on a
  value other than the one last announced. A sync's passing ``SYNC_IN_PROGRESS`` is not
  announced (every poll would send two messages); a first sync's CONNECTED -> SYNCED is.
- ``busy_times.changed``: each calendar's write widens the connection's unannounced span
  (``widen_changed_span``); the end of the sync run turns the span into one message per
  schedule (``announce_busy_change``). The span is a column, so a crash between the two keeps
  it for the next run's message.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, select, update
from sqlalchemy.orm import object_session

from calsync.domain import ConnectionStatus, ErrorReason
from calsync.domain.webhooks import EventType, iso
from calsync.store import webhooks
from calsync.store.models import Connection, utcnow
from calsync.store.unit import Tx
from calsync.tz import from_epoch_ms

_PASSING = ConnectionStatus.SYNC_IN_PROGRESS.value


def announce_status(row: Connection, now: datetime | None = None) -> None:
    """After a lifecycle transition on ``row``: a message if its settled status changed."""
    status, reason = row.status, row.error_reason
    before = row.announced_status or ConnectionStatus.CONNECTED.value
    before_reason = row.announced_error_reason or ErrorReason.UNDEFINED.value
    if status == _PASSING or (status, reason) == (before, before_reason):
        return
    row.announced_status, row.announced_error_reason = status, reason
    session = object_session(row)
    if session is None:
        return
    data: dict[str, object] = {
        "connectionId": row.id,
        "scheduleId": row.schedule_id,
        "status": status,
        "errorReason": reason,
        "previousStatus": before,
    }
    webhooks.enqueue(
        Tx(session), row.tenant_id, EventType.CONNECTION_STATUS_CHANGED, data, now or utcnow()
    )


def tracks_busy_changes(tx: Tx, tenant_id: str) -> bool:
    """Whether a sync of the tenant's connections must work out what it changed (a webhook
    takes ``busy_times.changed``); when none does, the import skips that work."""
    return bool(webhooks.subscribed(tx, tenant_id, EventType.BUSY_TIMES_CHANGED))


def widen_changed_span(tx: Tx, connection_id: str, from_ms: int, to_ms: int) -> None:
    """The connection's unannounced span now covers ``[from_ms, to_ms)`` too."""
    tx.session.execute(
        update(Connection)
        .where(Connection.id == connection_id)
        .values(
            changed_from_ms=case(
                (Connection.changed_from_ms.is_(None), from_ms),
                (Connection.changed_from_ms > from_ms, from_ms),
                else_=Connection.changed_from_ms,
            ),
            changed_to_ms=case(
                (Connection.changed_to_ms.is_(None), to_ms),
                (Connection.changed_to_ms < to_ms, to_ms),
                else_=Connection.changed_to_ms,
            ),
        )
        .execution_options(synchronize_session=False)
    )


def announce_busy_change(tx: Tx, connection_id: str, now: datetime | None = None) -> bool:
    """Turn the connection's unannounced span into one ``busy_times.changed`` message (for the
    webhooks subscribed now) and clear it; False when there was none."""
    span = tx.session.execute(
        select(
            Connection.tenant_id,
            Connection.schedule_id,
            Connection.changed_from_ms,
            Connection.changed_to_ms,
        ).where(Connection.id == connection_id)
    ).first()
    if span is None or span.changed_from_ms is None or span.changed_to_ms is None:
        return False
    data: dict[str, object] = {
        "scheduleId": span.schedule_id,
        "connectionId": connection_id,
        "from": iso(from_epoch_ms(span.changed_from_ms)),
        "to": iso(from_epoch_ms(span.changed_to_ms)),
    }
    webhooks.enqueue(tx, span.tenant_id, EventType.BUSY_TIMES_CHANGED, data, now or utcnow())
    tx.session.execute(
        update(Connection)
        .where(Connection.id == connection_id)
        .values(changed_from_ms=None, changed_to_ms=None)
        .execution_options(synchronize_session=False)
    )
    return True
