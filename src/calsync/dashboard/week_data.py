"""What the week view shows: the schedule's imported busy events (List Events) and its exported
sessions for one week, as ``week_grid`` items."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from calsync.dashboard.week_grid import Item, Kind, WeekGrid, build, window
from calsync.domain import Identity
from calsync.errors import ProviderUnavailable
from calsync.service.events import cursor
from calsync.service.events import list_events as events
from calsync.service.platform import sessions
from calsync.service.runtime import Runtime
from calsync.service.views import EventView, ScheduleView
from calsync.tz import epoch_ms, zone

PAGE = 1000
MAX_PAGES = 10


@dataclass(frozen=True)
class Week:
    grid: WeekGrid
    failed_provider_ids: list[str]
    truncated: bool


def load_week(rt: Runtime, *, identity: Identity, schedule: ScheduleView, monday: date) -> Week:
    """The week from ``monday`` (local) of ``schedule``; the caller may see the schedule.

    Providers that could not be read are reported, not raised."""
    tz = zone(schedule.time_zone)
    start, end = window(monday, tz)
    busy, failed, truncated = _busy(rt, identity, schedule.id, start, end)
    exported = [
        Item(
            kind=Kind.SESSION,
            title=s.title or "Session",
            detail="booking exported by calsync",
            all_day=s.all_day,
            start=s.start,
            end=s.end,
            start_date=s.start_date,
            end_date=s.end_date,
        )
        for s in sessions.sessions_in_window(rt, identity.tenant_id, schedule.id, start, end)
    ]
    today = datetime.now(tz).date()
    return Week(build(monday, tz, busy + exported, today), failed, truncated)


def _busy(
    rt: Runtime, identity: Identity, schedule_id: str, start: datetime, end: datetime
) -> tuple[list[Item], list[str], bool]:
    query = cursor.EventQuery(
        from_ms=epoch_ms(start),
        to_ms=epoch_ms(end),
        schedule_ids=(schedule_id,),
        own_pi=True,
        partial_failure=True,
    )
    items: list[Item] = []
    failed: list[str] = []
    for _ in range(MAX_PAGES):
        try:
            page = events.list_events(rt, identity=identity, query=query, limit=PAGE)
        except ProviderUnavailable as exc:
            return items, list(exc.data.get("failedProviderIds", [])), False
        items += [_item(e) for e in page.events]
        failed += [p for p in page.failed_provider_ids if p not in failed]
        if page.next_cursor is None:
            return items, failed, False
        query = cursor.decode(rt.cursor_key, identity.tenant_id, page.next_cursor)
    return items, failed, True


def _item(event: EventView) -> Item:
    start, end = datetime.fromisoformat(event.start), datetime.fromisoformat(event.end)
    source = f"busy, from {event.calendar_name}" if event.calendar_name else "busy"
    if event.all_day:
        return Item(
            kind=Kind.BUSY,
            title=event.title or "Busy",
            detail=source,
            all_day=True,
            start_date=start.date(),
            end_date=end.date(),
        )
    return Item(
        kind=Kind.BUSY,
        title=event.title or "Busy",
        detail=source,
        all_day=False,
        start=start,
        end=end,
    )
