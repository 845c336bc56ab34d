"""Free/busy and availability (spec: calsync-v1-extensions.md sections 2 and 3).

Busy is what List Events returns for a schedule, read from the store and never waited for:
stale connections are refreshed in the background, as List Events does, and connections that
cannot be read (revoked grants) are named in ``failed_connection_ids``. All-day instances
count from local midnight to local midnight in the schedule's time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from calsync.domain import ConnectionStatus, ErrorReason, Identity, Permission
from calsync.errors import NotFound
from calsync.service.access.auth import require_any
from calsync.service.events.availability import (
    Group,
    Interval,
    Slot,
    SlotRules,
    WorkingHours,
    find_slots,
    merge,
    working_windows,
)
from calsync.service.runtime import Runtime
from calsync.service.sync.refresh import refresh_in_background
from calsync.store.instances import busy as stored_busy
from calsync.store.instances import page as stored
from calsync.store.instances.page import Contributor, PageRow
from calsync.tz import zone

# All-day instances are stored at some zone's midnights: read this much around the window so
# that re-placing them in the schedule's zone misses none.
_DAY_MS = 86_400_000


@dataclass(frozen=True)
class ScheduleBusy:
    schedule_id: str
    time_zone: str
    busy: list[Interval]
    failed_connection_ids: list[str]


def _zones(rt: Runtime, tenant_id: str, schedule_ids: Sequence[str]) -> dict[str, str]:
    """Each schedule's time zone; NotFound for one the tenant does not have."""
    found = stored.schedules(rt.engine, tenant_id, set(schedule_ids))
    for sid in schedule_ids:
        if found.get(sid) is None:
            raise NotFound(f"schedule {sid} not found")
    return {sid: info.time_zone for sid, info in found.items() if info is not None}


def _unreadable(c: Contributor) -> bool:
    return (
        c.status == ConnectionStatus.ERROR.value
        and c.error_reason == ErrorReason.TOKEN_REVOKED.value
    )


def _refresh_stale(rt: Runtime, connections: list[Contributor], tenant_id: str) -> None:
    horizon = datetime.now(UTC) - timedelta(seconds=rt.settings.freshness_seconds)
    stale = [
        c.id
        for c in connections
        if c.last_synced_at is not None and (c.fresh_as_of or c.last_synced_at) < horizon
    ]
    if stale:
        refresh_in_background(rt, stale, tenant_id=tenant_id)


def _midnight_ms(day: str, time_zone: str) -> int:
    return int(
        datetime.combine(date.fromisoformat(day), time(), zone(time_zone)).timestamp() * 1000
    )


def _span(row: PageRow, time_zone: str) -> Interval:
    """An instance's busy span; an all-day one between local midnights of ``time_zone``."""
    start_date, end_date = row[7], row[8]
    if row[6] and start_date and end_date:
        return _midnight_ms(start_date, time_zone), _midnight_ms(end_date, time_zone)
    return row[0], row[1]


def busy_times(
    rt: Runtime,
    *,
    identity: Identity,
    schedule_ids: Sequence[str],
    from_ms: int,
    to_ms: int,
    include_sessions: bool,
) -> list[ScheduleBusy]:
    """Each schedule's merged busy intervals within [from_ms, to_ms), in request order."""
    require_any(identity, Permission.READ_EVENTS)
    if not schedule_ids:
        return []
    tenant = identity.tenant_id
    zones = _zones(rt, tenant, schedule_ids)
    spans: dict[str, list[Interval]] = {sid: [] for sid in schedule_ids}
    failed: dict[str, list[str]] = {sid: [] for sid in schedule_ids}
    with stored.reading(rt.engine) as reads:
        connections = stored.contributors(reads, tenant, list(zones))
        readable = []
        for c in connections:
            if _unreadable(c):
                failed[c.schedule_id.lower()].append(c.id)
            else:
                readable.append(c)
        owner = {c.id: c.schedule_id.lower() for c in readable}
        rows = stored_busy.instance_rows(
            reads, list(owner), from_ms=from_ms - _DAY_MS, to_ms=to_ms + _DAY_MS
        )
        for row in rows:
            sid = owner[row[3]]
            spans[sid].append(_span(row, zones[sid]))
        if include_sessions:
            sessions = stored_busy.confirmed_sessions(
                reads, tenant, list(zones), from_ms=from_ms, to_ms=to_ms
            )
            for sid, a, b in sessions:
                spans[sid].append((a, b))
    _refresh_stale(rt, readable, tenant)
    return [
        ScheduleBusy(sid, zones[sid], merge(spans[sid], from_ms, to_ms), failed[sid])
        for sid in schedule_ids
    ]


@dataclass(frozen=True)
class AvailabilityQuery:
    rules: SlotRules  # in epoch ms
    groups: tuple[Group, ...]
    working_hours: tuple[WorkingHours, ...]  # empty: all day


def availability(rt: Runtime, *, identity: Identity, query: AvailabilityQuery) -> list[Slot]:
    """The slots of spec section 3: busy as in free/busy with sessions, working hours in each
    schedule's own zone."""
    rules = query.rules
    schedule_ids = list(dict.fromkeys(s for g in query.groups for s in g.schedule_ids))
    found = busy_times(
        rt,
        identity=identity,
        schedule_ids=schedule_ids,
        from_ms=rules.start - rules.buffer_before,
        to_ms=rules.end + rules.buffer_after,
        include_sessions=True,
    )
    busy: dict[str, Sequence[Interval]] = {s.schedule_id: s.busy for s in found}
    windows: dict[str, Sequence[Interval] | None] = {
        s.schedule_id: (
            working_windows(query.working_hours, zone(s.time_zone), rules.start, rules.end)
            if query.working_hours
            else None
        )
        for s in found
    }
    return find_slots(rules, query.groups, busy, windows)
