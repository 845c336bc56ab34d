"""Free/busy and availability: ``POST /v1/free-busy:query`` and ``POST /v1/availability:query``
(calsync-v1-extensions.md sections 2 and 3). Bad input is a 400 validationError listing every
bad field, found before anything is read."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from calsync.api import parse
from calsync.api.calls import Call, serve
from calsync.errors import ViolationCollector
from calsync.service.events import free_busy
from calsync.service.events.availability import (
    DAYS,
    Group,
    Interval,
    SlotRules,
    WorkingHours,
    minutes_ms,
)
from calsync.tz import epoch_ms

router = APIRouter(prefix="/v1")
FREE_BUSY_SCHEDULES, FREE_BUSY_DAYS = 100, 366
AVAILABILITY_SCHEDULES, AVAILABILITY_DAYS = 50, 31
MAX_MINUTES = AVAILABILITY_DAYS * 1440
MAX_WORKING_HOURS = 100
MAX_GROUPS = 50
CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(ms: int) -> str:
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _window(v: ViolationCollector, body: dict[str, Any], max_days: int) -> tuple[int, int]:
    """``from`` and ``to`` as epoch ms; violations for missing, reversed or too long."""
    start = _moment(v, "from", body.get("from"))
    end = _moment(v, "to", body.get("to"))
    if start is None or end is None:
        return 0, 0
    if start >= end:
        v.add("to", "must be later than from", "OTHER")
    elif end - start > timedelta(days=max_days):
        v.add("to", f"must be at most {max_days} days after from", "MAX")
    return epoch_ms(start), epoch_ms(end)


def _moment(v: ViolationCollector, field: str, value: object) -> datetime | None:
    if value is None or value == "":
        v.add(field, "is required", "REQUIRED_FIELD")
        return None
    if not isinstance(value, str):
        v.add(field, "must be an RFC 3339 date-time", "FORMAT")
        return None
    return parse.rfc3339(v, field, value)


def _whole(
    v: ViolationCollector, field: str, value: object, *, low: int, high: int, default: int | None
) -> int:
    """A JSON whole number in [low, high]; ``default`` when absent (None: required)."""
    if value is None:
        if default is None:
            v.add(field, "is required", "REQUIRED_FIELD")
            return low
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        v.add(field, "must be a whole number", "FORMAT")
        return low
    if value < low:
        v.add(field, f"must be at least {low}", "MIN")
    elif value > high:
        v.add(field, f"must be at most {high}", "MAX")
    return value


def _list(v: ViolationCollector, field: str, value: object, most: int) -> list[Any]:
    """A non-empty JSON array of at most ``most`` items."""
    if not isinstance(value, list) or not value:
        v.add(field, "must be a non-empty list", "REQUIRED_FIELD")
        return []
    if len(value) > most:
        v.add(field, f"must hold at most {most} values", "MAX_SIZE")
        return []
    return value


def _schedule_ids(v: ViolationCollector, field: str, value: object, most: int) -> list[str]:
    ids = [
        parse.guid(v, f"{field}[{i}]", item) for i, item in enumerate(_list(v, field, value, most))
    ]
    return [i for i in ids if i is not None]


def _fields(v: ViolationCollector, field: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        v.add(field, "must be an object", "FORMAT")
        return {}
    return value


def _clock(v: ViolationCollector, field: str, value: object) -> int | None:
    """Minutes after midnight of ``HH:MM`` (24:00 allowed, for an end)."""
    match = CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        v.add(field, "must be a time of day HH:MM (00:00 to 24:00)", "FORMAT")
        return None
    hours, minutes = str(value).split(":")
    return int(hours) * 60 + int(minutes)


def _working_hours(v: ViolationCollector, value: object) -> tuple[WorkingHours, ...]:
    if value is None:
        return ()
    rules = []
    for i, item in enumerate(_list(v, "workingHours", value, MAX_WORKING_HOURS)):
        field = f"workingHours[{i}]"
        entry = _fields(v, field, item)
        day = entry.get("day")
        if day not in DAYS:
            v.add(f"{field}.day", "must be one of " + ", ".join(DAYS), "FORMAT")
        start = _clock(v, f"{field}.start", entry.get("start"))
        end = _clock(v, f"{field}.end", entry.get("end"))
        if start is not None and end is not None and day in DAYS:
            if start >= end:
                v.add(f"{field}.end", "must be later than start", "OTHER")
            else:
                rules.append(WorkingHours(DAYS.index(day), start, end))
    return tuple(rules)


def _group(v: ViolationCollector, field: str, item: object) -> Group | None:
    entry = _fields(v, field, item)
    ids = _schedule_ids(v, f"{field}.scheduleIds", entry.get("scheduleIds"), AVAILABILITY_SCHEDULES)
    if len(set(ids)) < len(ids):
        v.add(f"{field}.scheduleIds", "must not name a schedule twice", "OTHER")
    raw = entry.get("scheduleIds")
    size = len(raw) if isinstance(raw, list) and raw else 1
    required = _whole(v, f"{field}.required", entry.get("required"), low=1, high=size, default=1)
    return Group(tuple(ids), required) if ids else None


def _groups(v: ViolationCollector, value: object) -> tuple[Group, ...]:
    items = _list(v, "groups", value, MAX_GROUPS)
    groups = [_group(v, f"groups[{i}]", item) for i, item in enumerate(items)]
    distinct = {s for g in groups if g is not None for s in g.schedule_ids}
    if len(distinct) > AVAILABILITY_SCHEDULES:
        v.add("groups", f"may name at most {AVAILABILITY_SCHEDULES} schedules", "MAX_SIZE")
    return tuple(g for g in groups if g is not None)


def _intervals(busy: list[Interval]) -> list[dict[str, str]]:
    return [{"start": _utc(a), "end": _utc(b)} for a, b in busy]


@router.post("/free-busy:query")
async def free_busy_query(request: Request) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        body = parse.json_body(call.body)
        v = ViolationCollector()
        from_ms, to_ms = _window(v, body, FREE_BUSY_DAYS)
        ids = _schedule_ids(v, "scheduleIds", body.get("scheduleIds"), FREE_BUSY_SCHEDULES)
        include = parse.boolean(v, "includeSessions", body.get("includeSessions"))
        v.raise_if_any()
        found = free_busy.busy_times(
            call.rt,
            identity=call.identity,
            schedule_ids=ids,
            from_ms=from_ms,
            to_ms=to_ms,
            include_sessions=bool(include),
        )
        schedules = [
            {
                "scheduleId": s.schedule_id,
                "busy": _intervals(s.busy),
                "failedConnectionIds": s.failed_connection_ids,
            }
            for s in found
        ]
        return {"schedules": schedules}

    return await serve(request, work)


def _availability_query(body: dict[str, Any]) -> free_busy.AvailabilityQuery:
    v = ViolationCollector()
    from_ms, to_ms = _window(v, body, AVAILABILITY_DAYS)
    minutes = {"low": 0, "high": MAX_MINUTES, "default": 0}
    duration = _whole(
        v, "durationMinutes", body.get("durationMinutes"), low=1, high=MAX_MINUTES, default=None
    )
    step = _whole(
        v, "slotStepMinutes", body.get("slotStepMinutes"), low=1, high=MAX_MINUTES, default=15
    )
    before = _whole(v, "bufferBeforeMinutes", body.get("bufferBeforeMinutes"), **minutes)
    after = _whole(v, "bufferAfterMinutes", body.get("bufferAfterMinutes"), **minutes)
    hours = _working_hours(v, body.get("workingHours"))
    groups = _groups(v, body.get("groups"))
    v.raise_if_any()
    rules = SlotRules(
        from_ms,
        to_ms,
        minutes_ms(duration),
        minutes_ms(step),
        minutes_ms(before),
        minutes_ms(after),
    )
    return free_busy.AvailabilityQuery(rules, groups, hours)


@router.post("/availability:query")
async def availability_query(request: Request) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        query = _availability_query(parse.json_body(call.body))
        slots = free_busy.availability(call.rt, identity=call.identity, query=query)
        return {
            "slots": [
                {"start": _utc(s.start), "end": _utc(s.end), "scheduleIds": list(s.schedule_ids)}
                for s in slots
            ]
        }

    return await serve(request, work)
