"""List Events: busy blocks of the selected connections, from the store, freshened on demand."""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from calsync.domain import CalendarType, ConnectionStatus, ErrorReason, Identity, Permission
from calsync.errors import ProviderUnavailable
from calsync.service import cursor as cursors
from calsync.service import sync_config as sc
from calsync.service.auth import owns, require_any
from calsync.service.live_events import live_rows, outside_horizon, sort_key
from calsync.service.runtime import Runtime
from calsync.service.sync import SyncFailed, sync_connection
from calsync.service.views import EventsPage, EventView
from calsync.store.db import transaction
from calsync.store.models import Connection, ConnectionCalendar, EventInstance, Schedule
from calsync.tz import zone

log = logging.getLogger(__name__)


def list_events(
    rt: Runtime, *, identity: Identity, query: cursors.EventQuery, limit: int
) -> EventsPage:
    """One page of events overlapping [from, to), sorted by (start, end, schedule, key).

    Raises ProviderUnavailable when a contributing connection cannot be read and partial
    results were not allowed (or when every connection failed).
    """
    require_any(identity, Permission.READ_EVENTS)
    with transaction(rt.sessions) as session:
        connections = _contributing(session, identity.tenant_id, query)
    failed = _freshen(rt, connections)
    failed_ids = _distinct(c.provider_id for c in connections if c.id in failed)
    if failed and (not query.partial_failure or len(failed) == len(connections)):
        raise ProviderUnavailable(
            "events of some connections could not be read from their provider",
            data={"failedProviderIds": failed_ids},
        )
    readable = [c for c in connections if c.id not in failed]
    if outside_horizon(rt, query):
        rows, live_failed = live_rows(rt, readable, query, limit)
        if live_failed:
            failed.update(live_failed)
            failed_ids = _distinct(c.provider_id for c in connections if c.id in failed)
            if not query.partial_failure or len(failed) == len(connections):
                raise ProviderUnavailable(
                    "events of some connections could not be read from their provider",
                    data={"failedProviderIds": failed_ids},
                )
            readable = [c for c in readable if c.id not in failed]
    else:
        with transaction(rt.sessions) as session:
            rows = _page(session, [c.id for c in readable], query, limit)
    with transaction(rt.sessions) as session:
        events = _render(rt, session, identity, readable, rows[:limit], query.own_pi)
    next_cursor = None
    if len(rows) > limit:
        next_cursor = cursors.encode(
            rt.cursor_key,
            identity.tenant_id,
            cursors.continue_after(query, sort_key(rows[limit - 1])),
            rt.settings.cursor_ttl_seconds,
        )
    return EventsPage(events=events, next_cursor=next_cursor, failed_provider_ids=failed_ids)


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _contributing(session: Session, tenant_id: str, query: cursors.EventQuery) -> list[Connection]:
    stmt = select(Connection).where(
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
    rows = session.scalars(stmt.order_by(Connection.created_at, Connection.id)).all()
    return [r for r in rows if sc.from_json(r.sync_config).import_.enabled]


def _freshen(rt: Runtime, connections: list[Connection]) -> dict[str, str]:
    """Sync connections whose data is older than the freshness bound, within the time budget.

    Returns connection id -> provider id of those that could not be read for this call.
    """
    failed: dict[str, str] = {}
    horizon = datetime.now(UTC) - timedelta(seconds=rt.settings.freshness_seconds)
    stale = []
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
    if not stale:
        return failed
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
    session: Session, connection_ids: list[str], query: cursors.EventQuery, limit: int
) -> list[EventInstance]:
    if not connection_ids:
        return []
    columns = (
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
    stmt = select(EventInstance).where(
        EventInstance.connection_id.in_(connection_ids),
        EventInstance.start_ms < query.to_ms,
        (EventInstance.end_ms > query.from_ms) | zero_length,
    )
    if query.all_day is not None:
        stmt = stmt.where(EventInstance.all_day == query.all_day)
    if query.after is not None:
        stmt = stmt.where(tuple_(*columns) > tuple_(*query.after))
    return list(session.scalars(stmt.order_by(*columns).limit(limit + 1)))


def _render(
    rt: Runtime,
    session: Session,
    identity: Identity,
    connections: list[Connection],
    rows: list[EventInstance],
    own_pi: bool,
) -> list[EventView]:
    schedule_ids = {r.schedule_id for r in rows}
    schedules = {
        s.id: s
        for s in session.scalars(
            select(Schedule).where(
                Schedule.tenant_id == identity.tenant_id, Schedule.id.in_(schedule_ids)
            )
        )
    }
    names = {
        (c.connection_id, c.calendar_id): c.name
        for c in session.scalars(
            select(ConnectionCalendar).where(
                ConnectionCalendar.connection_id.in_({r.connection_id for r in rows})
            )
        )
    }
    by_id = {c.id: c for c in connections}
    read_all = identity.has(Permission.READ_ALL_CONNECTIONS)
    events = []
    for r in rows:
        schedule = schedules.get(r.schedule_id)
        owner = schedule.owner_user_id if schedule else None
        pi = own_pi and (read_all or owns(identity, owner))
        provider = rt.providers.get(by_id[r.connection_id].provider_id)
        start, end = _times(r, schedule.time_zone if schedule else "UTC")
        events.append(
            EventView(
                schedule_id=r.schedule_id,
                calendar_type=provider.calendar_type if provider else CalendarType.UNDEFINED,
                calendar_name=names.get((r.connection_id, r.calendar_id), "") if pi else None,
                title=r.title if pi else None,
                start=start,
                end=end,
                all_day=r.all_day,
                schedule_owner_id=owner,
                schedule_owner_name=(schedule.owner_name if schedule else "") if pi else None,
            )
        )
    return events


def _times(row: EventInstance, time_zone: str) -> tuple[str, str]:
    if row.all_day and row.start_date and row.end_date:
        tz = zone(time_zone)
        return (
            _local_midnight(date.fromisoformat(row.start_date), tz),
            _local_midnight(date.fromisoformat(row.end_date), tz),
        )
    return _utc(row.start_ms), _utc(row.end_ms)


def _local_midnight(day: date, tz: ZoneInfo) -> str:
    moment = datetime(day.year, day.month, day.day, tzinfo=tz)
    return moment.isoformat(timespec="milliseconds")


def _utc(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
