"""Free/busy and availability arithmetic: pure functions on half-open intervals, no I/O.

An interval is ``(start, end)`` with ``start < end`` in any one unit (the service uses epoch
milliseconds, the tests minutes). ``merge`` turns busy instances into sorted, non-overlapping
intervals; ``working_windows`` turns weekly working hours into a schedule's windows in UTC;
``find_slots`` answers the availability question of spec section 3.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[int, int]
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_MS_PER_MINUTE = 60_000


@dataclass(frozen=True)
class WorkingHours:
    """Working hours on one weekday (0 = Monday), minutes after local midnight; ``end`` may
    be 1440 (24:00, the next midnight)."""

    weekday: int
    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class Group:
    """At least ``required`` of ``schedule_ids`` must be free for a slot."""

    schedule_ids: tuple[str, ...]
    required: int


@dataclass(frozen=True)
class SlotRules:
    """The slot grid and buffers, in the unit of the intervals."""

    start: int
    end: int
    duration: int
    step: int
    buffer_before: int = 0
    buffer_after: int = 0


@dataclass(frozen=True)
class Slot:
    start: int
    end: int
    schedule_ids: tuple[str, ...]


def merge(intervals: Iterable[Interval], start: int, end: int) -> list[Interval]:
    """``intervals`` clipped to [start, end), empty ones dropped, sorted, overlapping and
    touching ones joined."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in intervals)
    merged: list[Interval] = []
    for a, b in clipped:
        if a >= b:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _local_ms(day: date, minute: int, tz: ZoneInfo) -> int:
    """Epoch ms of ``minute`` minutes after local midnight of ``day`` on the wall clock (a
    DST day still starts work at its 09:00)."""
    extra_days, rest = divmod(minute, 1440)
    wall = datetime.combine(day + timedelta(days=extra_days), time(rest // 60, rest % 60), tz)
    return int(wall.timestamp() * 1000)


def working_windows(
    hours: Sequence[WorkingHours], tz: ZoneInfo, start_ms: int, end_ms: int
) -> list[Interval]:
    """The working windows in epoch ms of a schedule in zone ``tz`` that touch
    [start_ms, end_ms): each local day's hours built on its own date and converted to UTC,
    merged (not clipped: a slot must fit inside one window)."""
    first = datetime.fromtimestamp(start_ms / 1000, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end_ms / 1000, tz).date() + timedelta(days=1)
    windows: list[Interval] = []
    day = first
    while day <= last:
        for rule in hours:
            if rule.weekday == day.weekday():
                windows.append(
                    (_local_ms(day, rule.start_minute, tz), _local_ms(day, rule.end_minute, tz))
                )
        day += timedelta(days=1)
    return merge(windows, -(2**62), 2**62)


def _free(busy: Sequence[Interval], starts: Sequence[int], a: int, b: int) -> bool:
    """No interval of the merged, sorted ``busy`` (``starts`` its starts) overlaps [a, b)."""
    i = bisect_right(starts, a) - 1
    if i >= 0 and busy[i][1] > a:
        return False
    return i + 1 >= len(busy) or busy[i + 1][0] >= b


def _within(windows: Sequence[Interval] | None, starts: Sequence[int], a: int, b: int) -> bool:
    """[a, b) lies inside one of the merged ``windows`` (None: always)."""
    if windows is None:
        return True
    i = bisect_right(starts, a) - 1
    return i >= 0 and windows[i][1] >= b


@dataclass(frozen=True)
class _Member:
    busy: Sequence[Interval]
    busy_starts: Sequence[int]
    windows: Sequence[Interval] | None
    window_starts: Sequence[int]


def _member(busy: Sequence[Interval], windows: Sequence[Interval] | None) -> _Member:
    return _Member(busy, [a for a, _ in busy], windows, [a for a, _ in windows] if windows else [])


def _available(member: _Member, rules: SlotRules, a: int, b: int) -> bool:
    if not _within(member.windows, member.window_starts, a, b):
        return False
    return _free(member.busy, member.busy_starts, a - rules.buffer_before, b + rules.buffer_after)


def _slot_members(
    groups: Sequence[Group], members: dict[str, _Member], rules: SlotRules, a: int, b: int
) -> tuple[str, ...] | None:
    """The free members of each group in order, or None when a group has too few."""
    chosen: list[str] = []
    for group in groups:
        free = [s for s in group.schedule_ids if _available(members[s], rules, a, b)]
        if len(free) < group.required:
            return None
        chosen.extend(free)
    return tuple(dict.fromkeys(chosen))


def find_slots(
    rules: SlotRules,
    groups: Sequence[Group],
    busy: dict[str, Sequence[Interval]],
    windows: dict[str, Sequence[Interval] | None],
) -> list[Slot]:
    """Every slot of ``rules.duration`` starting on the ``rules.step`` grid from
    ``rules.start`` and ending by ``rules.end``, inside each chosen schedule's ``windows``
    (merged; absent or None: all day), for which each group has at least ``required``
    schedules free of their merged ``busy`` over the slot widened by the buffers. Sorted by
    start."""
    members = {
        sid: _member(busy.get(sid, ()), windows.get(sid))
        for group in groups
        for sid in group.schedule_ids
    }
    slots: list[Slot] = []
    a = rules.start
    while a + rules.duration <= rules.end:
        b = a + rules.duration
        chosen = _slot_members(groups, members, rules, a, b)
        if chosen is not None:
            slots.append(Slot(a, b, chosen))
        a += rules.step
    return slots


def minutes_ms(minutes: int) -> int:
    return minutes * _MS_PER_MINUTE
