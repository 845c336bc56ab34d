"""Who syncs which connection: row leases in the database, so any number of workers (and API
processes freshening List Events) can share one PostgreSQL without syncing a connection twice.

A lease is a (owner, expiry) pair on the connection row. Taking it is one conditional UPDATE;
a worker killed mid-sync simply lets it expire, and the next claim picks the connection up.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update

from calsync.domain import ConnectionStatus, ErrorReason
from calsync.service.runtime import Runtime
from calsync.store.db import transaction
from calsync.store.models import Connection, utcnow
from calsync.store.unit import DatabaseError


def _free(now: datetime) -> ColumnElement[bool]:
    return or_(Connection.lease_owner.is_(None), Connection.lease_expires_at < now)


def acquire(rt: Runtime, connection_id: str, owner: str) -> bool:
    """Take (or extend) the lease of one connection; False while another owner holds it."""
    now = utcnow()
    with transaction(rt.db) as session:
        result = session.execute(
            update(Connection)
            .where(
                Connection.id == connection_id,
                or_(_free(now), Connection.lease_owner == owner),
            )
            .values(lease_owner=owner, lease_expires_at=now + _lease(rt))
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


class LeaseLost(Exception):
    """Another worker holds the connection's lease now (ours expired during long work): stop,
    write nothing more, record nothing."""


def held_by_another(lease_owner: str | None, lease_expires_at: datetime | None, owner: str) -> bool:
    """Whether a live lease of someone other than ``owner`` is on the row."""
    return (
        lease_owner is not None
        and lease_owner != owner
        and lease_expires_at is not None
        and lease_expires_at > utcnow()
    )


@contextlib.contextmanager
def renewed(rt: Runtime, connection_id: str, owner: str) -> Iterator[None]:
    """Keep ``owner``'s lease alive while the block runs: renewed every third of its length,
    so long work (a big import, a slow server) is never claimed again by another worker. If a
    renewal finds the lease taken, renewing stops; the work finds out at its next write
    (``LeaseLost``)."""
    stop = threading.Event()
    interval = max(0.05, rt.settings.lease_seconds / 3)

    def renew() -> None:
        while not stop.wait(interval):
            try:
                if not acquire(rt, connection_id, owner):
                    return
            except DatabaseError:  # the database is restarting: try again next time
                continue

    thread = threading.Thread(target=renew, name="calsync-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def release(rt: Runtime, connection_id: str, owner: str) -> None:
    with transaction(rt.db) as session:
        session.execute(
            update(Connection)
            .where(Connection.id == connection_id, Connection.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
        )


def claim_due(rt: Runtime, owner: str, limit: int, *, exclude: set[str] | None = None) -> list[str]:
    """Lease up to ``limit`` due connections, the longest-waiting first (so none starves).

    Free leases are taken, and so are ``owner``'s own leases that it is not working on
    (``exclude`` lists those it is): a job cut short by a database outage may not have been
    able to release its lease. On PostgreSQL the candidate rows are locked with SKIP LOCKED,
    so concurrent workers never pick the same row; SQLite serialises writers, and the
    conditional UPDATE settles the rest.
    """
    if limit <= 0:
        return []
    now = utcnow()
    claimable = or_(_free(now), Connection.lease_owner == owner)
    with transaction(rt.db) as session:
        candidates = (
            select(Connection.id)
            .where(
                Connection.status != ConnectionStatus.DISCONNECTED.value,
                Connection.error_reason != ErrorReason.TOKEN_REVOKED.value,
                Connection.next_sync_at <= now,
                claimable,
                Connection.id.not_in(sorted(exclude or ())),
            )
            .order_by(Connection.next_sync_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list(session.scalars(candidates))
        if not ids:
            return []
        session.execute(
            update(Connection)
            .where(Connection.id.in_(ids), claimable)
            .values(lease_owner=owner, lease_expires_at=now + _lease(rt))
        )
        owned = session.scalars(
            select(Connection.id).where(Connection.id.in_(ids), Connection.lease_owner == owner)
        )
        return list(owned)


def backoff(rt: Runtime, failures: int, retry_after: float | None) -> timedelta:
    """Exponential backoff with full jitter, never sooner than the provider's Retry-After."""
    ceiling = min(rt.settings.retry_max_seconds, rt.settings.retry_base_seconds * 2**failures)
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return timedelta(seconds=delay)


def _lease(rt: Runtime) -> timedelta:
    return timedelta(seconds=rt.settings.lease_seconds)
