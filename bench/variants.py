"""The List Events changes the bench measures. Nothing here edits calsync: schema changes are
applied to the bench database only, code changes are monkeypatched into the bench process or
into the bench server (``serve_variant.py``). Each variant is a proposal for the real code.

* ``shipped``      calsync as it is.
* ``index``        schema only: add ``ix_event_instances_connection_start_end`` (connection_id,
                   start_ms, end_ms) and drop ``ix_event_instances_tenant_start`` and
                   ``ix_event_instances_schedule_start`` (no query uses them) and, if the
                   migrations made it, ``ix_event_instances_connection_start`` (a prefix of
                   the new one).
* ``index+bound``  ``index`` plus a lower bound on ``start_ms`` in the page query:
                   ``start_ms >= from - max_instance_ms``, where ``max_instance_ms`` is a new
                   nullable column of ``connections``: an upper bound of the duration of every
                   instance stored for the connection (raised whenever instances are inserted;
                   NULL = unknown = no bound). The bench emulates the column with ALTER TABLE
                   and a backfill; this variant reads it with one extra small query.
* ``lean``         ``index+bound`` plus less ORM work per request: the connections, the page
                   and the render read plain column rows (``select(columns)``) instead of ORM
                   entities, the contributing connections are sorted in Python (so SQLite uses
                   ``ix_connections_tenant_schedule`` instead of scanning the tenant's
                   connections in ``ix_connections_tenant_created`` order), and the API key is
                   read the same way. Same answers, same SQL shape otherwise.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, literal_column, select, text, tuple_
from sqlalchemy.orm import Session

from calsync.domain import CalendarType, ConnectionStatus, ErrorReason, Identity, Permission
from calsync.service import cursor as cursors
from calsync.service.auth import identity_of, owns, require_any
from calsync.service.runtime import Runtime
from calsync.service.views import EventsPage, EventView
from calsync.store.db import transaction
from calsync.store.models import ApiKey, Connection, ConnectionCalendar, EventInstance, Schedule

VARIANTS = ("shipped", "index", "index+bound", "lean", "fast")
NEW_INDEX = "ix_event_instances_connection_start_end"
NEW_INDEX_DDL = f"CREATE INDEX {NEW_INDEX} ON event_instances (connection_id, start_ms, end_ms)"
# Dropped by the proposal: no query filters on tenant_id (and on PostgreSQL the tenant_start
# index draws the planner into a BitmapAnd over every instance before ``to``); a
# (connection_id, start_ms) index is a prefix of the new one.
DROPPED_INDEXES = (
    "ix_event_instances_tenant_start",
    "ix_event_instances_schedule_start",
    "ix_event_instances_connection_start",
)
BOUND_COLUMN = "max_instance_ms"


# --- schema changes (bench database only) ------------------------------------------------------


def event_indexes(engine: Engine) -> dict[str, str]:
    """The secondary indexes of event_instances now: name -> CREATE INDEX statement."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(
                text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                    "AND tbl_name = 'event_instances' AND sql IS NOT NULL"
                )
            )
        else:
            rows = conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
                    " AND tablename = 'event_instances' AND indexname <> 'pk_event_instances'"
                )
            )
        return {str(r[0]): str(r[1]) for r in rows}


def set_indexes(engine: Engine, target: dict[str, str]) -> None:
    """Drop the event_instances indexes not in ``target``, create the missing ones."""
    existing = event_indexes(engine)
    with engine.begin() as conn:
        for name in existing:
            if name not in target:
                conn.execute(text(f'DROP INDEX "{name}"'))
        for name, ddl in target.items():
            if name not in existing:
                conn.execute(text(ddl))
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE event_instances"))


def recommended_indexes(shipped: dict[str, str]) -> dict[str, str]:
    kept = {k: v for k, v in shipped.items() if k not in DROPPED_INDEXES}
    return {**kept, NEW_INDEX: NEW_INDEX_DDL}


def apply_schema(engine: Engine, variant: str, shipped: dict[str, str]) -> None:
    """The indexes ``variant`` runs with: the migrations' own (``shipped``, captured right
    after the upgrade) or the proposal (every other variant)."""
    set_indexes(engine, shipped if variant == "shipped" else recommended_indexes(shipped))


def add_bound_column(engine: Engine) -> None:
    """Emulate the proposed ``connections.max_instance_ms`` column and backfill it."""
    with engine.begin() as conn:
        columns = (
            {r[1] for r in conn.execute(text("PRAGMA table_info(connections)"))}
            if engine.dialect.name == "sqlite"
            else {
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name='connections' AND table_schema = current_schema()"
                    )
                )
            }
        )
        if BOUND_COLUMN not in columns:
            conn.execute(text(f"ALTER TABLE connections ADD COLUMN {BOUND_COLUMN} BIGINT"))
    backfill_bound(engine)


def backfill_bound(engine: Engine) -> None:
    """What a migration would run once (and what sync would keep up to date)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                f"UPDATE connections SET {BOUND_COLUMN} = (SELECT max(e.end_ms - e.start_ms) "
                "FROM event_instances e WHERE e.connection_id = connections.id) "
                f"WHERE {BOUND_COLUMN} IS NULL"
            )
        )


# --- code changes (monkeypatched) ----------------------------------------------------------------

_BOUND = literal_column(f"connections.{BOUND_COLUMN}").label(BOUND_COLUMN)


def _lower_bound(query: cursors.EventQuery, bounds: list[int | None]) -> int | None:
    """The proposed bound: from - (the longest instance any selected connection stores)."""
    if not bounds or any(b is None for b in bounds):
        return None
    return query.from_ms - max(b for b in bounds if b is not None)


def _page_statement(
    columns: Any,
    connection_ids: list[str],
    query: cursors.EventQuery,
    limit: int,
    lower: int | None,
) -> Any:
    """The shipped page query, plus ``start_ms >= lower`` when a bound is known."""
    order = (
        EventInstance.start_ms,
        EventInstance.end_ms,
        EventInstance.schedule_id,
        EventInstance.connection_id,
        EventInstance.calendar_id,
        EventInstance.instance_key,
    )
    zero_length = (EventInstance.start_ms == EventInstance.end_ms) & (
        EventInstance.start_ms >= query.from_ms
    )
    stmt = select(*columns).where(
        EventInstance.connection_id.in_(connection_ids),
        EventInstance.start_ms < query.to_ms,
        (EventInstance.end_ms > query.from_ms) | zero_length,
    )
    if lower is not None:
        stmt = stmt.where(EventInstance.start_ms >= lower)
    if query.all_day is not None:
        stmt = stmt.where(EventInstance.all_day == query.all_day)
    if query.after is not None:
        stmt = stmt.where(tuple_(*order) > tuple_(*query.after))
    return stmt.order_by(*order).limit(limit + 1)


def page_with_bound(
    session: Session, connection_ids: list[str], query: cursors.EventQuery, limit: int
) -> list[Any]:
    """``index+bound``: the shipped ``_page`` with the bound (read here with one small query;
    the real change would read the column with the connections it already loads)."""
    if not connection_ids:
        return []
    bounds = list(
        session.scalars(
            select(_BOUND).select_from(Connection).where(Connection.id.in_(connection_ids))
        )
    )
    lower = _lower_bound(query, bounds)
    return list(
        session.scalars(_page_statement((EventInstance,), connection_ids, query, limit, lower))
    )


_CONNECTION_COLUMNS = (
    Connection.id,
    Connection.provider_id,
    Connection.schedule_id,
    Connection.status,
    Connection.error_reason,
    Connection.sync_config,
    Connection.last_synced_at,
    Connection.sync_requested_at,
    Connection.created_at,
    _BOUND,
)
_PAGE_COLUMNS = (
    EventInstance.start_ms,
    EventInstance.end_ms,
    EventInstance.schedule_id,
    EventInstance.connection_id,
    EventInstance.calendar_id,
    EventInstance.instance_key,
    EventInstance.all_day,
    EventInstance.start_date,
    EventInstance.end_date,
    EventInstance.title,
)


def contributing_lean(session: Session, tenant_id: str, query: cursors.EventQuery) -> list[Any]:
    """The shipped ``_contributing`` as column rows (attribute names unchanged), sorted in
    Python so that the planner is free to use the (tenant_id, schedule_id) index."""
    stmt = select(*_CONNECTION_COLUMNS).where(
        Connection.tenant_id == tenant_id,
        Connection.status != ConnectionStatus.DISCONNECTED.value,
    )
    if query.schedule_ids:
        stmt = stmt.where(Connection.schedule_id.in_(query.schedule_ids))
    if query.user_ids:
        owned = select(Schedule.id).where(
            Schedule.tenant_id == tenant_id, Schedule.owner_user_id.in_(query.user_ids)
        )
        stmt = stmt.where(Connection.schedule_id.in_(owned))
    rows = sorted(session.execute(stmt).all(), key=lambda r: (r.created_at, r.id))
    return [r for r in rows if (r.sync_config or {}).get("import", {}).get("enabled")]


def make_page_lean(bounds_of: Callable[[list[str]], list[int | None]]) -> Callable[..., list[Any]]:
    def page(
        session: Session, connection_ids: list[str], query: cursors.EventQuery, limit: int
    ) -> list[Any]:
        if not connection_ids:
            return []
        lower = _lower_bound(query, bounds_of(connection_ids))
        stmt = _page_statement(_PAGE_COLUMNS, connection_ids, query, limit, lower)
        return list(session.execute(stmt).all())

    return page


def render_lean(
    rt: Runtime,
    session: Session,
    identity: Identity,
    connections: list[Any],
    rows: list[Any],
    own_pi: bool,
) -> list[EventView]:
    """The shipped ``_render`` with column rows and per-schedule/per-connection values
    computed once instead of once per event."""
    from calsync.service.events import _times  # the shipped formatting, unchanged

    if not rows:
        return []
    schedules = {
        s.id: s
        for s in session.execute(
            select(
                Schedule.id, Schedule.owner_user_id, Schedule.owner_name, Schedule.time_zone
            ).where(
                Schedule.tenant_id == identity.tenant_id,
                Schedule.id.in_({r.schedule_id for r in rows}),
            )
        )
    }
    names = {
        (c.connection_id, c.calendar_id): c.name
        for c in session.execute(
            select(
                ConnectionCalendar.connection_id,
                ConnectionCalendar.calendar_id,
                ConnectionCalendar.name,
            ).where(ConnectionCalendar.connection_id.in_({r.connection_id for r in rows}))
        )
    }
    calendar_types = {}
    for c in connections:
        provider = rt.providers.get(c.provider_id)
        calendar_types[c.id] = provider.calendar_type if provider else CalendarType.UNDEFINED
    read_all = identity.has(Permission.READ_ALL_CONNECTIONS)
    per_schedule: dict[str, tuple[str | None, bool, str, str]] = {}
    for sid in {r.schedule_id for r in rows}:
        schedule = schedules.get(sid)
        owner = schedule.owner_user_id if schedule else None
        pi = own_pi and (read_all or owns(identity, owner))
        per_schedule[sid] = (
            owner,
            pi,
            schedule.time_zone if schedule else "UTC",
            (schedule.owner_name if schedule else "") if pi else None,
        )
    events = []
    for r in rows:
        owner, pi, tz, owner_name = per_schedule[r.schedule_id]
        start, end = _times(r, tz)
        events.append(
            EventView(
                schedule_id=r.schedule_id,
                calendar_type=calendar_types[r.connection_id],
                calendar_name=names.get((r.connection_id, r.calendar_id), "") if pi else None,
                title=r.title if pi else None,
                start=start,
                end=end,
                all_day=r.all_day,
                schedule_owner_id=owner,
                schedule_owner_name=owner_name,
            )
        )
    return events


def authenticate_lean(session: Session, authorization: str | None, site_id: str | None) -> Identity:
    """The shipped ``authenticate`` reading the key's columns instead of the entity."""
    from calsync.crypto import hash_api_key
    from calsync.errors import PermissionDenied, Unauthenticated

    token = (authorization or "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise Unauthenticated("an API key is required in the Authorization header")
    row = session.execute(
        select(
            ApiKey.id,
            ApiKey.tenant_id,
            ApiKey.identity_type,
            ApiKey.user_id,
            ApiKey.app_id,
            ApiKey.permissions,
            ApiKey.revoked_at,
        ).where(ApiKey.key_hash == hash_api_key(token))
    ).first()
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("the API key is not valid")
    if site_id and site_id.strip() and site_id.strip() != row.tenant_id:
        raise PermissionDenied("the API key does not belong to the site in wix-site-id")
    return identity_of(row)  # type: ignore[arg-type]


def _sort_key(row: Any) -> cursors.SortKey:
    """List Events' sort order (start, end, schedule, connection, calendar, instance key)."""
    return (
        row.start_ms,
        row.end_ms,
        row.schedule_id,
        row.connection_id,
        row.calendar_id,
        row.instance_key,
    )


def list_events_fast(
    rt: Runtime, *, identity: Identity, query: cursors.EventQuery, limit: int
) -> EventsPage:
    """``fast``: ``lean`` plus fewer round trips. When no contributing connection needs a sync
    (the common case) one session serves the connections query and one page query that
    also joins the schedule and calendar-name columns (so ``_render`` issues no queries)."""
    from calsync.service import events

    require_any(identity, Permission.READ_EVENTS)
    horizon = datetime.now(UTC) - timedelta(seconds=rt.settings.freshness_seconds)
    with transaction(rt.sessions) as session:
        connections = contributing_lean(session, identity.tenant_id, query)
        stale = any(
            not (
                c.status == ConnectionStatus.ERROR.value
                and c.error_reason == ErrorReason.TOKEN_REVOKED.value
            )
            and (
                c.last_synced_at is None
                or c.last_synced_at < horizon
                or c.last_synced_at < c.sync_requested_at
            )
            for c in connections
        )
        if not stale:
            failed = events._freshen(rt, connections)  # only classifies: nothing to sync
            page = _fast_page(session, rt, identity, connections, failed, query, limit)
    if stale:
        failed = events._freshen(rt, connections)
        with transaction(rt.sessions) as session:
            page = _fast_page(session, rt, identity, connections, failed, query, limit)
    return page


def _fast_page(
    session: Session,
    rt: Runtime,
    identity: Identity,
    connections: list[Any],
    failed: dict[str, str],
    query: cursors.EventQuery,
    limit: int,
) -> EventsPage:
    from calsync.errors import ProviderUnavailable
    from calsync.service import events

    failed_ids = list(dict.fromkeys(c.provider_id for c in connections if c.id in failed))
    if failed and (not query.partial_failure or len(failed) == len(connections)):
        raise ProviderUnavailable(
            "events of some connections could not be read from their provider",
            data={"failedProviderIds": failed_ids},
        )
    readable = [c for c in connections if c.id not in failed]
    rows: list[Any] = []
    if readable:
        bounds = [getattr(c, BOUND_COLUMN) for c in readable]
        lower = _lower_bound(query, bounds)
        inner = _page_statement(
            _PAGE_COLUMNS, [c.id for c in readable], query, limit, lower
        ).subquery()
        stmt = (
            select(
                inner,
                Schedule.id.label("known_schedule"),
                Schedule.owner_user_id,
                Schedule.owner_name,
                Schedule.time_zone,
                ConnectionCalendar.name.label("calendar_name"),
            )
            .select_from(
                inner.outerjoin(
                    Schedule,
                    and_(
                        Schedule.tenant_id == identity.tenant_id, Schedule.id == inner.c.schedule_id
                    ),
                ).outerjoin(
                    ConnectionCalendar,
                    and_(
                        ConnectionCalendar.connection_id == inner.c.connection_id,
                        ConnectionCalendar.calendar_id == inner.c.calendar_id,
                    ),
                )
            )
            .order_by(
                inner.c.start_ms,
                inner.c.end_ms,
                inner.c.schedule_id,
                inner.c.connection_id,
                inner.c.calendar_id,
                inner.c.instance_key,
            )
        )
        rows = list(session.execute(stmt).all())
    calendar_types = {}
    for c in readable:
        provider = rt.providers.get(c.provider_id)
        calendar_types[c.id] = provider.calendar_type if provider else CalendarType.UNDEFINED
    read_all = identity.has(Permission.READ_ALL_CONNECTIONS)
    views = []
    pi_of: dict[str | None, bool] = {}
    for r in rows[:limit]:
        known = r.known_schedule is not None
        owner = r.owner_user_id if known else None
        pi = pi_of.get(owner)
        if pi is None:
            pi = pi_of[owner] = query.own_pi and (read_all or owns(identity, owner))
        start, end = events._times(r, r.time_zone if known else "UTC")
        views.append(
            EventView(
                schedule_id=r.schedule_id,
                calendar_type=calendar_types[r.connection_id],
                calendar_name=(r.calendar_name if r.calendar_name is not None else "")
                if pi
                else None,
                title=r.title if pi else None,
                start=start,
                end=end,
                all_day=r.all_day,
                schedule_owner_id=owner,
                schedule_owner_name=(r.owner_name if known else "") if pi else None,
            )
        )
    next_cursor = None
    if len(rows) > limit:
        next_cursor = cursors.encode(
            rt.cursor_key,
            identity.tenant_id,
            cursors.continue_after(query, _sort_key(rows[limit - 1])),
            rt.settings.cursor_ttl_seconds,
        )
    return EventsPage(events=views, next_cursor=next_cursor, failed_provider_ids=failed_ids)


# --- installing a variant ------------------------------------------------------------------------


def install(variant: str) -> Callable[[], None]:
    """Monkeypatch ``variant`` into this process; returns a function that undoes it."""
    from calsync.api import calls
    from calsync.service import events

    saved = {
        "events._contributing": events._contributing,
        "events._page": events._page,
        "events._render": events._render,
        "calls.authenticate": calls.authenticate,
        "events.list_events": events.list_events,
    }

    def undo() -> None:
        events._contributing = saved["events._contributing"]  # type: ignore[assignment]
        events._page = saved["events._page"]  # type: ignore[assignment]
        events._render = saved["events._render"]  # type: ignore[assignment]
        calls.authenticate = saved["calls.authenticate"]  # type: ignore[assignment]
        events.list_events = saved["events.list_events"]  # type: ignore[assignment]

    if variant in ("shipped", "index"):
        return undo
    if variant == "index+bound":
        events._page = page_with_bound  # type: ignore[assignment]
        return undo
    if variant not in ("lean", "fast"):
        raise ValueError(f"unknown variant {variant}")

    # The variants change the stored-instances path only. Windows outside the stored horizon
    # (if this calsync answers those from the providers) keep the shipped code: a copy of
    # list_events bound to the module's globals as they were before patching.
    shipped = saved["events.list_events"]
    pristine = types.FunctionType(
        shipped.__code__,
        dict(vars(events)),
        shipped.__name__,
        shipped.__defaults__,
        shipped.__closure__,
    )
    pristine.__kwdefaults__ = shipped.__kwdefaults__
    inner = list_events_fast if variant == "fast" else shipped

    def dispatch(
        rt: Runtime, *, identity: Identity, query: cursors.EventQuery, limit: int
    ) -> EventsPage:
        outside = getattr(events, "outside_horizon", None)
        if outside is not None and outside(rt, query):
            return pristine(rt, identity=identity, query=query, limit=limit)  # type: ignore[no-any-return]
        return inner(rt, identity=identity, query=query, limit=limit)  # type: ignore[no-any-return]

    events.list_events = dispatch  # type: ignore[assignment]
    calls.authenticate = authenticate_lean  # type: ignore[assignment]
    if variant == "fast":
        return undo

    # The bounds come with the contributing rows: remember them per call (thread-local).
    import threading

    local = threading.local()

    def contributing(session: Session, tenant_id: str, query: cursors.EventQuery) -> list[Any]:
        rows = contributing_lean(session, tenant_id, query)
        local.bounds = {r.id: getattr(r, BOUND_COLUMN) for r in rows}
        return rows

    def bounds_of(connection_ids: list[str]) -> list[int | None]:
        known: dict[str, int | None] = getattr(local, "bounds", {})
        return [known.get(c) for c in connection_ids]

    events._contributing = contributing  # type: ignore[assignment]
    events._page = make_page_lean(bounds_of)  # type: ignore[assignment]
    events._render = render_lean  # type: ignore[assignment]
    return undo
