"""List Events for windows the store does not cover: read the providers live.

Instances are stored over a rolling horizon; a window reaching outside it is answered from the
providers directly (uncached), expanded the same way, and paged with the same sort key, so the
answer is correct for any window. It costs provider round trips, within the time budget.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from datetime import UTC, datetime
from functools import partial
from typing import cast

from calsync.providers.base import AccountRef, EventResource, ProviderError
from calsync.service.connections.accounts import with_account
from calsync.service.events.cursor import EventQuery, SortKey
from calsync.service.runtime import Runtime
from calsync.service.sync.instances import expansion_context, horizon, instance_rows
from calsync.store import connections as stored_connections
from calsync.store.instances.page import PageRow

# An ORM row only until accounts.with_account and sync.instances.expansion_context take a
# ConnectionRecord (see store.connections.rows_of).
from calsync.store.models import Connection
from calsync.tz import epoch_ms

log = logging.getLogger(__name__)


def outside_horizon(rt: Runtime, query: EventQuery) -> bool:
    start, end = horizon(rt)
    return query.from_ms < epoch_ms(start) or query.to_ms > epoch_ms(end)


def live_rows(
    rt: Runtime, connections: list[Connection], query: EventQuery, limit: int
) -> tuple[list[PageRow], dict[str, str]]:
    """Up to ``limit + 1`` instances after ``query.after`` in sort order, as the store's page
    rows, and the connections (id -> provider id) that could not be read in time."""
    deadline = time.monotonic() + rt.settings.sync_time_budget_seconds
    futures = {rt.submit(partial(_read, rt, c, query)): c for c in connections}
    rows: list[PageRow] = []
    failed: dict[str, str] = {}
    for future, connection in futures.items():
        try:
            found = future.result(timeout=max(0.0, deadline - time.monotonic()))
            rows.extend(found)
        except (ProviderError, concurrent.futures.TimeoutError) as exc:
            log.info(
                "live read failed", extra={"connection_id": connection.id, "reason": str(exc)[:200]}
            )
            failed[connection.id] = connection.provider_id
    rows = [r for r in rows if _selected(r, query)]
    rows.sort(key=sort_key)
    return rows[: limit + 1], failed


def sort_key(row: PageRow) -> SortKey:
    return row[:6]


def _selected(row: PageRow, query: EventQuery) -> bool:
    start_ms, end_ms, all_day = row[0], row[1], row[6]
    overlaps = start_ms < query.to_ms and (
        end_ms > query.from_ms or (start_ms == end_ms >= query.from_ms)
    )
    if not overlaps or (query.all_day is not None and all_day != query.all_day):
        return False
    return query.after is None or sort_key(row) > query.after


def _page_row(values: dict[str, object]) -> PageRow:
    """An expanded instance (``instance_rows``) as the row the store's page would hold."""
    return cast(
        PageRow,
        (
            values["start_ms"],
            values["end_ms"],
            values["schedule_id"],
            values["connection_id"],
            values["calendar_id"],
            values["instance_key"],
            values["all_day"],
            values["start_date"],
            values["end_date"],
            values["title"],
        ),
    )


def _read(rt: Runtime, connection: Connection, query: EventQuery) -> list[PageRow]:
    provider = rt.providers.get(connection.provider_id)
    if provider is None:
        raise ProviderError("provider no longer configured")
    adapter = rt.providers.adapter(provider)
    window = (_dt(query.from_ms), _dt(query.to_ms))
    with rt.store.reading() as tx:
        calendars = stored_connections.calendar_ids(tx, connection.id)
        # tx.session until expansion_context takes the unit of work.
        ctx = expansion_context(rt, tx.session, connection, window)
    rows: list[PageRow] = []
    for calendar_id in calendars:

        def read(account: AccountRef, calendar_id: str = calendar_id) -> list[EventResource]:
            return adapter.read_window(account, calendar_id, window[0], window[1])

        for resource in with_account(rt, connection, read):
            rows.extend(
                _page_row(values)
                for values in instance_rows(ctx, calendar_id, resource.key, resource.ical)
            )
    return rows


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
