"""Google Calendar API v3 ``Event`` JSON -> a one-VEVENT iCalendar text.

The adapter reads with ``singleEvents=true``, so every item is a one-off event or one instance
of a recurring series (with ``recurringEventId`` and ``originalStartTime``). Each becomes its own
VCALENDAR holding one VEVENT; an instance carries a RECURRENCE-ID (its original start), so that
the instances of one series, which share their iCalUID, stay distinct.

What ``calsync.ical.expand`` needs to judge busy time is kept: start and end, transparency, the
status, the account owner's own answer (one ATTENDEE, ``mailto:<account e-mail>``, for the
attendee marked ``self``) and ``X-CALSYNC-EXPORT`` for the sessions calsync exported itself
(``extendedProperties.private.calsyncSessionId``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event, vCalAddress

__all__ = [
    "EXPORT_PROPERTY",
    "GoogleEventError",
    "Span",
    "event_span",
    "event_time",
    "event_to_ical",
]

EXPORT_PROPERTY = "calsyncSessionId"  # extendedProperties.private key of exported sessions
_PRODID = "-//calsync//Google Calendar import//EN"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PARTSTAT = {
    "accepted": "ACCEPTED",
    "declined": "DECLINED",
    "tentative": "TENTATIVE",
    "needsAction": "NEEDS-ACTION",
}
_STATUS = {"confirmed": "CONFIRMED", "tentative": "TENTATIVE", "cancelled": "CANCELLED"}


class GoogleEventError(ValueError):
    """An event whose times cannot be read (the message names the field, never the content)."""


@dataclass(frozen=True)
class Span:
    """When an event happens, in UTC; all-day days are read as UTC days."""

    start: datetime
    end: datetime
    all_day: bool


def event_time(value: object, field: str) -> date | datetime | None:
    """An ``EventDateTime``: a ``date`` (all-day) or an aware UTC ``datetime``; None if absent."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise GoogleEventError(f"{field} is not an EventDateTime object")
    day, moment = value.get("date"), value.get("dateTime")
    if isinstance(moment, str) and moment:
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError:
            raise GoogleEventError(f"{field}.dateTime is not an RFC 3339 date-time") from None
        if parsed.tzinfo is None:  # Google always sends an offset; be lenient if it does not
            parsed = parsed.replace(tzinfo=_zone(value.get("timeZone")))
        return parsed.astimezone(UTC)
    if isinstance(day, str) and day:
        try:
            return date.fromisoformat(day)
        except ValueError:
            raise GoogleEventError(f"{field}.date is not a date") from None
    if moment is None and day is None:
        return None
    raise GoogleEventError(f"{field} has neither a date nor a dateTime")


def event_span(event: Mapping[str, Any]) -> Span | None:
    """The event's start and end (None when it has no start, e.g. a cancelled stub)."""
    start = event_time(event.get("start"), "start")
    if start is None:
        return None
    end = event_time(event.get("end"), "end")
    if isinstance(start, datetime):
        stop = end if isinstance(end, datetime) else start
        return Span(start, max(start, stop), all_day=False)
    first = datetime.combine(start, datetime.min.time(), UTC)
    last = end if isinstance(end, date) and not isinstance(end, datetime) else None
    days = max(1, (last - start).days) if last is not None else 1
    return Span(first, first + timedelta(days=days), all_day=True)


def event_to_ical(event: Mapping[str, Any], owner_email: str) -> str | None:
    """A VCALENDAR text with one VEVENT for ``event``; None for events without a start."""
    start = event_time(event.get("start"), "start")
    if start is None:
        return None
    end = event_time(event.get("end"), "end")
    vevent = Event()
    uid = event.get("iCalUID") or event.get("id")
    vevent.add("uid", str(uid))
    vevent.add("dtstamp", _stamp(event.get("updated")))
    summary = event.get("summary")
    if isinstance(summary, str) and summary:
        vevent.add("summary", summary)
    vevent.add("dtstart", start)
    if end is not None and isinstance(end, datetime) == isinstance(start, datetime):
        vevent.add("dtend", end)
    if event.get("recurringEventId"):
        original = event_time(event.get("originalStartTime"), "originalStartTime")
        if original is not None:
            vevent.add("recurrence-id", original)
    status = _STATUS.get(str(event.get("status", "")))
    if status is not None:
        vevent.add("status", status)
    if event.get("transparency") == "transparent":
        vevent.add("transp", "TRANSPARENT")
    partstat = _own_partstat(event.get("attendees"))
    if partstat is not None:
        vevent.add("attendee", vCalAddress(f"mailto:{owner_email}"), parameters=partstat)
    exported = _exported_session(event.get("extendedProperties"))
    if exported is not None:
        vevent.add("x-calsync-export", exported)
    calendar = Calendar()
    calendar.add("prodid", _PRODID)
    calendar.add("version", "2.0")
    calendar.add_component(vevent)
    text: str = calendar.to_ical().decode("utf-8")
    return text


def _zone(name: object) -> ZoneInfo:
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo("UTC")


def _stamp(updated: object) -> datetime:
    if isinstance(updated, str):
        try:
            parsed = datetime.fromisoformat(updated)
        except ValueError:
            return _EPOCH
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return _EPOCH


def _own_partstat(attendees: object) -> dict[str, str] | None:
    if not isinstance(attendees, list):
        return None
    for attendee in attendees:
        if isinstance(attendee, Mapping) and attendee.get("self") is True:
            answer = _PARTSTAT.get(str(attendee.get("responseStatus", "")), "NEEDS-ACTION")
            return {"PARTSTAT": answer}
    return None


def _exported_session(properties: object) -> str | None:
    if not isinstance(properties, Mapping):
        return None
    private = properties.get("private")
    if not isinstance(private, Mapping) or EXPORT_PROPERTY not in private:
        return None
    return str(private[EXPORT_PROPERTY])
