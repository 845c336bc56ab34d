"""calsync's own sessions API: the platform's bookings that calsync exports.

``PUT /v1/schedules/{scheduleId}/sessions/{sessionId}`` upserts, ``DELETE`` cancels, ``GET``
reads one, ``GET /v1/schedules/{scheduleId}/sessions?from=&to=`` lists a window by start.
Timed sessions take RFC 3339 date-times with a zone; all-day sessions (``allDay: true``)
take full dates, the end exclusive.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from calsync.api import parse
from calsync.api.calls import Call, serve
from calsync.errors import ViolationCollector
from calsync.service.platform import sessions
from calsync.service.platform.sessions import SessionInput, SessionView
from calsync.tz import zone, zone_exists

router = APIRouter(prefix="/v1")
SESSION_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CURSOR_MS = re.compile(r"-?\d{1,15}")  # epoch ms of session starts (years 1900-2200)
MAX_SPAN = timedelta(days=366)
FIRST_YEAR, LAST_YEAR = parse.FIRST_YEAR, parse.LAST_YEAR


def _ids(v: ViolationCollector, schedule_id: str, session_id: str | None) -> str:
    sid = parse.guid(v, "scheduleId", schedule_id)
    if session_id is not None and not SESSION_ID.match(session_id):
        v.add("sessionId", "must be 1-128 characters of A-Z a-z 0-9 . _ : @ -", "FORMAT")
    return sid or ""


def _date(v: ViolationCollector, field: str, value: object) -> date | None:
    if value is None or value == "":
        v.add(field, "is required", "REQUIRED_FIELD")
        return None
    if not isinstance(value, str) or not FULL_DATE.match(value):
        v.add(field, "must be an RFC 3339 full-date (YYYY-MM-DD) for an all-day session", "FORMAT")
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        v.add(field, "is not a valid date", "FORMAT")
        return None
    return parsed if _in_years(v, field, parsed.year) else None


def _datetime(v: ViolationCollector, field: str, value: object) -> datetime | None:
    if value is None or value == "":
        v.add(field, "is required", "REQUIRED_FIELD")
        return None
    if not isinstance(value, str):
        v.add(field, "must be an RFC 3339 date-time string", "FORMAT")
        return None
    parsed = parse.rfc3339(v, field, value)
    if parsed is None or not _in_years(v, field, parsed.year):
        return None
    return parsed


def _bound(v: ViolationCollector, field: str, value: str | None) -> datetime | None:
    """An optional window bound of the list call."""
    return None if value is None else _datetime(v, field, value)


def _in_years(v: ViolationCollector, field: str, year: int) -> bool:
    if FIRST_YEAR <= year <= LAST_YEAR:
        return True
    v.add(field, f"must lie between the years {FIRST_YEAR} and {LAST_YEAR}", "OTHER")
    return False


def session_input(body: dict[str, Any]) -> SessionInput:
    """Validate a PUT body; InvalidArgument lists every problem at once."""
    v = ViolationCollector()
    title = parse.text(v, "title", body.get("title"), max_len=500)
    status = body.get("status")
    if status is None or status == "":
        v.add("status", "is required", "REQUIRED_FIELD")
    elif status not in sessions.STATUSES:
        v.add("status", "must be CONFIRMED or CANCELLED", "FORMAT")
    all_day = parse.boolean(v, "allDay", body.get("allDay")) or False
    tz = parse.text(v, "timeZone", body.get("timeZone"), required=False, max_len=64)
    if tz is not None and not zone_exists(tz):
        v.add("timeZone", "must be an IANA time zone name such as Europe/Berlin", "FORMAT")
    location = parse.text(v, "location", body.get("location"), required=False, max_len=1000)
    description = parse.text(
        v, "description", body.get("description"), required=False, max_len=8000
    )
    start = end = None
    start_date = end_date = None
    if all_day:
        start_date = _date(v, "start", body.get("start"))
        end_date = _date(v, "end", body.get("end"))
        if start_date and end_date and end_date <= start_date:
            v.add("end", "must be after start (the end date is exclusive)", "OTHER")
        elif start_date and end_date and end_date - start_date > MAX_SPAN:
            v.add("end", "a session spans at most 366 days", "OTHER")
    else:
        start = _datetime(v, "start", body.get("start"))
        end = _datetime(v, "end", body.get("end"))
        if start and end and end <= start:
            v.add("end", "must be after start", "OTHER")
        elif start and end and end - start > MAX_SPAN:
            v.add("end", "a session spans at most 366 days", "OTHER")
    v.raise_if_any()
    return SessionInput(
        title=title or "",
        status=str(status),
        time_zone=tz,
        start=start,
        end=end,
        start_date=start_date,
        end_date=end_date,
        location=location,
        description=description,
    )


def session_wire(s: SessionView) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": s.session_id,
        "scheduleId": s.schedule_id,
        "title": s.title,
        "status": s.status,
        "allDay": s.all_day,
        "timeZone": s.time_zone,
    }
    if s.all_day:
        out["start"] = s.start_date.isoformat() if s.start_date else None
        out["end"] = s.end_date.isoformat() if s.end_date else None
    else:
        tz = zone(s.time_zone)
        out["start"] = s.start.astimezone(tz).isoformat() if s.start else None
        out["end"] = s.end.astimezone(tz).isoformat() if s.end else None
    if s.location is not None:
        out["location"] = s.location
    if s.description is not None:
        out["description"] = s.description
    out["revision"] = s.revision
    out["createdDate"] = s.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    out["updatedDate"] = s.updated_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return out


@router.put("/schedules/{schedule_id}/sessions/{session_id}")
async def put_session(request: Request, schedule_id: str, session_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        v = ViolationCollector()
        sid = _ids(v, schedule_id, session_id)
        body = parse.json_body(call.body)
        parse.path_echo(v, "id", session_id, body.get("id"))
        v.raise_if_any()
        data = session_input(body)
        view, _ = sessions.put_session(
            call.rt, identity=call.identity, schedule_id=sid, session_id=session_id, data=data
        )
        return {"session": session_wire(view)}

    return await serve(request, work)


@router.get("/schedules/{schedule_id}/sessions/{session_id}")
async def get_session(request: Request, schedule_id: str, session_id: str) -> JSONResponse:
    return await _one(request, schedule_id, session_id, sessions.get_session)


@router.delete("/schedules/{schedule_id}/sessions/{session_id}")
async def cancel_session(request: Request, schedule_id: str, session_id: str) -> JSONResponse:
    return await _one(request, schedule_id, session_id, sessions.cancel_session)


async def _one(
    request: Request, schedule_id: str, session_id: str, op: Callable[..., SessionView]
) -> JSONResponse:
    """A call on one session named by the path: read it, or cancel it."""

    def work(call: Call) -> dict[str, Any]:
        v = ViolationCollector()
        sid = _ids(v, schedule_id, session_id)
        v.raise_if_any()
        view = op(call.rt, identity=call.identity, schedule_id=sid, session_id=session_id)
        return {"session": session_wire(view)}

    return await serve(request, work)


@router.get("/schedules/{schedule_id}/sessions")
async def list_sessions(request: Request, schedule_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        v = ViolationCollector()
        sid = _ids(v, schedule_id, None)
        start = _bound(v, "from", parse.single(call.query, "from"))
        end = _bound(v, "to", parse.single(call.query, "to"))
        if start and end and end <= start:
            v.add("to", "must be after from", "OTHER")
        cancelled = parse.single(call.query, "includeCancelled")
        if cancelled not in (None, "true", "false"):
            v.add("includeCancelled", "must be true or false", "FORMAT")
        limit = parse.integer(
            v, "limit", parse.single(call.query, "limit"), low=1, high=sessions.MAX_LIST
        )
        after = _position(v, parse.single(call.query, "cursor"))
        v.raise_if_any()
        page = sessions.list_sessions(
            call.rt,
            identity=call.identity,
            schedule_id=sid,
            start=start,
            end=end,
            include_cancelled=cancelled != "false",
            limit=limit or sessions.MAX_LIST,
            after=after,
        )
        out: dict[str, Any] = {"sessions": [session_wire(s) for s in page.sessions]}
        if page.next_after is not None:
            out["nextCursor"] = _cursor(page.next_after)
        return out

    return await serve(request, work)


def _cursor(after: tuple[int, str]) -> str:
    """Where the next page starts, opaque to callers (not a secret: the query still filters
    by tenant and schedule, so a forged position only moves within what the caller may read)."""
    start_ms, session_id = after
    return base64.urlsafe_b64encode(f"{start_ms}:{session_id}".encode()).decode().rstrip("=")


def _position(v: ViolationCollector, cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        start_ms, session_id = raw.split(":", 1)
        if CURSOR_MS.fullmatch(start_ms) is None or SESSION_ID.fullmatch(session_id) is None:
            raise ValueError(raw)
        return int(start_ms), session_id
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        v.add("cursor", "is not a cursor this API returned (nextCursor)", "FORMAT")
        return None
