"""The pure free/busy and availability arithmetic (service.events.availability), checked
against a minute-by-minute solver written from the spec's words."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

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

BERLIN = ZoneInfo("Europe/Berlin")


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_merge_sorts_joins_overlapping_and_touching_and_clips() -> None:
    got = merge([(50, 60), (5, 12), (10, 20), (20, 25), (30, 40), (33, 35), (-5, 2)], 0, 55)
    assert got == [(0, 2), (5, 25), (30, 40), (50, 55)]


def test_merge_drops_empty_and_outside() -> None:
    assert merge([(5, 5), (60, 70), (-10, 0), (8, 3)], 0, 50) == []
    assert merge([], 0, 10) == []


def test_working_windows_on_berlin_dst_day() -> None:
    # 2027-03-28 is a Sunday: Berlin moves from UTC+1 to UTC+2 at 02:00 local.
    hours = [WorkingHours(weekday, 9 * 60, 17 * 60) for weekday in (5, 6, 0)]
    windows = working_windows(
        hours, BERLIN, _ms("2027-03-27T00:00:00+00:00"), _ms("2027-03-30T00:00:00+00:00")
    )
    assert (_ms("2027-03-27T08:00:00+00:00"), _ms("2027-03-27T16:00:00+00:00")) in windows
    assert (_ms("2027-03-28T07:00:00+00:00"), _ms("2027-03-28T15:00:00+00:00")) in windows
    assert (_ms("2027-03-29T07:00:00+00:00"), _ms("2027-03-29T15:00:00+00:00")) in windows
    assert all(datetime.fromtimestamp(a / 1000, BERLIN).hour == 9 for a, _ in windows)


def test_working_windows_night_shift_to_midnight_joins_next_morning() -> None:
    hours = [WorkingHours(0, 20 * 60, 24 * 60), WorkingHours(1, 0, 6 * 60)]
    utc = ZoneInfo("UTC")
    windows = working_windows(
        hours, utc, _ms("2027-01-04T00:00:00+00:00"), _ms("2027-01-06T00:00:00+00:00")
    )
    assert windows == [(_ms("2027-01-04T20:00:00+00:00"), _ms("2027-01-05T06:00:00+00:00"))]


def test_slots_dst_day_follow_local_working_hours() -> None:
    start, end = _ms("2027-03-28T00:00:00+00:00"), _ms("2027-03-29T00:00:00+00:00")
    windows = working_windows([WorkingHours(6, 9 * 60, 10 * 60)], BERLIN, start, end)
    rules = SlotRules(start, end, duration=30 * 60_000, step=30 * 60_000)
    slots = find_slots(rules, [Group(("a",), 1)], {"a": []}, {"a": windows})
    assert [(s.start, s.end) for s in slots] == [
        (_ms("2027-03-28T07:00:00+00:00"), _ms("2027-03-28T07:30:00+00:00")),
        (_ms("2027-03-28T07:30:00+00:00"), _ms("2027-03-28T08:00:00+00:00")),
    ]


def test_slots_buffers_groups_and_chosen_schedules() -> None:
    rules = SlotRules(0, 120, duration=30, step=15, buffer_before=0, buffer_after=10)
    groups = [Group(("a", "b"), 1), Group(("room",), 1)]
    busy = {"a": [(40, 60)], "b": [(0, 30)], "room": [(100, 120)]}
    slots = find_slots(rules, groups, busy, {})
    assert slots == [
        Slot(0, 30, ("a", "room")),
        Slot(30, 60, ("b", "room")),
        Slot(45, 75, ("b", "room")),
        Slot(60, 90, ("a", "b", "room")),
    ]


def test_group_requiring_two_needs_two_free() -> None:
    rules = SlotRules(0, 60, duration=30, step=30)
    slots = find_slots(rules, [Group(("a", "b"), 2)], {"a": [], "b": [(0, 10)]}, {})
    assert slots == [Slot(30, 60, ("a", "b"))]


# A brute-force solver, minute by minute, from the words of spec section 3.


def _minutes(intervals: list[Interval]) -> set[int]:
    return {m for a, b in intervals for m in range(a, b)}


def _brute_force(
    rules: SlotRules,
    groups: list[Group],
    busy: dict[str, list[Interval]],
    windows: dict[str, list[Interval] | None],
) -> list[Slot]:
    busy_minutes = {s: _minutes(i) for s, i in busy.items()}
    working = {s: None if w is None else _minutes(w) for s, w in windows.items()}
    slots = []
    start = rules.start
    while start + rules.duration <= rules.end:
        end = start + rules.duration
        chosen: list[str] = []
        ok = True
        for group in groups:
            free = []
            for s in group.schedule_ids:
                inside = working[s] is None or all(m in working[s] for m in range(start, end))  # type: ignore[operator]
                widened = range(start - rules.buffer_before, end + rules.buffer_after)
                clear = not any(m in busy_minutes[s] for m in widened)
                if inside and clear:
                    free.append(s)
            ok = ok and len(free) >= group.required
            chosen += [s for s in free if s not in chosen]
        if ok:
            slots.append(Slot(start, end, tuple(chosen)))
        start += rules.step
    return slots


_interval = st.tuples(st.integers(-10, 90), st.integers(1, 40)).map(lambda p: (p[0], p[0] + p[1]))
_intervals = st.lists(_interval, max_size=6)
NAMES = ("a", "b", "c", "d")


@st.composite
def _problem(draw: st.DrawFn) -> tuple[SlotRules, list[Group], dict[str, Any], dict[str, Any]]:
    start = draw(st.integers(0, 10))
    rules = SlotRules(
        start,
        start + draw(st.integers(1, 90)),
        duration=draw(st.integers(1, 30)),
        step=draw(st.integers(1, 10)),
        buffer_before=draw(st.integers(0, 10)),
        buffer_after=draw(st.integers(0, 10)),
    )
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        members = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
        groups.append(Group(tuple(members), draw(st.integers(1, len(members)))))
    busy = {s: draw(_intervals) for s in NAMES}
    windows = {s: draw(st.none() | _intervals) for s in NAMES}
    return rules, groups, busy, windows


@settings(max_examples=500, deadline=None)
@given(_problem())
def test_slot_finder_matches_brute_force(
    problem: tuple[SlotRules, list[Group], dict[str, Any], dict[str, Any]],
) -> None:
    rules, groups, busy, windows = problem
    merged_busy = {s: merge(i, -(10**6), 10**6) for s, i in busy.items()}
    merged_windows = {
        s: None if w is None else merge(w, -(10**6), 10**6) for s, w in windows.items()
    }
    assert find_slots(rules, groups, merged_busy, merged_windows) == _brute_force(
        rules, groups, busy, windows
    )


@given(_intervals, st.integers(-20, 100), st.integers(1, 100))
def test_merge_matches_minute_sets(intervals: list[Interval], start: int, length: int) -> None:
    end = start + length
    merged = merge(intervals, start, end)
    assert _minutes(merged) == {m for m in _minutes(intervals) if start <= m < end}
    assert all(a < b for a, b in merged)
    assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(merged))
