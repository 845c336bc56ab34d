"""Bounded evaluation of one RRULE on naive wall-clock datetimes (internal helper of expand).

dateutil does the RFC 5545 arithmetic, but it always starts iterating at DTSTART and it
rejects days one by one without ever yielding (or checking UNTIL) in between. A sub-daily
rule whose BYxxx parts rarely or never match a day (``FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30``)
can therefore spin for minutes. To keep the work proportional to the scanned range:

* without COUNT, DTSTART is fast-forwarded by whole periods (``INTERVAL`` x ``FREQ``) to just
  before the scanned range; every BYxxx default dateutil derives from DTSTART is preserved;
* DAILY and finer rules with day filters (BYMONTH, BYMONTHDAY, BYYEARDAY, BYDAY) are evaluated
  day by day: days are tested here, and dateutil only expands the times of matching days;
* iteration stops after the first start past the scanned range.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from itertools import islice
from typing import Any

from dateutil.rrule import rrule, rrulestr  # type: ignore[import-untyped]
from icalendar.prop import vRecur

_FIXED_STEP = {
    "SECONDLY": timedelta(seconds=1),
    "MINUTELY": timedelta(minutes=1),
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(weeks=1),
}
_DAY_FILTERS = ("BYMONTH", "BYMONTHDAY", "BYYEARDAY", "BYDAY")
_WEEKDAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}


def rule_walls(
    rec: Mapping[str, Sequence[Any]], dtstart: datetime, scan_from: datetime, scan_to: datetime
) -> Iterator[datetime]:
    """Yield the naive starts of RRULE ``rec`` anchored at naive ``dtstart``, increasing.

    UNTIL is ignored (the caller compares it in the right time zone). Starts before
    ``scan_from`` may or may not be produced; nothing after ``scan_to`` is produced.
    Raises ValueError for rules dateutil or this module cannot evaluate.
    """
    parts = {str(k).upper(): list(v) for k, v in rec.items()}
    parts.pop("UNTIL", None)
    if "RSCALE" in parts:  # RFC 7529: only the Gregorian scale; SKIP is treated as OMIT
        if str(parts.pop("RSCALE")[0]).upper() != "GREGORIAN":
            raise ValueError("unsupported RSCALE")
        parts.pop("SKIP", None)
    freq = str(parts["FREQ"][0]).upper() if parts.get("FREQ") else ""
    interval = int(parts["INTERVAL"][0]) if parts.get("INTERVAL") else 1
    count = int(parts.pop("COUNT")[0]) if parts.get("COUNT") else None
    if interval < 1:
        raise ValueError("INTERVAL must be positive")
    if "BYWEEKNO" in parts and freq != "YEARLY":
        raise ValueError("BYWEEKNO is only allowed with FREQ=YEARLY")
    # With COUNT every instance from DTSTART on must be counted, so no fast-forward.
    start = dtstart if count is not None else fast_forward(dtstart, freq, interval, scan_from)
    if freq in ("DAILY", "HOURLY", "MINUTELY", "SECONDLY") and any(
        parts.get(k) for k in _DAY_FILTERS
    ):
        walls = _day_by_day(parts, freq, interval, dtstart, start, scan_to)
    else:
        walls = iter(_build(parts, start).replace(until=scan_to))
    if count is not None:
        walls = islice(walls, max(count, 0))
    for wall in walls:
        if wall > scan_to:
            return
        yield wall


def fast_forward(dtstart: datetime, freq: str, interval: int, target: datetime) -> datetime:
    """Latest ``dtstart + k * interval * freq`` (k >= 0) not after ``target``, where safe."""
    if target <= dtstart:
        return dtstart
    step = _FIXED_STEP.get(freq)
    if step is not None:
        return dtstart + ((target - dtstart) // (step * interval)) * (step * interval)
    if freq == "MONTHLY" and dtstart.day <= 28:
        span = interval
    elif freq == "YEARLY" and (dtstart.month, dtstart.day) != (2, 29):
        span = 12 * interval
    else:  # the default BYMONTHDAY would not exist in every month: do not move
        return dtstart
    k = ((target.year - dtstart.year) * 12 + target.month - dtstart.month) // span
    while k > 0:
        months = dtstart.month - 1 + k * span
        moved = dtstart.replace(year=dtstart.year + months // 12, month=months % 12 + 1)
        if moved <= target:
            return moved
        k -= 1
    return dtstart


def _build(parts: Mapping[str, Sequence[Any]], dtstart: datetime) -> Any:
    text = vRecur(dict(parts)).to_ical().decode()  # type: ignore[no-untyped-call]
    rule = rrulestr(text, dtstart=dtstart)
    if not isinstance(rule, rrule):
        raise ValueError("unsupported RRULE")
    return rule


def _day_by_day(
    parts: Mapping[str, Sequence[Any]],
    freq: str,
    interval: int,
    dtstart: datetime,
    start: datetime,
    scan_to: datetime,
) -> Iterator[datetime]:
    months = {int(v) for v in parts.get("BYMONTH", ())}
    mdays = {int(v) for v in parts.get("BYMONTHDAY", ())}
    ydays = {int(v) for v in parts.get("BYYEARDAY", ())}
    wdays = {_WEEKDAYS[str(v).strip()[-2:].upper()] for v in parts.get("BYDAY", ())}
    times_only = _build({k: v for k, v in parts.items() if k not in _DAY_FILTERS}, dtstart)
    day = start.date()
    while day <= scan_to.date():
        if _day_matches(day, months, mdays, ydays, wdays):
            first = fast_forward(dtstart, freq, interval, datetime.combine(day, time.min))
            for wall in times_only.replace(dtstart=first, until=datetime.combine(day, time.max)):
                if wall.date() == day:
                    yield wall
        day += timedelta(days=1)


def _day_matches(
    day: date, months: set[int], mdays: set[int], ydays: set[int], wdays: set[int]
) -> bool:
    if months and day.month not in months:
        return False
    if wdays and day.weekday() not in wdays:
        return False
    if mdays:
        month_len = calendar.monthrange(day.year, day.month)[1]
        if day.day not in mdays and day.day - month_len - 1 not in mdays:
            return False
    if ydays:
        year_len = 366 if calendar.isleap(day.year) else 365
        yday = day.timetuple().tm_yday
        if yday not in ydays and yday - year_len - 1 not in ydays:
            return False
    return True
