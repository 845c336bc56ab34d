"""Expand one CalDAV resource into the busy instances that overlap a time window.

A resource is a VCALENDAR holding one UID's master VEVENT and its RECURRENCE-ID overrides
(several UIDs are handled too, each on its own). Everything is expanded locally; nothing
relies on server-side expansion.

Semantics (RFC 5545):

* Timed instances are returned in UTC. Floating times (no TZID) are read in ``local_tz``.
  Unknown TZIDs without a VTIMEZONE are treated as floating.
* All-day instances (DTSTART;VALUE=DATE) carry ``start_date``/``end_date`` (end exclusive);
  ``start``/``end`` are local midnights of those days in ``local_tz``, in UTC.
* A DTEND gives every instance the same *exact* duration; a DURATION is *nominal*: whole days
  keep the local time of day across daylight-saving changes, the remainder is exact.
  Without either, timed events last zero seconds and all-day events one day.
* Recurrence: RRULE (several allowed), RDATE (including PERIOD values), EXDATE (a DATE value
  on a timed series removes every instance on that local day), RECURRENCE-ID overrides
  (highest SEQUENCE wins) and RANGE=THISANDFUTURE, which shifts later instances by the same
  local-time offset and gives them the override's duration and properties. DTSTART is always
  an instance. A date-only UNTIL on a timed series includes that whole local day.
* Not busy: TRANSP:TRANSPARENT, STATUS:CANCELLED, PARTSTAT=DECLINED by an attendee whose
  address is one of ``owner_emails``, and events carrying X-CALSYNC-EXPORT. These are judged
  per instance (an override may decline, cancel or un-hide one instance), except that a
  cancelled or X-CALSYNC-EXPORT master drops the whole series including its overrides.

Limits: at most ``MAX_INSTANCES`` (50,000) instances are returned per resource; when a
window holds more, the earliest are kept and a warning is logged. At most ``MAX_CANDIDATES``
recurrence candidates (including ones before the window) are examined per resource; a series
needing more (e.g. a dense rule with a COUNT that starts decades earlier) is cut there, with a
warning. Without COUNT, rules are fast-forwarded to the window, so the distance between
DTSTART and the window costs nothing.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import partial
from itertools import takewhile
from zoneinfo import ZoneInfo

from icalendar import Calendar, Component

from calsync.ical._recur import rule_walls
from calsync.ical.properties import (
    ICalError,
    address,
    as_list,
    dates_of,
    is_busy,
    series_dropped,
    value_of,
)

__all__ = ["MAX_CANDIDATES", "MAX_INSTANCES", "BusyInstance", "ICalError", "expand_resource"]

MAX_INSTANCES = 50_000
MAX_CANDIDATES = 250_000

_log = logging.getLogger(__name__)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class BusyInstance:
    """One busy occurrence; ``key`` is unique and stable within the resource."""

    key: str
    title: str
    all_day: bool
    start: datetime
    end: datetime
    start_date: date | None
    end_date: date | None


def expand_resource(
    ical_text: str,
    *,
    window_start: datetime,
    window_end: datetime,
    owner_emails: frozenset[str],
    local_tz: ZoneInfo,
) -> list[BusyInstance]:
    """Busy instances overlapping ``[window_start, window_end)``, sorted by (start, end, key)."""
    if window_start.tzinfo is None or window_end.tzinfo is None:
        raise ValueError("window_start and window_end must be timezone-aware")
    ws, we = window_start.astimezone(UTC), window_end.astimezone(UTC)
    owners = frozenset(address(e) for e in owner_emails)
    groups: dict[str, list[_Event]] = {}
    for comp in _parse(ical_text).subcomponents:
        if comp.name == "VEVENT" and "DTSTART" in comp:
            event = _Event.of(comp, local_tz, owners)
            groups.setdefault(event.uid, []).append(event)
    ctx = _Ctx(ws, we, local_tz, [MAX_CANDIDATES])
    out: list[BusyInstance] = []
    for uid, events in groups.items():
        out.extend(_expand_uid(uid, events, ctx))
    out.sort(key=lambda i: (i.start, i.end, i.key))
    if len(out) > MAX_INSTANCES:
        _log.warning("resource has more than %d instances in the window; cut", MAX_INSTANCES)
        del out[MAX_INSTANCES:]
    return out


def _parse(text: str) -> Component:
    try:
        cal = Calendar.from_ical(text.lstrip("\ufeff"))  # some servers send a byte-order mark
    except Exception as exc:  # icalendar raises assorted errors on garbage
        message = str(exc)
        if "Content line could not be parsed" in message:
            why = "a content line is not 'NAME[;PARAMS]:VALUE'"
        elif "multiple" in message:
            why = "more than one top-level component"
        elif "no components" in message.lower():
            why = "no complete BEGIN/END component"
        else:
            why = type(exc).__name__
        raise ICalError(f"not parseable iCalendar: {why}") from None
    if not isinstance(cal, Component) or cal.name != "VCALENDAR":
        raise ICalError("not a VCALENDAR object")
    return cal


@dataclass(frozen=True)
class _Frame:
    """Wall clock of a series: dates (all-day, local midnights in local_tz) or times in tz."""

    all_day: bool
    tz: tzinfo

    def wall(self, value: date, local_tz: tzinfo) -> datetime:
        """Naive wall-clock time of a DATE / DATE-TIME value in this frame."""
        if isinstance(value, datetime):
            aware = value if value.tzinfo is not None else value.replace(tzinfo=local_tz)
            return aware.astimezone(self.tz).replace(tzinfo=None)
        return datetime.combine(value, time())

    def key(self, wall: datetime) -> date:
        """The recurrence identity: the day for all-day series, else the UTC instant."""
        return wall.date() if self.all_day else wall.replace(tzinfo=self.tz).astimezone(UTC)


@dataclass(frozen=True)
class _Event:
    comp: Component
    uid: str
    frame: _Frame
    start: date  # date (all-day) or aware datetime (floating -> local_tz)
    dur: timedelta  # all-day: whole days >= 1
    nominal: bool  # DURATION (nominal days) rather than DTEND (exact)
    rid: date | None
    this_and_future: bool
    sequence: int
    busy: bool

    @staticmethod
    def of(comp: Component, local_tz: tzinfo, owners: frozenset[str]) -> _Event:
        start = value_of(comp, "DTSTART")
        if isinstance(start, datetime) and start.tzinfo is None:
            start = start.replace(tzinfo=local_tz)
        if not isinstance(start, date):
            raise ICalError("DTSTART is not a DATE or DATE-TIME")
        all_day = not isinstance(start, datetime)
        frame = _Frame(all_day, (start.tzinfo if isinstance(start, datetime) else None) or local_tz)
        dur, nominal = _duration(comp, frame, start, local_tz)
        rid_prop = comp.get("RECURRENCE-ID")
        rid = value_of(comp, "RECURRENCE-ID") if rid_prop is not None else None
        if rid is not None and not isinstance(rid, date):
            raise ICalError("RECURRENCE-ID is not a DATE or DATE-TIME")
        rng = str(getattr(rid_prop, "params", {}).get("RANGE", "")).upper()
        try:
            sequence = int(comp.get("SEQUENCE", 0))
        except (TypeError, ValueError):
            sequence = 0
        future = rid is not None and rng == "THISANDFUTURE"
        uid = str(comp.get("UID", ""))
        dur = max(dur, timedelta(0))
        busy = is_busy(comp, owners)
        return _Event(comp, uid, frame, start, dur, nominal, rid, future, sequence, busy)


def _duration(
    comp: Component, frame: _Frame, start: date, local_tz: tzinfo
) -> tuple[timedelta, bool]:
    """(duration, nominal): from DTEND (exact), DURATION (nominal) or the default (a day for
    all-day events, else none); all-day durations are whole days, at least one."""
    nominal = False
    if "DTEND" in comp:
        end = value_of(comp, "DTEND")
        if not isinstance(end, date):
            raise ICalError("DTEND is not a DATE or DATE-TIME")
        if frame.all_day:
            dur = (end.date() if isinstance(end, datetime) else end) - start
        else:
            end_wall = frame.wall(end, local_tz)
            dur = _utc(frame, end_wall) - _utc(frame, frame.wall(start, local_tz))
    elif "DURATION" in comp:
        dur, nominal = value_of(comp, "DURATION"), True
        if not isinstance(dur, timedelta):
            raise ICalError("DURATION is not a duration")
    else:
        dur = _DAY if frame.all_day else timedelta(0)
    if frame.all_day:
        dur = timedelta(days=max(1, dur.days + (1 if dur.seconds or dur.microseconds else 0)))
    return dur, nominal


@dataclass(frozen=True)
class _Ctx:
    ws: datetime
    we: datetime
    local_tz: tzinfo
    budget: list[int]  # remaining candidates for the whole resource


def _expand_uid(uid: str, events: list[_Event], ctx: _Ctx) -> Iterator[BusyInstance]:
    masters = [e for e in events if e.rid is None]
    master = max(masters, key=lambda e: e.sequence) if masters else None
    if master is not None and series_dropped(master.comp):
        return
    overrides, override_days = _overrides(events, master, ctx)
    ex_keys: set[date] = set()
    ex_days: set[date] = set()  # DATE-valued EXDATEs of a timed series: whole local days
    if master is not None:
        ex_keys, ex_days = _exdates(master, ctx)
        yield from _expand_master(uid, master, overrides, ex_keys, ex_days, ctx)
    for key, ov in overrides.items():
        if key in ex_keys or override_days[key] in ex_days:
            continue
        instance = _instance(
            ctx, ov, ov.frame.wall(ov.start, ctx.local_tz), f"{uid}/{key.isoformat()}"
        )
        if instance is not None:
            yield instance


def _overrides(
    events: list[_Event], master: _Event | None, ctx: _Ctx
) -> tuple[dict[date, _Event], dict[date, date]]:
    """(recurrence key -> the override with the highest SEQUENCE, key -> local day of the
    original start)."""
    overrides: dict[date, _Event] = {}
    override_days: dict[date, date] = {}
    for ov in events:
        if ov.rid is not None:
            frame = master.frame if master is not None else ov.frame
            wall = frame.wall(ov.rid, ctx.local_tz)
            key = frame.key(wall)
            if key not in overrides or ov.sequence > overrides[key].sequence:
                overrides[key], override_days[key] = ov, wall.date()
    return overrides, override_days


def _exdates(master: _Event, ctx: _Ctx) -> tuple[set[date], set[date]]:
    """(excluded recurrence keys, whole local days excluded by DATE values of a timed
    series)."""
    ex_keys: set[date] = set()
    ex_days: set[date] = set()
    for value in dates_of(master.comp, "EXDATE"):
        if isinstance(value, datetime) or master.frame.all_day:
            ex_keys.add(master.frame.key(master.frame.wall(value, ctx.local_tz)))
        else:
            ex_days.add(value)
    return ex_keys, ex_days


# A THISANDFUTURE override: (recurrence key, the override, its shift from the original start).
_Future = tuple[date, "_Event", timedelta]


@dataclass(frozen=True)
class _Series:
    """What the walk over a master's occurrences needs, worked out once."""

    uid: str
    master: _Event
    overrides: dict[date, _Event]
    ex_keys: set[date]
    ex_days: set[date]
    periods: dict[date, tuple[timedelta, bool]]
    futures: list[_Future]
    future_keys: list[date]
    recurring: bool


def _expand_master(
    uid: str,
    master: _Event,
    overrides: dict[date, _Event],
    ex_keys: set[date],
    ex_days: set[date],
    ctx: _Ctx,
) -> Iterator[BusyInstance]:
    frame, local_tz = master.frame, ctx.local_tz
    rules = [r for r in as_list(master.comp.get("RRULE")) if r is not None]
    if not all(isinstance(r, dict) for r in rules):
        raise ICalError(f"invalid RRULE in event {uid!r}")
    rdates, periods = _rdates(master, local_tz)
    futures = _futures(overrides, frame, local_tz)
    series = _Series(
        uid,
        master,
        overrides,
        ex_keys,
        ex_days,
        periods,
        futures,
        [key for key, _, _ in futures],
        bool(rules or rdates),
    )
    scan_from, scan_to = _scan_range(master, futures, periods, ctx)
    start_wall = frame.wall(master.start, local_tz)
    sources: list[Iterable[datetime]] = [[start_wall], sorted(rdates)]
    for rule in rules:
        walls = rule_walls(rule, start_wall, scan_from, scan_to)
        until = rule.get("UNTIL")
        if until:
            walls = takewhile(partial(operator.ge, _until_limit(until[0], frame, local_tz)), walls)
        sources.append(walls)
    try:
        yield from _walk(series, heapq.merge(*sources), scan_from, scan_to, ctx)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ICalError(f"cannot expand the recurrence of event {uid!r}: {exc}") from None


def _rdates(
    master: _Event, local_tz: tzinfo
) -> tuple[list[datetime], dict[date, tuple[timedelta, bool]]]:
    """The RDATE walls, and the durations PERIOD values give their occurrences: (start, end)
    is exact, (start, duration) nominal."""
    frame = master.frame
    rdates: list[datetime] = []
    periods: dict[date, tuple[timedelta, bool]] = {}
    for value in dates_of(master.comp, "RDATE"):
        if isinstance(value, tuple):
            first, second = value
            wall = frame.wall(first, local_tz)
            if isinstance(second, timedelta):
                periods[frame.key(wall)] = (second, True)
            else:
                periods[frame.key(wall)] = (
                    _utc(frame, frame.wall(second, local_tz)) - _utc(frame, wall),
                    False,
                )
            rdates.append(wall)
        elif isinstance(value, date):
            rdates.append(frame.wall(value, local_tz))
    return rdates, periods


def _futures(overrides: dict[date, _Event], frame: _Frame, local_tz: tzinfo) -> list[_Future]:
    """THISANDFUTURE overrides of the same kind (timed / all-day), by original start."""
    futures: list[_Future] = []
    for key, ov in sorted(overrides.items(), key=lambda item: item[0]):
        if ov.this_and_future and ov.rid is not None and ov.frame.all_day == frame.all_day:
            shift = frame.wall(ov.start, local_tz) - frame.wall(ov.rid, local_tz)
            futures.append((key, ov, shift))
    return futures


def _scan_range(
    master: _Event,
    futures: list[_Future],
    periods: dict[date, tuple[timedelta, bool]],
    ctx: _Ctx,
) -> tuple[datetime, datetime]:
    """The walls to walk: a little beyond what the window needs, since local time is not
    monotonic in UTC across daylight-saving gaps and all-day instances are local midnights."""
    frame = master.frame
    shifts = [shift for _, _, shift in futures]
    longest = max(
        [master.dur] + [ov.dur for _, ov, _ in futures] + [p[0] for p in periods.values()]
    )
    slack = _DAY if frame.all_day else timedelta(hours=3)
    early = longest + max([timedelta(0), *shifts]) + slack
    late = max([timedelta(0)] + [-s for s in shifts]) + slack
    return frame.wall(ctx.ws - early, ctx.local_tz), frame.wall(ctx.we + late, ctx.local_tz)


def _walk(
    series: _Series,
    walls: Iterable[datetime],
    scan_from: datetime,
    scan_to: datetime,
    ctx: _Ctx,
) -> Iterator[BusyInstance]:
    """The instances of the master's occurrences among ``walls`` (in order), within the
    resource's candidate budget and MAX_INSTANCES."""
    seen: set[date] = set()
    emitted = 0
    for wall in walls:
        if wall > scan_to:
            return
        ctx.budget[0] -= 1
        if ctx.budget[0] < 0:
            _log.warning("event %r: recurrence too expensive to expand; cut", series.uid)
            return
        key = series.master.frame.key(wall)
        if wall < scan_from or key in seen:
            continue
        seen.add(key)
        instance = _occurrence(series, wall, key, ctx)
        if instance is not None:
            yield instance
            emitted += 1
            if emitted >= MAX_INSTANCES:
                _log.warning("event %r: more than %d instances; cut", series.uid, MAX_INSTANCES)
                return


def _occurrence(series: _Series, wall: datetime, key: date, ctx: _Ctx) -> BusyInstance | None:
    """The instance of the occurrence at ``wall`` (None: excluded, overridden, or outside the
    window): the master's, or that of the THISANDFUTURE override in force then."""
    if key in series.ex_keys or key in series.overrides:
        return None
    if series.ex_days and wall.date() in series.ex_days:
        return None
    base, shift = series.master, timedelta(0)
    index = bisect.bisect_left(series.future_keys, key) - 1
    if index >= 0:
        _, base, shift = series.futures[index]
    dur, nominal = series.periods.get(key, (base.dur, base.nominal))
    name = f"{series.uid}/{key.isoformat()}" if series.recurring else f"{series.uid}/"
    return _instance(ctx, base, wall + shift, name, series.master.frame, dur, nominal)


def _instance(
    ctx: _Ctx,
    event: _Event,
    wall: datetime,
    key: str,
    frame: _Frame | None = None,
    dur: timedelta | None = None,
    nominal: bool | None = None,
) -> BusyInstance | None:
    """The instance of ``event`` starting at ``wall`` (in ``frame``) if busy and in the window."""
    if not event.busy:
        return None
    frame = frame or event.frame
    dur = event.dur if dur is None else max(dur, timedelta(0))
    nominal = event.nominal if nominal is None else nominal
    start_date = end_date = None
    if frame.all_day:
        start_date = wall.date()
        end_date = start_date + timedelta(days=max(1, dur.days + (1 if dur.seconds else 0)))
        start = datetime.combine(start_date, time(), ctx.local_tz).astimezone(UTC)
        end = datetime.combine(end_date, time(), ctx.local_tz).astimezone(UTC)
    else:
        start = _utc(frame, wall)
        days = timedelta(days=dur.days) if nominal else timedelta(0)
        end = max(start, _utc(frame, wall + days) + (dur - days))
    if start == end:
        if not ctx.ws <= start < ctx.we:
            return None
    elif not (start < ctx.we and end > ctx.ws):
        return None
    title = str(event.comp.get("SUMMARY", ""))
    return BusyInstance(key, title, frame.all_day, start, end, start_date, end_date)


def _until_limit(value: date, frame: _Frame, local_tz: tzinfo) -> datetime:
    """UNTIL as a wall-clock limit; a date-only UNTIL includes that whole day."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time.max)
    return frame.wall(value if value.tzinfo else value.replace(tzinfo=frame.tz), local_tz)


def _utc(frame: _Frame, wall: datetime) -> datetime:
    return wall.replace(tzinfo=frame.tz).astimezone(UTC)
