"""List Events: busy blocks of the selected connections, from the store, refreshed behind it.

The common call (every connection fresh, the window inside the stored horizon) is two reads on
one pooled connection (``store.instances.page``, the hottest path of the service; bench/README.md
has the numbers): the contributing connections, then the page, rendered here.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache, partial

from calsync.domain import CalendarType, ConnectionStatus, ErrorReason, Identity, Permission
from calsync.errors import ProviderUnavailable
from calsync.service.access.auth import owns, require_any
from calsync.service.events import cursor as cursors
from calsync.service.events.live import live_rows, outside_horizon
from calsync.service.runtime import Runtime
from calsync.service.sync.refresh import refresh_in_background
from calsync.service.sync.run import SyncFailed, sync_connection
from calsync.service.views import EventsPage, EventView
from calsync.store import connections as stored_connections
from calsync.store.instances import page as stored
from calsync.store.instances.page import Contributor, Database, PageRow, Reads
from calsync.tz import zone

log = logging.getLogger(__name__)


def list_events(
    rt: Runtime, *, identity: Identity, query: cursors.EventQuery, limit: int
) -> EventsPage:
    """One page of events overlapping [from, to), sorted by (start, end, schedule, key).

    Answers from the store whatever the data's age: connections older than the freshness
    bound are refreshed in the background (``service.sync.refresh``). Only a connection that
    has not completed a sync of its current configuration (just connected, reconnected, or its
    calendar selection changed) is synced first, within the time budget.

    Raises ProviderUnavailable when a contributing connection cannot be read and partial
    results were not allowed (or when every connection failed).
    """
    require_any(identity, Permission.READ_EVENTS)
    live = outside_horizon(rt, query)
    with stored.reading(rt.engine) as reads:
        connections = _contributing(reads, identity.tenant_id, query)
        failed, waiting, stale = _classify(rt, connections)
        if not waiting and not live:
            page = _stored_page(rt, reads, identity, query, limit, connections, failed)
            _refresh_stale(rt, stale, identity.tenant_id)
            return page
    if waiting:
        failed.update(_freshen(rt, waiting))
    failed_ids = _raise_if_failed(connections, failed, query)
    readable = [c for c in connections if c.id not in failed]
    rows: Sequence[PageRow] = []
    if waiting or not live:
        with stored.reading(rt.engine) as reads:
            if waiting:  # a sync may have added calendars or changed the schedule
                _refresh(connections, _contributing(reads, identity.tenant_id, query))
            if not live:
                rows = _page(reads, readable, query, limit)
    if live:
        with rt.store.transaction() as tx:
            entities = stored_connections.rows_of(tx, [c.id for c in readable])
        rows, live_failed = live_rows(rt, entities, query, limit)
        if live_failed:
            failed.update(live_failed)
            failed_ids = _raise_if_failed(connections, failed, query)
            readable = [c for c in readable if c.id not in failed]
    _refresh_stale(rt, stale, identity.tenant_id)
    return _finish(rt, rt.engine, identity, query, limit, readable, rows, failed_ids)


def stored_events(
    rt: Runtime, engine: Database, *, identity: Identity, query: cursors.EventQuery, limit: int
) -> EventsPage | None:
    """``list_events`` when it needs nothing but the store (no selected connection waiting
    for its first sync, the window inside the stored horizon), read through ``engine``; None
    when a connection must be synced first or the window read live, which only
    ``list_events`` does. Stale connections are refreshed in the background, as there.

    A few reads and no waiting on a provider: on SQLite, ``api.calls`` runs this on the
    event loop itself, with ``rt.loop_engine`` (see ``store.db.make_loop_engine``)."""
    require_any(identity, Permission.READ_EVENTS)
    if outside_horizon(rt, query):
        return None
    with stored.reading(engine) as reads:
        connections = _contributing(reads, identity.tenant_id, query)
        failed, waiting, stale = _classify(rt, connections)
        if waiting:
            return None
        page = _stored_page(rt, reads, identity, query, limit, connections, failed)
    _refresh_stale(rt, stale, identity.tenant_id)
    return page


def _refresh_stale(rt: Runtime, stale: list[Contributor], tenant_id: str) -> None:
    if stale:
        refresh_in_background(rt, [c.id for c in stale], tenant_id=tenant_id)


def _stored_page(
    rt: Runtime,
    reads: Reads,
    identity: Identity,
    query: cursors.EventQuery,
    limit: int,
    connections: list[Contributor],
    failed: dict[str, str],
) -> EventsPage:
    """The page when no connection needs a sync and the window is stored: read with ``reads``."""
    failed_ids = _raise_if_failed(connections, failed, query)
    readable = [c for c in connections if c.id not in failed]
    rows = _page(reads, readable, query, limit)
    return _finish(rt, reads.engine, identity, query, limit, readable, rows, failed_ids)


def _finish(
    rt: Runtime,
    engine: Database,
    identity: Identity,
    query: cursors.EventQuery,
    limit: int,
    readable: list[Contributor],
    rows: Sequence[PageRow],
    failed_ids: list[str],
) -> EventsPage:
    """The page of ``rows`` (up to ``limit + 1`` in sort order): events and the next cursor."""
    events = _render(rt, engine, identity, readable, rows[:limit], query.own_pi)
    oldest = fresh_as_of(readable)
    if oldest is not None:
        rt.metrics.data_age.observe(max(0.0, (datetime.now(UTC) - oldest).total_seconds()))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = cursors.encode(
            rt.cursor_key,
            identity.tenant_id,
            cursors.continue_after(query, (last[0], last[1], last[2], last[3], last[4], last[5])),
            rt.settings.cursor_ttl_seconds,
        )
    return EventsPage(
        events=events, next_cursor=next_cursor, failed_provider_ids=failed_ids, fresh_as_of=oldest
    )


def _refresh(connections: list[Contributor], reread: list[Contributor]) -> None:
    """Take the calendar names, schedules and freshness as they are after a sync (it may add
    calendars)."""
    fresh = {c.id: c for c in reread}
    for c in connections:
        if c.id in fresh:
            after = fresh[c.id]
            c.calendar_names, c.schedule = after.calendar_names, after.schedule
            c.last_synced_at, c.fresh_as_of = after.last_synced_at, after.fresh_as_of


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


def _contributing(reads: Reads, tenant_id: str, query: cursors.EventQuery) -> list[Contributor]:
    """The tenant's selected, not disconnected connections that import, oldest first."""
    return stored.contributors(reads, tenant_id, query.schedule_ids, query.user_ids)


def _classify(
    rt: Runtime, connections: list[Contributor]
) -> tuple[dict[str, str], list[Contributor], list[Contributor]]:
    """(connection id -> provider id of those that cannot be read, those to sync before
    answering, the stale ones to refresh in the background)."""
    failed: dict[str, str] = {}
    waiting = []
    stale = []
    horizon = datetime.now(UTC) - timedelta(seconds=rt.settings.freshness_seconds)
    for c in connections:
        if c.status == ConnectionStatus.ERROR.value and (
            c.error_reason == ErrorReason.TOKEN_REVOKED.value
        ):
            failed[c.id] = c.provider_id
        elif c.last_synced_at is None or c.last_synced_at < c.sync_requested_at:
            waiting.append(c)
        elif (c.fresh_as_of or c.last_synced_at) < horizon:
            stale.append(c)
    return failed, waiting, stale


def fresh_as_of(connections: Iterable[Contributor]) -> datetime | None:
    """The oldest ``freshAsOf`` among ``connections`` (None when there are none)."""
    moments = [c.fresh_as_of or c.last_synced_at for c in connections]
    known = [m for m in moments if m is not None]
    return min(known) if known else None


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


def _page(
    reads: Reads, connections: list[Contributor], query: cursors.EventQuery, limit: int
) -> Sequence[PageRow]:
    """Up to ``limit + 1`` stored instances after ``query.after``, in sort order."""
    return stored.page_rows(
        reads,
        [c.id for c in connections],
        from_ms=query.from_ms,
        to_ms=query.to_ms,
        count=limit + 1,
        all_day=query.all_day,
        after=query.after,
    )


def _render(
    rt: Runtime,
    engine: Database,
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
        schedules.update(stored.schedules(engine, identity.tenant_id, missing))
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
