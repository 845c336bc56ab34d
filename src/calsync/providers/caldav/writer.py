"""CalDAV export: calsync's sessions as calendar object resources (RFC 4791 section 5.3).

Each session is one resource ``<calendar>/<uid>.ics`` holding one VEVENT with UID ``uid``, so
whatever an interrupted create stored is found again and replaced, never duplicated. Writes are
conditional (RFC 9110 section 13.1): ``If-Match`` for an update of the version we hold,
``If-None-Match: *`` for a create. CalDAV has no batch request: events are written one by one
over one connection.

Servers name a missing calendar differently on writes: Radicale and Xandikos answer a PUT into
it with 409, Xandikos a PUT with If-Match with 412. So a failed write that could mean "no such
calendar" is checked with a PROPFIND of the collection before it counts as the item's own error.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urljoin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from icalendar import Calendar, Event

from calsync.providers.base import (
    EXPORT_ICAL_PROPERTY,
    AccountRef,
    CalendarGone,
    EventDelete,
    EventWrite,
    ExportEvent,
    ExternalCalendar,
    ProviderError,
    ProviderUnreachable,
    StaleEvent,
    UnsupportedAccount,
    WrittenEvent,
)
from calsync.providers.caldav import dav
from calsync.providers.caldav.account import CalDavServer
from calsync.providers.caldav.dav import DavClient, canonical_path, safe_url

EXPORT_CALENDAR_PREFIX = "calsync-"  # id prefix of the calendars calsync creates for export

PRODID = "-//calsync//calsync//EN"
_ICALENDAR = "text/calendar; charset=utf-8"
_DAY = timedelta(days=1)
_NO_UID_CONFLICT = dav.caldav("no-uid-conflict")


class CalDavWriter:
    """``CalendarWriter`` on a ``CalDavServer``'s sessions, discovery and calendar URLs.

    403 / 404 / 410 on the calendar itself mean CalendarGone, as they do for reads.
    """

    max_batch: int = 50

    def __init__(self, server: CalDavServer) -> None:
        self._server = server

    # --- calendars -----------------------------------------------------------------------------

    def create_calendar(
        self, account: AccountRef, name: str, *, key: str | None = None
    ) -> ExternalCalendar:
        """MKCALENDAR ``<home>/calsync-<key or random>/`` for events only; the segment is the id
        (its prefix keeps it from ever being taken for the primary calendar, see the adapter).
        With a key, a calendar already at that path (an interrupted earlier create) is it.

        UnsupportedAccount when the server does not let the account create calendars."""
        if key is not None and not key.isalnum():
            raise ValueError("the calendar key must be letters and digits")
        calendar_id = EXPORT_CALENDAR_PREFIX + (key or uuid.uuid4().hex)
        with self._server.session(account.credentials) as client:
            url = urljoin(self._server.home(client, account), calendar_id + "/")
            body = dav.mkcalendar_body(name, ["VEVENT"])
            response = client.request("MKCALENDAR", url, body=body)
            code = response.status_code
            if key is not None and code in (403, 405, 409) and self._is_calendar(client, url):
                return ExternalCalendar(calendar_id, name)
            if code in (403, 405, 501) and "Retry-After" not in response.headers:
                raise UnsupportedAccount(
                    f"MKCALENDAR {safe_url(url)} -> HTTP {code}: "
                    "the server does not let this account create calendars"
                )
            client.check(response, "create calendar")
        return ExternalCalendar(calendar_id, name)

    def _is_calendar(self, client: DavClient, url: str) -> bool:
        try:
            found = self._server.collection_props(client, url, [dav.RESOURCETYPE])
        except CalendarGone:
            return False
        return found.has_child(dav.RESOURCETYPE, dav.CALENDAR)

    def delete_calendar(self, account: AccountRef, calendar_id: str) -> None:
        with self._server.session(account.credentials) as session:
            url = self._calendar_url(session, account, calendar_id)
            response = session.request("DELETE", url)
            if response.status_code not in (404, 410):
                session.scoped(on_forbidden=CalendarGone).check(response, "delete calendar")

    # --- events --------------------------------------------------------------------------------

    def put_events(
        self, account: AccountRef, calendar_id: str, writes: Sequence[EventWrite]
    ) -> list[WrittenEvent | ProviderError]:
        stamp = datetime.now(UTC)
        with self._server.session(account.credentials) as session:
            url = self._calendar_url(session, account, calendar_id)
            client = session.scoped(on_missing=CalendarGone, on_forbidden=CalendarGone)
            return [self._put(client, url, write, stamp) for write in writes]

    def delete_events(
        self, account: AccountRef, calendar_id: str, deletes: Sequence[EventDelete]
    ) -> list[ProviderError | None]:
        with self._server.session(account.credentials) as session:
            url = self._calendar_url(session, account, calendar_id)
            client = session.scoped(on_missing=CalendarGone, on_forbidden=CalendarGone)
            return [self._delete(client, url, delete) for delete in deletes]

    def find_event(self, account: AccountRef, calendar_id: str, uid: str) -> WrittenEvent | None:
        with self._server.session(account.credentials) as session:
            url = self._calendar_url(session, account, calendar_id)
            client = session.scoped(on_missing=CalendarGone, on_forbidden=CalendarGone)
            href = _event_url(url, uid)
            etag = _etag(client, href)
        return None if etag is None else WrittenEvent(canonical_path(href, href), etag)

    # --- one write -----------------------------------------------------------------------------

    def _put(
        self, client: DavClient, calendar_url: str, write: EventWrite, stamp: datetime
    ) -> WrittenEvent | ProviderError:
        if write.external_id is None:
            href = _event_url(calendar_url, write.event.uid)
        else:
            found = _member_url(calendar_url, write.external_id)
            if found is None:
                return ProviderError(f"{write.external_id!r} is not an event of this calendar")
            href = found
        body = event_ical(write.event, stamp)
        if write.etag:
            condition = {"If-Match": write.etag}
        elif write.external_id is None:
            condition = {"If-None-Match": "*"}
        else:  # we wrote it once, someone deleted it: create it again
            condition = {}
        response = _send_put(client, href, body, condition)
        if (
            response.status_code == 412
            and condition.get("If-None-Match")
            and _NO_UID_CONFLICT not in dav.error_conditions(response.content)
        ):  # an earlier, interrupted create already stored it: replace that
            response = _send_put(client, href, body, {})
        if response.is_success:
            etag = response.headers.get("ETag") or _etag(client, href)
            if etag is None:
                raise ProviderUnreachable(f"PUT {safe_url(href)}: the stored event is not found")
            return WrittenEvent(canonical_path(href, href), etag)
        return self._failed(client, calendar_url, response, "export event")

    def _delete(
        self, client: DavClient, calendar_url: str, delete: EventDelete
    ) -> ProviderError | None:
        href = _member_url(calendar_url, delete.external_id)
        if href is None:
            return ProviderError(f"{delete.external_id!r} is not an event of this calendar")
        headers = {"If-Match": delete.etag} if delete.etag else None
        response = client.request("DELETE", href, headers=headers)
        if response.is_success or response.status_code in (404, 410):
            return None
        if response.status_code == 412 and _etag(client, href) is None:
            return None  # If-Match on a deleted event fails (RFC 9110 13.1.1): already gone
        return self._failed(client, calendar_url, response, "delete event")

    def _failed(
        self, client: DavClient, calendar_url: str, response: httpx.Response, what: str
    ) -> ProviderError:
        """The item's own error for a failed write; raises errors of the account or calendar."""
        code = response.status_code
        where = f"{what}: {response.request.method} {safe_url(response.request.url)} -> HTTP {code}"
        if code in (401, 429) or code >= 500 or (code == 403 and "Retry-After" in response.headers):
            client.check(response, what)  # AuthRejected, RateLimited, ProviderUnreachable
        conditions = dav.error_conditions(response.content)
        if code in (403, 404, 409, 410, 412):
            self._server.collection_props(client, calendar_url, [dav.RESOURCETYPE])
            if code == 412 and _NO_UID_CONFLICT not in conditions:
                return StaleEvent(f"{where}: the event changed since the version we hold")
        names = ", ".join(sorted(c.rpartition("}")[2] for c in conditions))
        return ProviderError(f"{where} ({names or 'refused'})")

    def _calendar_url(self, client: DavClient, account: AccountRef, calendar_id: str) -> str:
        # "." and ".." would name the calendar home or its parent
        if calendar_id in ("", ".", ".."):
            raise CalendarGone(f"{calendar_id!r} is not a calendar id")
        return self._server.calendar_url(client, account, calendar_id)


# --- helpers -----------------------------------------------------------------------------------


def _event_url(calendar_url: str, uid: str) -> str:
    return urljoin(calendar_url, quote(uid, safe="") + ".ics")


def _member_url(calendar_url: str, external_id: str) -> str | None:
    """The URL of ``external_id`` (an href path) if it names a resource inside the calendar."""
    url = urljoin(calendar_url, external_id)
    parent, _, name = canonical_path(url, url).rpartition("/")
    return url if name and parent + "/" == canonical_path(calendar_url, calendar_url) else None


def _send_put(
    client: DavClient, href: str, body: bytes, condition: dict[str, str]
) -> httpx.Response:
    return client.request("PUT", href, body=body, headers={"Content-Type": _ICALENDAR, **condition})


def _etag(client: DavClient, href: str) -> str | None:
    """The getetag of the resource at ``href`` ("" when it has none); None when there is none."""
    response = client.request("PROPFIND", href, body=dav.propfind_body([dav.GETETAG]), depth="0")
    if response.status_code in (404, 410):
        return None
    path = canonical_path(href, href)
    for item in client.multistatus(response, "find event").responses:
        if canonical_path(href, item.href) != path:
            continue
        if item.status not in (None, 200):  # Xandikos: a 207 whose only response says 404
            return None
        return item.text(dav.GETETAG) or ""
    return None


def event_ical(event: ExportEvent, stamp: datetime) -> bytes:
    """The VCALENDAR stored for ``event``: one opaque, confirmed VEVENT carrying
    ``X-CALSYNC-EXPORT``. Timed events are written in ``event.time_zone`` with its VTIMEZONE,
    or in UTC when that zone is unknown. ValueError when the event has no valid times."""
    vevent = Event()
    vevent.add("uid", event.uid)
    vevent.add("dtstamp", stamp.astimezone(UTC))
    vevent.add("summary", event.title)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add_component(vevent)
    if event.start_date is not None:
        end_date = event.end_date or event.start_date + _DAY
        if end_date <= event.start_date:
            raise ValueError(f"event {event.uid}: end_date must be after start_date")
        vevent.add("dtstart", event.start_date)
        vevent.add("dtend", end_date)
    else:
        if event.start is None or event.end is None:
            raise ValueError(f"event {event.uid}: a timed event needs start and end")
        if event.start.tzinfo is None or event.end.tzinfo is None or event.end < event.start:
            raise ValueError(f"event {event.uid}: start and end must be aware, in order")
        zone = _zone(event.time_zone)
        start, end = event.start.astimezone(zone), event.end.astimezone(zone)
        vevent.add("dtstart", start)
        vevent.add("dtend", end)
        calendar.add_missing_timezones(first_date=start.date() - _DAY, last_date=end.date() + _DAY)
        if calendar.get_missing_tzids():  # no VTIMEZONE for this zone: UTC is always right
            return event_ical(replace(event, time_zone="UTC"), stamp)
    if event.location:
        vevent.add("location", event.location)
    if event.description:
        vevent.add("description", event.description)
    vevent.add(EXPORT_ICAL_PROPERTY, event.tag)
    vevent.add("transp", "OPAQUE")
    vevent.add("status", "CONFIRMED")
    ical: bytes = calendar.to_ical()
    return ical


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
