"""The week picture's geometry: lanes for overlaps, days cut at midnight, DST, all-day bars."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from calsync.dashboard.week_grid import Item, Kind, build, monday_of, window

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = date(2027, 3, 22)  # the week of the spring DST change (Sunday 28 March)


def timed(kind: Kind, title: str, start: datetime, end: datetime) -> Item:
    return Item(kind=kind, title=title, detail="", all_day=False, start=start, end=end)


def all_day(title: str, start: date, end: date) -> Item:
    return Item(
        kind=Kind.BUSY, title=title, detail="", all_day=True, start_date=start, end_date=end
    )


def test_the_week_starts_on_a_local_monday() -> None:
    assert monday_of(date(2027, 3, 28)) == MONDAY
    start, end = window(MONDAY, BERLIN)
    assert start.isoformat() == "2027-03-22T00:00:00+01:00"
    assert end.isoformat() == "2027-03-29T00:00:00+02:00"  # a 167-hour week


def test_overlapping_items_share_the_width_busy_first() -> None:
    items = [
        timed(Kind.SESSION, "Yoga", datetime(2027, 3, 23, 9, 30, tzinfo=BERLIN),
              datetime(2027, 3, 23, 10, 30, tzinfo=BERLIN)),
        timed(Kind.BUSY, "Dentist", datetime(2027, 3, 23, 9, tzinfo=BERLIN),
              datetime(2027, 3, 23, 10, tzinfo=BERLIN)),
        timed(Kind.BUSY, "Lunch", datetime(2027, 3, 23, 12, tzinfo=BERLIN),
              datetime(2027, 3, 23, 13, tzinfo=BERLIN)),
    ]  # fmt: skip
    grid = build(MONDAY, BERLIN, items, today=date(2027, 3, 23))
    tuesday = grid.days[1]
    assert tuesday.today
    placed = {b.item.title: b for b in tuesday.blocks}
    assert (placed["Dentist"].left, placed["Dentist"].width) == (0, 50)
    assert (placed["Yoga"].left, placed["Yoga"].width) == (50, 50)
    assert (placed["Lunch"].left, placed["Lunch"].width) == (0, 100)
    hours = len(grid.hours)
    assert grid.hours[0] == 7
    assert placed["Dentist"].top == 100 * 2 / hours
    assert placed["Dentist"].label == "09:00-10:00"


def test_items_are_cut_at_local_midnight_and_placed_by_wall_clock() -> None:
    night = timed(
        Kind.BUSY,
        "Night shift",
        datetime(2027, 3, 27, 22, tzinfo=BERLIN),
        datetime(2027, 3, 28, 6, tzinfo=BERLIN),  # across the DST change
    )
    grid = build(MONDAY, BERLIN, [night], today=date(2027, 1, 1))
    saturday, sunday = grid.days[5].blocks, grid.days[6].blocks
    assert grid.hours == list(range(0, 24))
    assert len(saturday) == 1 and len(sunday) == 1
    assert saturday[0].top == 100 * 22 / 24 and saturday[0].height == 100 * 2 / 24
    assert sunday[0].top == 0 and sunday[0].height == 100 * 6 / 24


def test_all_day_items_are_bars_clipped_to_the_week_and_stacked() -> None:
    items = [
        all_day("Trip", date(2027, 3, 20), date(2027, 3, 24)),  # began last week
        all_day("Holiday", date(2027, 3, 23), date(2027, 3, 24)),
        all_day("Next week", date(2027, 3, 29), date(2027, 3, 30)),
    ]
    bars = {b.item.title: b for b in build(MONDAY, BERLIN, items, today=MONDAY).bars}
    assert set(bars) == {"Trip", "Holiday"}
    assert (bars["Trip"].column, bars["Trip"].span, bars["Trip"].row) == (1, 2, 1)
    assert (bars["Holiday"].column, bars["Holiday"].span, bars["Holiday"].row) == (2, 1, 2)
    assert bars["Trip"].label == "4 days" and bars["Holiday"].label == "all day"
