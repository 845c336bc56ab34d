"""List Events' reads of the store: the contributing connections and one page of stored
instances, as plain values.

The common call (every connection fresh, the window inside the stored horizon) is two SQL
statements on one pooled connection: the contributing connections joined with their schedule
and calendar names, then the page. Both select columns, not ORM entities, are built once per
shape (values are bound per call) and read as raw driver tuples (``store.raw_rows``): this is
the hottest path of the service (bench/README.md has the numbers).

A driver failure (``sqlalchemy.exc.OperationalError``: a lock held longer than the engine
waits, a file that cannot be opened, an interrupted query) surfaces as ``ReadFailed``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache, wraps
from typing import Any, ParamSpec, TypeAlias, TypeVar

from sqlalchemy import Connection as DbConnection
from sqlalchemy import Engine, Select, and_, bindparam, case, func, select, tuple_
from sqlalchemy.exc import OperationalError

from calsync.domain import ConnectionStatus
from calsync.store import db as store_db
from calsync.store.models import Connection, ConnectionCalendar, EventInstance, Schedule
from calsync.store.raw_rows import fetch_tuples, utc_datetime

# What a page is read through: ``rt.engine``, or ``rt.loop_engine`` on the event loop.
Database: TypeAlias = Engine

P = ParamSpec("P")
T = TypeVar("T")

# The sort key of a page row: start_ms, end_ms, schedule_id, connection_id, calendar_id,
# instance_key.
SortKey = tuple[int, int, str, str, str, str]
# A page row: the sort key's six columns, then all_day, start_date, end_date, title (all_day
# may be 0/1: SQLite's driver value).
PageRow = tuple[int, int, str, str, str, str, bool, str | None, str | None, str]

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


class ReadFailed(Exception):
    """The database could not be read (the driver's OperationalError); ``reason`` is the
    driver's message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _driver_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn`` with the driver's OperationalError raised as ReadFailed."""

    @wraps(fn)
    def translated(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            raise ReadFailed(str(exc.orig)) from exc

    return translated


class Reads:
    """One open read of the store: a pooled connection in autocommit (``store.db.reading``)
    for the few statements of one call, closed on leaving the ``with`` block."""

    __slots__ = ("_db", "engine")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        try:
            self._db: DbConnection = store_db.reading(engine)
        except OperationalError as exc:
            raise ReadFailed(str(exc.orig)) from exc

    def __enter__(self) -> Reads:
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self._db.close()
        except OperationalError as exc:
            raise ReadFailed(str(exc.orig)) from exc


def reading(engine: Database) -> Reads:
    """Reads through ``engine``."""
    return Reads(engine)


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    owner_user_id: str | None
    owner_name: str
    time_zone: str


# Not frozen: a frozen dataclass costs three times as much to build, on the hottest path.
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
    # Up to when the store is known to match the provider (``lifecycle.fresh_until``).
    fresh_as_of: datetime | None = None
    calendar_names: dict[str, str] = field(default_factory=dict)


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
            Connection.fresh_as_of,
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


@_driver_errors
def contributors(
    reads: Reads,
    tenant_id: str,
    schedule_ids: Sequence[str] = (),
    user_ids: Sequence[str] = (),
) -> list[Contributor]:
    """The tenant's not disconnected connections that import, of ``schedule_ids`` and of
    schedules owned by ``user_ids`` (each filter only when given), oldest first."""
    stmt = _contributing_statement(bool(schedule_ids), bool(user_ids))
    params: dict[str, Any] = {"tenant": tenant_id}
    if schedule_ids:
        params["schedules"] = list(schedule_ids)
    if user_ids:
        params["users"] = list(user_ids)
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
        fresh_as_of,
        known_schedule,
        owner_user_id,
        owner_name,
        time_zone,
        calendar_id,
        calendar_name,
    ) in fetch_tuples(reads._db, stmt, params):  # driver tuples: imports may be 0/1 (SQLite)
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
                utc_datetime(fresh_as_of),
            )
        if calendar_id is not None:
            c.calendar_names[calendar_id] = calendar_name
    # Sorted here, not in SQL: an ORDER BY created_at makes SQLite walk all of the tenant's
    # connections in (tenant_id, created_at) order instead of using (tenant_id, schedule_id).
    return sorted(found.values(), key=lambda c: (c.created_at, c.id))


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


@_driver_errors
def page_rows(
    reads: Reads,
    connection_ids: list[str],
    *,
    from_ms: int,
    to_ms: int,
    count: int,
    all_day: bool | None = None,
    after: SortKey | None = None,
) -> Sequence[PageRow]:
    """Up to ``count`` stored instances of ``connection_ids`` overlapping [from, to) (a
    zero-length one at ``from_ms`` included), of ``all_day`` when given, after ``after`` in
    sort order (start, end, schedule, connection, calendar, key)."""
    if not connection_ids:
        return []
    params: dict[str, Any] = {
        "ids": connection_ids,
        "from_ms": from_ms,
        "to_ms": to_ms,
        "limit": count,
    }
    if all_day is not None:
        params["all_day"] = all_day
    if after is not None:
        params.update({f"after{i}": v for i, v in enumerate(after)})
    stmt = _page_statement(all_day is not None, after is not None)
    return fetch_tuples(reads._db, stmt, params)  # driver tuples: all_day may be 0/1 (SQLite)


@_driver_errors
def schedules(
    engine: Database, tenant_id: str, ids: Collection[str]
) -> dict[str, ScheduleInfo | None]:
    """The tenant's schedules of ``ids``, read through ``engine``; None for one not found."""
    found: dict[str, ScheduleInfo | None] = dict.fromkeys(ids)
    with reading(engine) as reads:
        for s in reads._db.execute(
            select(
                Schedule.id, Schedule.owner_user_id, Schedule.owner_name, Schedule.time_zone
            ).where(Schedule.tenant_id == tenant_id, Schedule.id.in_(ids))
        ):
            found[s.id] = ScheduleInfo(s.owner_user_id, s.owner_name, s.time_zone)
    return found
