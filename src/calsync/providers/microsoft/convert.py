"""Turn one Microsoft Graph event (a single instance, occurrence or exception) into iCalendar.

Each resource is a VCALENDAR with exactly one standalone VEVENT (no RRULE, no RECURRENCE-ID):
Graph's calendarView already expands series, so every instance is its own resource.

Mapping (what ``calsync.ical.expand`` then judges):

* UID: ``iCalUId`` (unique per occurrence in Graph), else the Graph ``id``.
* DTSTART/DTEND: from ``start``/``end``. Timed values become UTC DATE-TIMEs; the adapter asks
  for UTC (``Prefer: outlook.timezone="UTC"``), other IANA zone names are converted too, and an
  unknown zone label is read as UTC (logged). ``isAllDay`` events become VALUE=DATE dates (the
  date part of Graph's midnight values; end exclusive, at least one day).
* TRANSP:TRANSPARENT when ``showAs`` is ``free`` or ``workingElsewhere`` (working remotely is
  available time for bookings); ``busy``, ``oof``, ``tentative`` and ``unknown`` stay opaque.
* STATUS: CANCELLED when ``isCancelled``; else TENTATIVE when ``showAs`` is ``tentative``;
  else CONFIRMED.
* ATTENDEE ``mailto:<account e-mail>`` whose PARTSTAT mirrors ``responseStatus.response``:
  declined -> DECLINED, accepted / organizer -> ACCEPTED, tentativelyAccepted -> TENTATIVE,
  none / notResponded / missing -> NEEDS-ACTION.
* ``X-CALSYNC-EXPORT:<value>`` when the event carries calsync's own single-value extended
  property (``EXPORT_PROPERTY_ID``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event, vCalAddress

__all__ = [
    "EXPORT_PROPERTY_ID",
    "GraphEventError",
    "event_to_ical",
    "export_tag",
    "utc_bounds",
]

EXPORT_PROPERTY_ID = "String {6a3c2c77-8f3e-4d3a-9a56-2b7e6f3f0e11} Name calsyncSessionId"

_log = logging.getLogger(__name__)
_UTC_NAMES = {"utc", "etc/utc", "gmt", "etc/gmt", "z", "tzone://microsoft/utc"}
_TRANSPARENT = {"free", "workingelsewhere"}
_PARTSTAT = {
    "declined": "DECLINED",
    "accepted": "ACCEPTED",
    "organizer": "ACCEPTED",
    "tentativelyaccepted": "TENTATIVE",
    "none": "NEEDS-ACTION",
    "notresponded": "NEEDS-ACTION",
}
_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class GraphEventError(ValueError):
    """The event JSON lacks what an instance needs (message names the field, not the data)."""


def export_tag(event: Mapping[str, Any]) -> str | None:
    """The value of calsync's export property on ``event``, if it carries it."""
    props = event.get("singleValueExtendedProperties")
    if not isinstance(props, list):
        return None
    for prop in props:
        if not isinstance(prop, dict):
            continue
        if str(prop.get("id", "")).casefold() == EXPORT_PROPERTY_ID.casefold():
            value = prop.get("value")
            return str(value) if value is not None else None
    return None


def event_to_ical(event: Mapping[str, Any], owner_email: str, tag: str | None = None) -> str:
    """A VCALENDAR with one VEVENT for ``event``; ``tag`` overrides the event's own property."""
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise GraphEventError("event without an id")
    all_day = bool(event.get("isAllDay"))
    start = _when(event.get("start"), "start", all_day)
    end = _when(event.get("end"), "end", all_day)
    if isinstance(start, datetime) and isinstance(end, datetime):
        end = max(end, start)
    elif end <= start:
        end = start + timedelta(days=1)

    vevent = Event()
    uid = event.get("iCalUId")
    vevent.add("uid", uid if isinstance(uid, str) and uid else event_id)
    vevent.add("dtstamp", _stamp(event.get("lastModifiedDateTime")))
    vevent.add("summary", str(event.get("subject") or ""))
    vevent.add("dtstart", start)
    vevent.add("dtend", end)
    show_as = str(event.get("showAs") or "").casefold()
    vevent.add("transp", "TRANSPARENT" if show_as in _TRANSPARENT else "OPAQUE")
    if event.get("isCancelled"):
        status = "CANCELLED"
    elif show_as == "tentative":
        status = "TENTATIVE"
    else:
        status = "CONFIRMED"
    vevent.add("status", status)
    response = event.get("responseStatus")
    answer = response.get("response") if isinstance(response, dict) else None
    attendee = vCalAddress(f"mailto:{owner_email}")
    attendee.params["PARTSTAT"] = _PARTSTAT.get(str(answer or "none").casefold(), "NEEDS-ACTION")
    vevent.add("attendee", attendee)
    tag = tag if tag is not None else export_tag(event)
    if tag is not None:
        vevent.add("x-calsync-export", tag)

    cal = Calendar()
    cal.add("prodid", "-//calsync//Microsoft Graph adapter//EN")
    cal.add("version", "2.0")
    cal.add_component(vevent)
    text: bytes = cal.to_ical()
    return text.decode("utf-8")


def utc_bounds(event: Mapping[str, Any]) -> tuple[datetime, datetime]:
    """The event's span in UTC; all-day dates count from UTC midnight (callers widen as needed)."""
    all_day = bool(event.get("isAllDay"))
    start = _when(event.get("start"), "start", all_day)
    end = _when(event.get("end"), "end", all_day)
    return _as_utc(start), max(_as_utc(start), _as_utc(end))


def _as_utc(value: date) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _when(value: object, name: str, all_day: bool) -> date:
    if not isinstance(value, dict):
        raise GraphEventError(f"event without {name}")
    text = value.get("dateTime")
    match = _DATETIME.match(text) if isinstance(text, str) else None
    if match is None:
        raise GraphEventError(f"event {name}.dateTime is not an ISO 8601 date-time")
    day_text, hour, minute, second, fraction = match.groups()
    try:
        day = date.fromisoformat(day_text)
        if all_day:
            return day  # Graph gives all-day bounds as midnights; the date is what counts
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        naive = datetime(
            day.year, day.month, day.day, int(hour or 0), int(minute or 0), int(second or 0), micro
        )
    except ValueError:
        raise GraphEventError(f"event {name}.dateTime is not a valid date-time") from None
    return naive.replace(tzinfo=_zone(value.get("timeZone"))).astimezone(UTC)


def _zone(label: object) -> tzinfo:
    name = str(label or "UTC").strip()
    if name.casefold() in _UTC_NAMES:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        _log.warning("unknown time zone %r in a Graph event; read as UTC", name[:64])
        return UTC


def _stamp(value: object) -> datetime:
    """DTSTAMP from lastModifiedDateTime, so the text is stable for an unchanged event."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return _EPOCH
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return _EPOCH
