"""List Events: busy blocks of the selected connections, from the store, freshened on demand.

The common call (every connection fresh, the window inside the stored horizon) is two SQL
statements on one pooled connection: the contributing connections joined with their schedule
and calendar names, then the page. Both select columns, not ORM entities: this is the hottest
path of the service (bench/README.md has the numbers).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache, partial
from typing import Any

from sqlalchemy import Connection as DbConnection
from sqlalchemy import Engine, Select, and_, bindparam, case, func, select, tuple_

from calsync.domain import CalendarType, ConnectionStatus, ErrorReason, Identity, Permission
from calsync.errors import ProviderUnavailable
from calsync.service.access.auth import owns, require_any
from calsync.service.events import cursor as cursors
from calsync.service.events.live import live_rows, outside_horizon, sort_key
from calsync.service.runtime import Runtime
from calsync.service.sync.run import SyncFailed, sync_connection
from calsync.service.views import EventsPage, EventView
from calsync.store.db import reading, transaction
from calsync.store.models import Connection, ConnectionCalendar, EventInstance, Schedule
from calsync.store.raw_rows import fetch_tuples, utc_datetime
from calsync.tz import zone

log = logging.getLogger(__name__)

_SORT_COLUMNS = (
    EventInstance.start_ms,
    EventInstance.end_ms,
    EventInstance.schedule_id,
    EventInstance.connection_id,
    EventInstance.calendar_id,
    EventInstance.instance_key,
)
_PAGE_COLUMNS = (
    *_SORT_COLUMNS,
    EventInstance.all_day,
    EventInstance.start_date,
    EventInstance.end_date,
    EventInstance.title,
)


# A page row: the sort key's six columns, then all_day, start_date, end_date, title.
PageRow = tuple[int, int, str, str, str, str, bool, str | None, str | None, str]


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    owner_user_id: str | None
    owner_name: str
    time_zone: str


@dataclass(slots=True)
class Contributor:
    """A connection whose events the call may return, with what rendering needs of it."""

    id: str
    provider_id: str
    schedule_id: str
    status: str
    error_reason: str
    last_synced_at: datetime | None
    sync_requested_at: datetime
    created_at: datetime
    schedule: ScheduleInfo | None
    calendar_names: dict[str, str] = field(default_factory=dict)


def list_events(
    rt: Runtime, *, identity: Identity, query: cursors.EventQuery, limit: int
) -> EventsPage:
    """One page of events overlapping [from, to), sorted by (start, end, schedule, key).

    Raises ProviderUnavailable when a contributing connection cannot be read and partial
    results were not allowed (or when every connection failed).
    """
    require_any(identity, Permission.READ_EVENTS)
    live = outside_horizon(rt, query)
    with reading(rt.engine) as db:
        connections = _contributing(db, identity.tenant_id, query)
        failed, stale = _classify(rt, connections)
        if not stale and not live:
            return _stored_page(rt, db, identity, query, limit, connections, failed)
    if stale:
        failed.update(_freshen(rt, stale))
    failed_ids = _raise_if_failed(connections, failed, query)
    readable = [c for c in connections if c.id not in failed]
    rows: Sequence[PageRow] = []
    if stale or not live:
        with reading(rt.engine) as db:
            if stale:  # a sync may have added calendars or changed the schedule
                _refresh(connections, _contributing(db, identity.tenant_id, query))
            if not live:
                rows = _page(db, readable, query, limit)
    if live:
        found, live_failed = live_rows(rt, _entities(rt, readable), query, limit)
        rows = [_as_row(r) for r in found]
        if live_failed:
            failed.update(live_failed)
            failed_ids = _raise_if_failed(connections, failed, query)
            readable = [c for c in readable if c.id not in failed]
    return _finish(rt, rt.engine, identity, query, limit, readable, rows, failed_ids)


def stored_events(
    rt: Runtime, engine: Engine, *, identity: Identity, query: cursors.EventQuery, limit: int
) -> EventsPage | None:
    """``list_events`` when it needs nothing but the store (every selected connection fresh
    or failed for good, the window inside the stored horizon), read through ``engine``; None
    when a connection must be synced first or the window read live, which only
    ``list_events`` does.

    A few reads and no waiting on a provider: on SQLite, ``api.calls`` runs this on the
    event loop itself, with ``rt.loop_engine`` (see ``store.db.make_loop_engine``)."""
    require_any(identity, Permission.READ_EVENTS)
    if outside_horizon(rt, query):
        return None
    with reading(engine) as db:
        connections = _contributing(db, identity.tenant_id, query)
        failed, stale = _classify(rt, connections)
        if stale:
            return None
        return _stored_page(rt, db, identity, query, limit, connections, failed)


def _stored_page(
    rt: Runtime,
    db: DbConnection,
    identity: Identity,
    query: cursors.EventQuery,
    limit: int,
    connections: list[Contributor],
    failed: dict[str, str],
) -> EventsPage:
    """The page when no connection needs a sync and the window is stored: read with ``db``."""
    failed_ids = _raise_if_failed(connections, failed, query)
    readable = [c for c in connections if c.id not in failed]
    rows = _page(db, readable, query, limit)
    return _finish(rt, db.engine, identity, query, limit, readable, rows, failed_ids)


def _finish(
    rt: Runtime,
    engine: Engine,
    identity: Identity,
    query: cursors.EventQuery,
    limit: int,
    readable: list[Contributor],
    rows: Sequence[PageRow],
    failed_ids: list[str],
) -> EventsPage:
    """The page of ``rows`` (up to ``limit + 1`` in sort order): events and the next cursor."""
    events = _render(rt, engine, identity, readable, rows[:limit], query.own_pi)
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = cursors.encode(
            rt.cursor_key,
            identity.tenant_id,
            cursors.continue_after(query, (last[0], last[1], last[2], last[3], last[4], last[5])),
            rt.settings.cursor_ttl_seconds,
        )
    return EventsPage(events=events, next_cursor=next_cursor, failed_provider_ids=failed_ids)


def _refresh(connections: list[Contributor], reread: list[Contributor]) -> None:
    """Take the calendar names and schedules as they are after a sync (it may add calendars)."""
    fresh = {c.id: c for c in reread}
    for c in connections:
        if c.id in fresh:
            c.calendar_names, c.schedule = fresh[c.id].calendar_names, fresh[c.id].schedule


def _as_row(r: EventInstance) -> PageRow:
    return (*sort_key(r), r.all_day, r.start_date, r.end_date, r.title)


def _raise_if_failed(
    connections: list[Contributor], failed: dict[str, str], query: cursors.EventQuery
) -> list[str]:
    """The failed provider ids; ProviderUnavailable unless partial results are allowed and
    some connection could be read."""
    failed_ids = _distinct(c.provider_id for c in connections if c.id in failed)
    if failed and (not query.partial_failure or len(failed) == len(connections)):
        raise ProviderUnavailable(
            "events of some connections could not be read from their provider",
            data={"failedProviderIds": failed_ids},
        )
    return failed_ids


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


@lru_cache(maxsize=16)
def _contributing_statement(by_schedule: bool, by_user: bool) -> Select[*tuple[Any, ...]]:
    """Built once per shape; values are bound per call (``tenant``, ``schedules``, ``users``)."""
    stmt = (
        select(
            Connection.id,
            Connection.provider_id,
            Connection.schedule_id,
            Connection.status,
            Connection.error_reason,
            # Only this flag of the config: no JSON document decoded per row.
            Connection.sync_config[("import", "enabled")].as_boolean(),
            Connection.last_synced_at,
            Connection.sync_requested_at,
            Connection.created_at,
            Schedule.id.label("known_schedule"),
            Schedule.owner_user_id,
            Schedule.owner_name,
            Schedule.time_zone,
            ConnectionCalendar.calendar_id,
            ConnectionCalendar.name.label("calendar_name"),
        )
        .select_from(Connection)
        .outerjoin(
            Schedule,
            and_(Schedule.tenant_id == Connection.tenant_id, Schedule.id == Connection.schedule_id),
        )
        .outerjoin(ConnectionCalendar, ConnectionCalendar.connection_id == Connection.id)
        .where(
            Connection.tenant_id == bindparam("tenant"),
            Connection.status != ConnectionStatus.DISCONNECTED.value,
        )
    )
    if by_schedule:
        stmt = stmt.where(Connection.schedule_id.in_(bindparam("schedules", expanding=True)))
    if by_user:
        # The joined schedule is the connection's own (same tenant and id): owner filter on it.
        stmt = stmt.where(Schedule.owner_user_id.in_(bindparam("users", expanding=True)))
    return stmt


def _contributing(db: DbConnection, tenant_id: str, query: cursors.EventQuery) -> list[Contributor]:
    """The tenant's selected, not disconnected connections that import, oldest first."""
    stmt = _contributing_statement(bool(query.schedule_ids), bool(query.user_ids))
    params: dict[str, Any] = {"tenant": tenant_id}
    if query.schedule_ids:
        params["schedules"] = list(query.schedule_ids)
    if query.user_ids:
        params["users"] = list(query.user_ids)
    found: dict[str, Contributor] = {}
    # Rows unpacked by position (the select's column order): the cheapest way to read them.
    for (
        cid,
        provider_id,
        schedule_id,
        status,
        error_reason,
        imports,
        last_synced_at,
        sync_requested_at,
        created_at,
        known_schedule,
        owner_user_id,
        owner_name,
        time_zone,
        calendar_id,
        calendar_name,
    ) in fetch_tuples(db, stmt, params):  # driver tuples: imports may be 0/1 (SQLite)
        c = found.get(cid)
        if c is None:
            if not imports:
                continue
            schedule = (
                ScheduleInfo(owner_user_id, owner_name, time_zone)
                if known_schedule is not None
                else None
            )
            c = found[cid] = Contributor(
                cid,
                provider_id,
                schedule_id,
                status,
                error_reason,
                utc_datetime(last_synced_at),
                utc_datetime(sync_requested_at),
                utc_datetime(created_at),
                schedule,
            )
        if calendar_id is not None:
            c.calendar_names[calendar_id] = calendar_name
    # Sorted here, not in SQL: an ORDER BY created_at makes SQLite walk all of the tenant's
    # connections in (tenant_id, created_at) order instead of using (tenant_id, schedule_id).
    return sorted(found.values(), key=lambda c: (c.created_at, c.id))


def _classify(
    rt: Runtime, connections: list[Contributor]
) -> tuple[dict[str, str], list[Contributor]]:
    """(connection id -> provider id of those that cannot be read, the stale ones to sync)."""
    failed: dict[str, str] = {}
    stale = []
    horizon = datetime.now(UTC) - timedelta(seconds=rt.settings.freshness_seconds)
    for c in connections:
        if c.status == ConnectionStatus.ERROR.value and (
            c.error_reason == ErrorReason.TOKEN_REVOKED.value
        ):
            failed[c.id] = c.provider_id
        elif (
            c.last_synced_at is None
            or c.last_synced_at < horizon
            or c.last_synced_at < c.sync_requested_at
        ):
            stale.append(c)
    return failed, stale


def _freshen(rt: Runtime, stale: list[Contributor]) -> dict[str, str]:
    """Sync connections whose data is older than the freshness bound, within the time budget.

    Returns connection id -> provider id of those that could not be read for this call.
    """
    failed: dict[str, str] = {}
    deadline = time.monotonic() + rt.settings.sync_time_budget_seconds
    futures = {rt.submit(partial(sync_connection, rt, c.id)): c for c in stale}
    for future, connection in futures.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
        except (SyncFailed, concurrent.futures.TimeoutError):
            failed[connection.id] = connection.provider_id
        except Exception:
            log.exception("sync crashed", extra={"connection_id": connection.id})
            failed[connection.id] = connection.provider_id
    return failed


def _entities(rt: Runtime, connections: list[Contributor]) -> list[Connection]:
    """The ORM rows of ``connections`` (same order), for the live read's provider calls."""
    if not connections:
        return []
    with transaction(rt.db) as session:
        rows = {
            r.id: r
            for r in session.scalars(
                select(Connection).where(Connection.id.in_([c.id for c in connections]))
            )
        }
    return [rows[c.id] for c in connections if c.id in rows]


# The longest instance any of the selected connections stores, or NULL when one of them does
# not know (then there is no bound). Read in the page statement itself, so that the bound and
# the instances come from the same snapshot even while a sync commits.
_LONGEST = (
    select(
        case(
            (
                func.count() == func.count(Connection.max_instance_ms),
                func.max(Connection.max_instance_ms),
            )
        )
    )
    .where(Connection.id.in_(bindparam("ids", expanding=True)))
    .scalar_subquery()
)
_NO_BOUND = -(2**62)


@lru_cache(maxsize=32)
def _page_statement(all_day: bool, after: bool) -> Select[*tuple[Any, ...]]:
    zero_length = (EventInstance.start_ms == EventInstance.end_ms) & (
        EventInstance.start_ms >= bindparam("from_ms")
    )
    stmt = select(*_PAGE_COLUMNS).where(
        EventInstance.connection_id.in_(bindparam("ids", expanding=True)),
        EventInstance.start_ms < bindparam("to_ms"),
        (EventInstance.end_ms > bindparam("from_ms")) | zero_length,
        # No stored instance of these connections lasts longer than _LONGEST, so none that
        # starts earlier than this can reach into the window: the index range starts here.
        EventInstance.start_ms >= func.coalesce(bindparam("from_ms") - _LONGEST, _NO_BOUND),
    )
    if all_day:
        stmt = stmt.where(EventInstance.all_day == bindparam("all_day"))
    if after:
        stmt = stmt.where(
            tuple_(*_SORT_COLUMNS)
            > tuple_(*(bindparam(f"after{i}") for i in range(len(_SORT_COLUMNS))))
        )
    return stmt.order_by(*_SORT_COLUMNS).limit(bindparam("limit"))


def _page(
    db: DbConnection, connections: list[Contributor], query: cursors.EventQuery, limit: int
) -> Sequence[PageRow]:
    """Up to ``limit + 1`` stored instances after ``query.after``, in sort order."""
    if not connections:
        return []
    params: dict[str, Any] = {
        "ids": [c.id for c in connections],
        "from_ms": query.from_ms,
        "to_ms": query.to_ms,
        "limit": limit + 1,
    }
    if query.all_day is not None:
        params["all_day"] = query.all_day
    if query.after is not None:
        params.update({f"after{i}": v for i, v in enumerate(query.after)})
    stmt = _page_statement(query.all_day is not None, query.after is not None)
    return fetch_tuples(db, stmt, params)  # driver tuples: all_day may be 0/1 (SQLite)


def _render(
    rt: Runtime,
    engine: Engine,
    identity: Identity,
    connections: list[Contributor],
    rows: Sequence[PageRow],
    own_pi: bool,
) -> list[EventView]:
    if not rows:
        return []
    schedules = {c.schedule_id: c.schedule for c in connections}
    missing = {r[2] for r in rows} - schedules.keys()
    if missing:  # an instance filed under another schedule than its connection's
        schedules.update(_schedules(engine, identity.tenant_id, missing))
    read_all = identity.has(Permission.READ_ALL_CONNECTIONS)
    # Everything that depends on the schedule or the connection only, computed once.
    per_schedule: dict[str, tuple[str | None, bool, str, str | None]] = {}
    for sid, schedule in schedules.items():
        owner = schedule.owner_user_id if schedule else None
        pi = own_pi and (read_all or owns(identity, owner))
        per_schedule[sid] = (
            owner,
            pi,
            schedule.time_zone if schedule else "UTC",
            (schedule.owner_name if schedule else "") if pi else None,
        )
    by_id = {}
    for c in connections:
        provider = rt.providers.get(c.provider_id)
        calendar_type = provider.calendar_type if provider else CalendarType.UNDEFINED
        by_id[c.id] = (calendar_type, c.calendar_names)
    events: list[EventView] = []
    append = events.append
    for start_ms, end_ms, sid, cid, calendar_id, _key, all_day, start_date, end_date, title in rows:
        owner, pi, time_zone, owner_name = per_schedule[sid]
        calendar_type, names = by_id[cid]
        all_day = bool(all_day)
        if all_day and start_date and end_date:
            start = _local_midnight(start_date, time_zone)
            end = _local_midnight(end_date, time_zone)
        else:
            start, end = _utc(start_ms), _utc(end_ms)
        # Positional, in EventView's field order (keywords cost a third more per row).
        append(
            EventView(
                sid,
                calendar_type,
                names.get(calendar_id, "") if pi else None,
                title if pi else None,
                start,
                end,
                all_day,
                owner,
                owner_name,
            )
        )
    return events


def _schedules(engine: Engine, tenant_id: str, ids: set[str]) -> dict[str, ScheduleInfo | None]:
    found: dict[str, ScheduleInfo | None] = dict.fromkeys(ids)
    with reading(engine) as db:
        for s in db.execute(
            select(
                Schedule.id, Schedule.owner_user_id, Schedule.owner_name, Schedule.time_zone
            ).where(Schedule.tenant_id == tenant_id, Schedule.id.in_(ids))
        ):
            found[s.id] = ScheduleInfo(s.owner_user_id, s.owner_name, s.time_zone)
    return found


@lru_cache(maxsize=4096)
def _local_midnight(day: str, time_zone: str) -> str:
    d = date.fromisoformat(day)
    moment = datetime(d.year, d.month, d.day, tzinfo=zone(time_zone))
    return moment.isoformat(timespec="milliseconds")


_EPOCH = datetime(1970, 1, 1)


@lru_cache(maxsize=1 << 16)
def _utc(ms: int) -> str:
    return (_EPOCH + timedelta(0, ms // 1000, ms % 1000 * 1000)).isoformat(
        timespec="milliseconds"
    ) + "Z"
