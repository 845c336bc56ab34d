"""Row locking that works the same on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from calsync.store.models import Connection, utcnow

DISCONNECTED = "DISCONNECTED"


def lock_active_connection(session: Session, connection_id: str) -> Connection | None:
    """Lock a not-disconnected connection for the rest of the transaction and return it fresh.

    A guarded UPDATE is the first write: PostgreSQL then holds the row lock, SQLite the
    database write lock, so a concurrent Disconnect either committed before (we get None) or
    waits for us (and then deletes what we wrote). A read-then-write would lose that race.
    """
    result = session.execute(
        update(Connection)
        .where(Connection.id == connection_id, Connection.status != DISCONNECTED)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(Connection, connection_id, populate_existing=True)
