"""A feed body into one iCalendar resource per UID (master and overrides together).

Untidy feeds: ``X-WR-TIMEZONE`` names the zone of floating times; a VTIMEZONE that is missing
is left to the zone database (TZID names are resolved by name). Duplicate UIDs: overrides
(with RECURRENCE-ID) join their UID's resource; a second master with the same UID becomes its
own resource keyed ``<uid>#<n>``, so neither copy is lost.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import icalendar

from calsync.providers.base import EventResource
from calsync.providers.ics.feed import FeedRefused
from calsync.tz import zone_exists

_FLOATING_PROPS = ("DTSTART", "DTEND", "RECURRENCE-ID", "DUE")


def parse_feed(body: bytes) -> icalendar.Calendar:
    """The VCALENDAR of ``body``; a FeedRefused when the body is not one (HTML, empty)."""
    text = body.decode("utf-8", errors="replace").lstrip("\ufeff \r\n\t")
    if not text.upper().startswith("BEGIN:VCALENDAR"):
        raise FeedRefused("the feed did not answer with an iCalendar file")
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except ValueError as exc:
        raise FeedRefused("the feed's iCalendar file could not be read") from exc
    if not isinstance(calendar, icalendar.Calendar):
        raise FeedRefused("the feed did not answer with an iCalendar file")
    return calendar


def _default_zone(calendar: icalendar.Calendar) -> str | None:
    name = str(calendar.get("X-WR-TIMEZONE", "")).strip()
    return name if name and zone_exists(name) else None


def _apply_zone(event: icalendar.cal.Component, zone: str) -> None:
    for name in _FLOATING_PROPS:
        prop = event.get(name)
        value = getattr(prop, "dt", None)
        if isinstance(value, datetime) and value.tzinfo is None and "TZID" not in prop.params:
            prop.params["TZID"] = zone


def _group(events: list[icalendar.cal.Component]) -> dict[str, list[icalendar.cal.Component]]:
    groups: dict[str, list[icalendar.cal.Component]] = {}
    masters: dict[str, int] = {}
    for event in events:
        uid = str(event.get("UID", "")).strip() or _anonymous_uid(event)
        key = uid
        if "RECURRENCE-ID" not in event:
            count = masters.get(uid, 0)
            masters[uid] = count + 1
            key = uid if count == 0 else f"{uid}#{count}"
        groups.setdefault(key, []).append(event)
    return groups


def _anonymous_uid(event: icalendar.cal.Component) -> str:
    return "nouid-" + hashlib.sha256(event.to_ical()).hexdigest()[:16]


def split_feed(calendar: icalendar.Calendar) -> list[EventResource]:
    """One resource per UID; etags are hashes of each resource's text."""
    zone = _default_zone(calendar)
    timezones = [c for c in calendar.subcomponents if c.name == "VTIMEZONE"]
    events = [c for c in calendar.subcomponents if c.name == "VEVENT"]
    resources = []
    for key, group in sorted(_group(events).items()):
        out = icalendar.Calendar()
        out.add("PRODID", "-//calsync//ics feed//EN")
        out.add("VERSION", "2.0")
        for tz in timezones:
            out.add_component(tz)
        for event in group:
            if zone:
                _apply_zone(event, zone)
            out.add_component(event)
        text = out.to_ical().decode("utf-8")
        etag = hashlib.sha256(text.encode("utf-8")).hexdigest()
        resources.append(EventResource(key=key, etag=etag, ical=text))
    return resources
