"""The week picture: busy events and exported sessions placed on a grid of day columns and
hour rows, in the schedule's time zone. Pure: items in, positions out.

Timed items become blocks positioned by percentages of the visible hours; items that overlap
share the width in lanes (busy events left of sessions, so conflicts sit side by side). All-day
items become bars across the day columns they cover, stacked in rows above the grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

DAYS = 7
DEFAULT_FIRST_HOUR, DEFAULT_LAST_HOUR = 7, 20


class Kind(StrEnum):
    BUSY = "busy"  # imported from an external calendar
    SESSION = "session"  # a platform session exported to external calendars


@dataclass(frozen=True)
class Item:
    """One thing to draw. Timed: aware ``start``/``end``. All-day: ``start_date`` and the
    exclusive ``end_date``."""

    kind: Kind
    title: str
    detail: str
    all_day: bool
    start: datetime | None = None
    end: datetime | None = None
    start_date: date | None = None
    end_date: date | None = None


@dataclass(frozen=True)
class Block:
    item: Item
    label: str  # "09:00-10:30", local
    top: float  # percent of the visible hours
    height: float
    left: float  # percent of the day column
    width: float


@dataclass(frozen=True)
class Day:
    day: date
    label: str
    today: bool
    blocks: list[Block]


@dataclass(frozen=True)
class Bar:
    item: Item
    column: int  # 1-based day column
    span: int
    row: int  # 1-based
    label: str


@dataclass(frozen=True)
class WeekGrid:
    monday: date
    time_zone: str
    days: list[Day]
    bars: list[Bar]
    hours: list[int]  # the visible hour rows

    @property
    def previous(self) -> date:
        return self.monday - timedelta(days=DAYS)

    @property
    def next(self) -> date:
        return self.monday + timedelta(days=DAYS)

    @property
    def title(self) -> str:
        last = self.monday + timedelta(days=DAYS - 1)
        return f"{_day_month(self.monday)} - {_day_month(last)} {last.year}"


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz)


def window(monday: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The week as [local Monday 00:00, next local Monday 00:00), DST-aware."""
    return local_midnight(monday, tz), local_midnight(monday + timedelta(days=DAYS), tz)


def _day_month(day: date) -> str:
    return f"{day.day} {day:%b}"


def build(monday: date, tz: ZoneInfo, items: list[Item], today: date) -> WeekGrid:
    timed = [i for i in items if not i.all_day and i.start and i.end]
    segments = [s for i in timed for s in _segments(i, monday, tz)]
    first, last = _visible_hours(segments)
    days = []
    for offset in range(DAYS):
        day = monday + timedelta(days=offset)
        todays = sorted(
            (s for s in segments if s.day == day),
            key=lambda s: (s.start_min, s.item.kind != Kind.BUSY, -s.end_min),
        )
        days.append(
            Day(
                day=day,
                label=f"{day:%a} {_day_month(day)}",
                today=day == today,
                blocks=_place(todays, first, last),
            )
        )
    return WeekGrid(
        monday=monday,
        time_zone=tz.key,
        days=days,
        bars=_bars([i for i in items if i.all_day], monday),
        hours=list(range(first, last)),
    )


@dataclass(frozen=True)
class _Segment:
    item: Item
    day: date
    start_min: int  # minutes after local midnight
    end_min: int
    label: str


def _segments(item: Item, monday: date, tz: ZoneInfo) -> list[_Segment]:
    """The item cut at local midnights, one piece per day of the week it touches."""
    assert item.start is not None and item.end is not None
    start, end = item.start.astimezone(tz), item.end.astimezone(tz)
    label = f"{start:%H:%M}-{end:%H:%M}"
    pieces = []
    for offset in range(DAYS):
        day = monday + timedelta(days=offset)
        day_start = local_midnight(day, tz)
        day_end = local_midnight(day + timedelta(days=1), tz)
        lo, hi = max(start, day_start), min(end, day_end)
        if lo < hi or (start == end and day_start <= start < day_end):
            # Wall-clock minutes, so 09:00 sits at the 09:00 row on DST days too.
            start_min = lo.hour * 60 + lo.minute
            end_min = 24 * 60 if hi == day_end else hi.hour * 60 + hi.minute
            pieces.append(_Segment(item, day, start_min, max(end_min, start_min + 15), label))
    return pieces


def _visible_hours(segments: list[_Segment]) -> tuple[int, int]:
    first = min([DEFAULT_FIRST_HOUR] + [s.start_min // 60 for s in segments])
    last = max([DEFAULT_LAST_HOUR] + [-(-s.end_min // 60) for s in segments])
    return first, min(last, 24)


def _place(segments: list[_Segment], first_hour: int, last_hour: int) -> list[Block]:
    """Overlapping segments form clusters; each cluster splits the width into lanes."""
    span = (last_hour - first_hour) * 60
    blocks: list[Block] = []
    cluster: list[tuple[_Segment, int]] = []
    lane_ends: list[int] = []
    cluster_end = -1

    def flush() -> None:
        lanes = max(1, len(lane_ends))
        for segment, lane in cluster:
            blocks.append(
                Block(
                    item=segment.item,
                    label=segment.label,
                    top=100 * (segment.start_min - first_hour * 60) / span,
                    height=100 * (segment.end_min - segment.start_min) / span,
                    left=100 * lane / lanes,
                    width=100 / lanes,
                )
            )

    for segment in segments:
        if segment.start_min >= cluster_end and cluster:
            flush()
            cluster, lane_ends = [], []
        free = next((i for i, e in enumerate(lane_ends) if e <= segment.start_min), None)
        if free is None:
            lane_ends.append(segment.end_min)
            free = len(lane_ends) - 1
        else:
            lane_ends[free] = segment.end_min
        cluster.append((segment, free))
        cluster_end = max(cluster_end, segment.end_min)
    if cluster:
        flush()
    return blocks


def _bars(items: list[Item], monday: date) -> list[Bar]:
    """All-day items as bars over their day columns; a bar takes the first row it fits in."""
    bars: list[Bar] = []
    rows: list[list[tuple[int, int]]] = []
    ordered = sorted(items, key=lambda i: (i.start_date or monday, i.kind != Kind.BUSY, i.title))
    for item in ordered:
        if item.start_date is None or item.end_date is None:
            continue
        start_offset = (item.start_date - monday).days
        end_offset = max((item.end_date - monday).days, start_offset + 1)  # exclusive
        if end_offset <= 0 or start_offset >= DAYS:
            continue
        first, last = max(start_offset, 0), min(end_offset, DAYS)
        row = next(
            (n for n, used in enumerate(rows) if all(b <= first or a >= last for a, b in used)),
            None,
        )
        if row is None:
            rows.append([])
            row = len(rows) - 1
        rows[row].append((first, last))
        days = (item.end_date - item.start_date).days
        label = "all day" if days <= 1 else f"{days} days"
        bars.append(Bar(item=item, column=first + 1, span=last - first, row=row + 1, label=label))
    return bars
