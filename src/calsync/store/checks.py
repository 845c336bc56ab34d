"""Change checks in the store: which connections are due for one, claiming them, and what a
check found (``service.sync.checks`` runs them).

A check is due when ``next_check_at`` has passed (or was never set) on a connection that has
completed a sync and is not due for one anyway. Claiming moves ``next_check_at`` to a hold
time in one conditional UPDATE, so two workers never check one connection at once; finishing
sets the real next time (jittered by the caller) and, when nothing changed, ``fresh_as_of``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, exists, or_, select, update

from calsync.domain import ConnectionStatus, ErrorReason
from calsync.domain.lifecycle import NOTIFICATION_COALESCE
from calsync.store.models import Connection, ConnectionCalendar, PushChannelRow
from calsync.store.unit import Tx


@dataclass(frozen=True)
class CheckResult:
    """What one check found: ``fresh_as_of`` is set when nothing had changed (the moment the
    check asked), None when it found a change or failed."""

    connection_id: str
    next_check_at: datetime
    fresh_as_of: datetime | None = None


def _checkable(now: datetime) -> ColumnElement[bool]:
    return and_(
        Connection.status != ConnectionStatus.DISCONNECTED.value,
        Connection.error_reason != ErrorReason.TOKEN_REVOKED.value,
        Connection.last_synced_at.is_not(None),
        # Not due for a sync, nor about to be (a notification's coalescing second).
        Connection.next_sync_at > now + NOTIFICATION_COALESCE,
        or_(Connection.lease_owner.is_(None), Connection.lease_expires_at < now),
    )


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(Connection.next_check_at.is_(None), Connection.next_check_at <= now)


def claim_checks(
    tx: Tx, *, provider_ids: Collection[str], now: datetime, hold_until: datetime, limit: int
) -> list[tuple[str, str]]:
    """(connection id, provider id) of up to ``limit`` connections of ``provider_ids`` whose
    check is due, the longest-waiting first; each is held until ``hold_until``."""
    if limit <= 0 or not provider_ids:
        return []
    candidates = tx.session.execute(
        select(Connection.id, Connection.provider_id)
        .where(Connection.provider_id.in_(provider_ids), _checkable(now), _due(now))
        .order_by(Connection.next_check_at.asc().nulls_first())
        .limit(limit)
    ).all()
    if not candidates:
        return []
    claimed = set(
        tx.session.scalars(
            update(Connection)
            .where(Connection.id.in_([c[0] for c in candidates]), _due(now))
            .values(next_check_at=hold_until)
            .returning(Connection.id)
        )
    )
    return [(cid, pid) for cid, pid in candidates if cid in claimed]


def calendar_cursors(tx: Tx, connection_id: str) -> dict[str, str | None]:
    """Calendar id -> the cursor of its last read, for every imported calendar."""
    rows = tx.session.execute(
        select(ConnectionCalendar.calendar_id, ConnectionCalendar.cursor).where(
            ConnectionCalendar.connection_id == connection_id
        )
    ).all()
    return {calendar_id: cursor for calendar_id, cursor in rows}


def finish_checks(tx: Tx, results: Sequence[CheckResult]) -> None:
    """Record checks: the next check time of each, and ``fresh_as_of`` (never moved back)
    where nothing had changed; one statement for the lot."""
    unchanged = [r for r in results if r.fresh_as_of is not None]
    core = cast(Table, Connection.__table__)  # Core statements: executemany, values per row
    table = core.c
    connection = tx.session.connection()
    if results:
        connection.execute(
            update(core)
            .where(table.id == bindparam("cid"))
            .values(next_check_at=bindparam("next_at")),
            [{"cid": r.connection_id, "next_at": r.next_check_at} for r in results],
        )
    if unchanged:
        connection.execute(
            update(core)
            .where(
                table.id == bindparam("cid"),
                # A sync or check that knew more meanwhile is not undone, nor a connection
                # made due meanwhile (a notification, a request: the store may be behind).
                or_(table.fresh_as_of.is_(None), table.fresh_as_of < bindparam("at")),
                table.next_sync_at > bindparam("at"),
            )
            .values(fresh_as_of=bindparam("at")),
            [{"cid": r.connection_id, "at": r.fresh_as_of} for r in unchanged],
        )


def mark_push_fresh(tx: Tx, *, provider_ids: Collection[str], now: datetime) -> int:
    """Connections of ``provider_ids`` whose every imported calendar has a live push channel
    and that are not due: the provider would have told us of a change, so the store is fresh
    up to ``now``. Returns how many moved."""
    if not provider_ids:
        return 0
    live = select(PushChannelRow.channel_id).where(
        PushChannelRow.connection_id == ConnectionCalendar.connection_id,
        PushChannelRow.calendar_id == ConnectionCalendar.calendar_id,
        PushChannelRow.expires_at > now,
    )
    uncovered = exists(
        select(ConnectionCalendar.calendar_id).where(
            ConnectionCalendar.connection_id == Connection.id, ~exists(live)
        )
    )
    has_calendars = exists(
        select(ConnectionCalendar.calendar_id).where(
            ConnectionCalendar.connection_id == Connection.id
        )
    )
    result = tx.session.execute(
        update(Connection)
        .where(
            Connection.provider_id.in_(provider_ids),
            _checkable(now),
            has_calendars,
            ~uncovered,
            or_(Connection.fresh_as_of.is_(None), Connection.fresh_as_of < now),
        )
        .values(fresh_as_of=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Freshness:
    """How a connection is kept fresh, for ``/v1/connections/{id}/sync``."""

    fresh_as_of: datetime | None
    next_check_at: datetime | None
    live_push_channels: int
    push_channels: int
    next_channel_expiry: datetime | None


def freshness_of(tx: Tx, connection_id: str, now: datetime) -> Freshness:
    row = tx.session.execute(
        select(Connection.fresh_as_of, Connection.next_check_at).where(
            Connection.id == connection_id
        )
    ).one()
    expiries = list(
        tx.session.scalars(
            select(PushChannelRow.expires_at).where(PushChannelRow.connection_id == connection_id)
        )
    )
    live = [e for e in expiries if e > now]
    return Freshness(
        fresh_as_of=row[0],
        next_check_at=row[1],
        live_push_channels=len(live),
        push_channels=len(expiries),
        next_channel_expiry=min(live) if live else None,
    )
