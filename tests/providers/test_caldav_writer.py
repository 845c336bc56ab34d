"""CalDavWriter (export) against real Radicale and Xandikos servers, plus MockTransport tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import icalendar
import pytest

from calsync.ical.expand import expand_resource
from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarGone,
    CalendarWriter,
    Credentials,
    EventDelete,
    EventResource,
    EventWrite,
    ExportEvent,
    ProviderError,
    ProviderUnreachable,
    RateLimitedByProvider,
    StaleEvent,
    WrittenEvent,
)
from calsync.providers.caldav import CalDavProvider
from calsync.providers.caldav.writer import EXPORT_CALENDAR_PREFIX, CalDavWriter
from tests.peers import dav_servers as peers

USER = "bob"
BERLIN = ZoneInfo("Europe/Berlin")
# Berlin moves its clocks from 02:00 CET to 03:00 CEST on 2030-03-31: 1.5 hours of real time.
DST_START = datetime(2030, 3, 31, 1, 30, tzinfo=BERLIN)
DST_END = datetime(2030, 3, 31, 4, 0, tzinfo=BERLIN)


def _uid() -> str:
    return uuid.uuid4().hex


def _timed(uid: str, title: str = "Yoga", tag: str = "session-1") -> ExportEvent:
    return ExportEvent(
        uid=uid,
        tag=tag,
        title=title,
        time_zone="Europe/Berlin",
        start=DST_START,
        end=DST_END,
        location="Studio 2, Main St.",
        description="Bring a mat; arrive early",
    )


def _all_day(uid: str) -> ExportEvent:
    return ExportEvent(
        uid=uid,
        tag="session-2",
        title="Retreat",
        time_zone="Europe/Berlin",
        start_date=date(2030, 4, 1),
        end_date=date(2030, 4, 3),
    )


class Export:
    """A fresh calendar made by the writer under test, and ways to look behind its back."""

    def __init__(self, server: peers.DavServer) -> None:
        self.server = server
        self.provider = CalDavProvider(server.base_url)
        self.account = self.provider.verify(Credentials(USER, server.users[USER]))
        writer = self.provider.writer
        assert isinstance(writer, CalDavWriter)
        self.writer: CalendarWriter = writer
        self.calendar_id = writer.create_calendar(self.account, "Bookings").id
        home = self.account.state["calendar_home_url"]
        self.url = f"{home}{self.calendar_id}/"

    def put(self, *writes: EventWrite) -> list[WrittenEvent | ProviderError]:
        return self.writer.put_events(self.account, self.calendar_id, writes)

    def written(self, write: EventWrite) -> WrittenEvent:
        [result] = self.put(write)
        assert isinstance(result, WrittenEvent), result
        return result

    def resources(self) -> list[EventResource]:
        changes = self.provider.read_changes(self.account, self.calendar_id, None, {})
        return changes.upserted

    def delete_behind_our_back(self, uid: str) -> None:
        peers.delete_event(self.url, USER, self.server.users[USER], f"{uid}.ics")


@pytest.fixture
def export(dav_server: peers.DavServer) -> Export:
    return Export(dav_server)


def _vevent(ical: str) -> icalendar.Event:
    [event] = icalendar.Calendar.from_ical(ical).walk("VEVENT")
    assert isinstance(event, icalendar.Event)
    return event


def _busy(ical: str) -> list[tuple[datetime, datetime, str]]:
    """What import makes of ``ical``: (start, end, title) of each busy instance, in UTC."""
    instances = expand_resource(
        ical,
        window_start=datetime(2030, 1, 1, tzinfo=UTC),
        window_end=datetime(2031, 1, 1, tzinfo=UTC),
        owner_emails=frozenset(),
        local_tz=BERLIN,
    )
    return [(i.start, i.end, i.title) for i in instances]


def _untagged(ical: str) -> str:
    return "".join(
        line for line in ical.splitlines(keepends=True) if not line.startswith("X-CALSYNC-EXPORT")
    )


# --- calendars ---------------------------------------------------------------------------------


@pytest.mark.peers
def test_created_calendar_is_listed_then_deleted(dav_server: peers.DavServer) -> None:
    provider = CalDavProvider(dav_server.base_url)
    account = provider.verify(Credentials(USER, dav_server.users[USER]))
    assert provider.writer is not None
    created = provider.writer.create_calendar(account, "Bookings & <Classes>")
    listed = {c.id: c for c in provider.list_calendars(account)}
    assert created.name == "Bookings & <Classes>"
    assert listed[created.id].name == "Bookings & <Classes>"
    assert not listed[created.id].read_only
    assert provider.read_changes(account, created.id, None, {}).upserted == []

    provider.writer.delete_calendar(account, created.id)
    assert created.id not in {c.id for c in provider.list_calendars(account)}
    with pytest.raises(CalendarGone):
        provider.read_changes(account, created.id, None, {})
    provider.writer.delete_calendar(account, created.id)  # already gone: no error


# --- writing -----------------------------------------------------------------------------------


@pytest.mark.peers
def test_put_events_read_back_with_tag_zone_and_etag(export: Export) -> None:
    timed_uid, day_uid = _uid(), _uid()
    results = export.put(EventWrite(_timed(timed_uid)), EventWrite(_all_day(day_uid)))
    assert all(isinstance(r, WrittenEvent) for r in results), results
    path = httpx.URL(export.url).path
    written = {r.external_id: r.etag for r in results if isinstance(r, WrittenEvent)}
    assert set(written) == {f"{path}{timed_uid}.ics", f"{path}{day_uid}.ics"}

    resources = {r.key: r for r in export.resources()}
    assert {key: r.etag for key, r in resources.items()} == written
    timed_ical = resources[f"{path}{timed_uid}.ics"].ical
    day_ical = resources[f"{path}{day_uid}.ics"].ical

    timed = _vevent(timed_ical)
    assert str(timed["UID"]) == timed_uid and str(timed["SUMMARY"]) == "Yoga"
    assert str(timed["X-CALSYNC-EXPORT"]) == "session-1"
    assert str(timed["LOCATION"]) == "Studio 2, Main St."
    assert str(timed["DESCRIPTION"]) == "Bring a mat; arrive early"
    assert (str(timed["TRANSP"]), str(timed["STATUS"])) == ("OPAQUE", "CONFIRMED")
    assert timed["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert "BEGIN:VTIMEZONE" in timed_ical and "TZID:Europe/Berlin" in timed_ical
    assert timed.decoded("DTSTART") == DST_START and timed.decoded("DTEND") == DST_END

    day = _vevent(day_ical)
    assert str(day["X-CALSYNC-EXPORT"]) == "session-2"
    assert day["DTSTART"].params.get("VALUE") == "DATE"
    assert (day.decoded("DTSTART"), day.decoded("DTEND")) == (date(2030, 4, 1), date(2030, 4, 3))

    # import skips calsync's own events; without the tag the very same events would block time
    assert _busy(timed_ical) == [] and _busy(day_ical) == []
    utc = datetime(2030, 3, 31, 0, 30, tzinfo=UTC)
    assert _busy(_untagged(timed_ical)) == [(utc, utc + timedelta(hours=1.5), "Yoga")]
    midnight = datetime(2030, 3, 31, 22, tzinfo=UTC)  # 2030-04-01 00:00 CEST
    assert _busy(_untagged(day_ical)) == [(midnight, midnight + timedelta(days=2), "Retreat")]


@pytest.mark.peers
def test_interrupted_create_is_replaced_not_duplicated(export: Export) -> None:
    uid = _uid()
    first = export.written(EventWrite(_timed(uid, "First try")))
    # the crash lost ``first``: the retry knows neither external_id nor etag
    again = export.written(EventWrite(_timed(uid, "Second try")))
    assert again.external_id == first.external_id
    [resource] = export.resources()
    assert (resource.key, resource.etag) == (again.external_id, again.etag)
    assert str(_vevent(resource.ical)["SUMMARY"]) == "Second try"


@pytest.mark.peers
def test_update_with_stale_etag_is_refused(export: Export) -> None:
    uid = _uid()
    first = export.written(EventWrite(_timed(uid, "v1")))
    second = export.written(EventWrite(_timed(uid, "v2"), first.external_id, first.etag))
    assert second.external_id == first.external_id and second.etag != first.etag

    [stale] = export.put(EventWrite(_timed(uid, "v3"), first.external_id, first.etag))
    assert isinstance(stale, StaleEvent)
    [resource] = export.resources()
    assert resource.etag == second.etag
    assert str(_vevent(resource.ical)["SUMMARY"]) == "v2"


@pytest.mark.peers
def test_externally_deleted_event_is_created_again(export: Export) -> None:
    uid = _uid()
    first = export.written(EventWrite(_timed(uid, "Kept")))
    export.delete_behind_our_back(uid)
    assert export.resources() == []
    restored = export.written(EventWrite(_timed(uid, "Kept"), first.external_id))
    assert restored.external_id == first.external_id
    [resource] = export.resources()
    assert (resource.key, resource.etag) == (restored.external_id, restored.etag)


@pytest.mark.peers
def test_delete_events(export: Export) -> None:
    gone, kept = _uid(), _uid()
    results = export.put(EventWrite(_timed(gone)), EventWrite(_all_day(kept)))
    first, second = (r for r in results if isinstance(r, WrittenEvent))
    stale = export.writer.delete_events(
        export.account, export.calendar_id, [EventDelete(second.external_id, '"not-it"')]
    )
    assert len(stale) == 1 and isinstance(stale[0], StaleEvent)
    deletes = [EventDelete(first.external_id, first.etag)]
    assert export.writer.delete_events(export.account, export.calendar_id, deletes) == [None]
    assert [r.key for r in export.resources()] == [second.external_id]
    # deleting again, with or without the old etag, is not an error
    again = [*deletes, EventDelete(first.external_id)]
    assert export.writer.delete_events(export.account, export.calendar_id, again) == [None, None]
    assert [r.key for r in export.resources()] == [second.external_id]


@pytest.mark.peers
def test_uid_taken_by_another_resource_is_the_items_error(export: Export) -> None:
    """Radicale answers 409, Xandikos 412, both with CALDAV:no-uid-conflict: not a stale event
    to retry unconditionally, and nothing is overwritten."""
    uid = _uid()
    password = export.server.users[USER]
    peers.put_event(export.url, USER, password, "theirs.ics", peers.simple_event(uid, "Theirs"))
    [result] = export.put(EventWrite(_timed(uid)))
    assert type(result) is ProviderError and "no-uid-conflict" in str(result)
    [resource] = export.resources()
    assert resource.key.endswith("/theirs.ics") and "SUMMARY:Theirs" in resource.ical


@pytest.mark.peers
def test_find_event(export: Export) -> None:
    uid = _uid()
    assert export.writer.find_event(export.account, export.calendar_id, uid) is None
    written = export.written(EventWrite(_timed(uid)))
    assert export.writer.find_event(export.account, export.calendar_id, uid) == written
    export.delete_behind_our_back(uid)
    assert export.writer.find_event(export.account, export.calendar_id, uid) is None


@pytest.mark.peers
def test_put_into_deleted_calendar_is_calendar_gone(export: Export) -> None:
    uid = _uid()
    written = export.written(EventWrite(_timed(uid)))
    export.writer.delete_calendar(export.account, export.calendar_id)
    for write in [
        EventWrite(_timed(_uid())),  # create
        EventWrite(_timed(uid), written.external_id, written.etag),  # update
        EventWrite(_timed(uid), written.external_id),  # restore
    ]:
        with pytest.raises(CalendarGone):
            export.put(write)


# --- unit: the ETag fallback and error mapping, over httpx.MockTransport ----------------------

BASE = "https://dav.example.com/"
ACCOUNT = AccountRef(
    "u@example.com",
    Credentials("u@example.com", "hunter2-secret"),
    {"calendar_home_url": BASE + "home/"},
)
EVENT_PATH = "/home/work/" + "a" * 32 + ".ics"
Handler = Callable[[httpx.Request], httpx.Response]


def _writer(handler: Handler) -> CalendarWriter:
    writer = CalDavProvider(BASE, transport=httpx.MockTransport(handler)).writer
    assert writer is not None
    return writer


def test_put_without_etag_header_reads_getetag() -> None:
    seen: list[tuple[str, str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.headers.get("If-None-Match")))
        if request.method == "PUT":
            assert request.headers["Content-Type"].startswith("text/calendar")
            assert b"X-CALSYNC-EXPORT:session-1" in request.content
            return httpx.Response(201)
        prop = '<D:prop><D:getetag>"v7"</D:getetag></D:prop>'
        ok = f"<D:propstat>{prop}<D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
        body = f'<D:multistatus xmlns:D="DAV:"><D:response><D:href>{EVENT_PATH}</D:href>{ok}'
        return httpx.Response(207, content=(body + "</D:response></D:multistatus>").encode())

    results = _writer(handler).put_events(ACCOUNT, "work", [EventWrite(_timed("a" * 32))])
    assert results == [WrittenEvent(EVENT_PATH, '"v7"')]
    assert seen == [("PUT", EVENT_PATH, "*"), ("PROPFIND", EVENT_PATH, None)]


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(401), AuthRejected),
        (httpx.Response(500), ProviderUnreachable),
        (httpx.Response(503), ProviderUnreachable),
        (httpx.Response(429, headers={"Retry-After": "30"}), RateLimitedByProvider),
        (httpx.Response(503, headers={"Retry-After": "30"}), RateLimitedByProvider),
    ],
)
def test_put_errors_of_the_account_are_raised(
    response: httpx.Response, error: type[ProviderError]
) -> None:
    writer = _writer(lambda request: response)
    with pytest.raises(error) as info:
        writer.put_events(ACCOUNT, "work", [EventWrite(_timed("a" * 32))])
    assert "hunter2" not in str(info.value)
    if isinstance(info.value, RateLimitedByProvider):
        assert info.value.retry_after == 30


def test_put_timeout_is_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(ProviderUnreachable):
        _writer(handler).put_events(ACCOUNT, "work", [EventWrite(_timed("a" * 32))])


def test_unknown_time_zone_is_written_in_utc() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(201, headers={"ETag": '"e1"'})

    event = ExportEvent(
        uid="b" * 32,
        tag="t",
        title="Somewhere",
        time_zone="Mars/Olympus_Mons",
        start=datetime(2030, 5, 1, 10, tzinfo=BERLIN),
        end=datetime(2030, 5, 1, 11, tzinfo=BERLIN),
    )
    [result] = _writer(handler).put_events(ACCOUNT, "work", [EventWrite(event)])
    assert result == WrittenEvent("/home/work/" + "b" * 32 + ".ics", '"e1"')
    vevent = _vevent(bodies[0].decode())
    assert vevent.decoded("DTSTART") == datetime(2030, 5, 1, 8, tzinfo=UTC)
    assert b"VTIMEZONE" not in bodies[0] and b"TZID" not in bodies[0]


def test_calendar_ids_outside_the_home_are_refused() -> None:
    requests: list[httpx.Request] = []
    writer = _writer(lambda request: requests.append(request) or httpx.Response(204))
    for calendar_id in ["", ".", ".."]:
        with pytest.raises(CalendarGone):
            writer.delete_calendar(ACCOUNT, calendar_id)
    [refused] = writer.delete_events(ACCOUNT, "work", [EventDelete("/home/other/x.ics")])
    assert isinstance(refused, ProviderError)
    assert requests == []


def test_delete_412_of_an_event_already_gone_is_not_an_error() -> None:
    """RFC 9110 lets If-Match fail on a missing resource (Radicale and Xandikos say 404)."""
    present = {"a": False, "b": True}

    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[1].removesuffix(".ics")
        if request.method == "DELETE":
            assert request.headers["If-Match"] == '"old"'
            return httpx.Response(412)
        if request.url.path == "/home/work/" or present[name]:  # PROPFIND
            ok = "<D:propstat><D:prop/><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
            body = f"<D:response><D:href>{request.url.path}</D:href>{ok}</D:response>"
            return httpx.Response(
                207, content=f'<D:multistatus xmlns:D="DAV:">{body}</D:multistatus>'.encode()
            )
        return httpx.Response(404)

    deletes = [EventDelete("/home/work/a.ics", '"old"'), EventDelete("/home/work/b.ics", '"old"')]
    gone, changed = _writer(handler).delete_events(ACCOUNT, "work", deletes)
    assert gone is None and isinstance(changed, StaleEvent)


def test_calendars_calsync_created_never_become_primary() -> None:
    from calsync.providers.base import ExternalCalendar
    from calsync.providers.caldav.adapter import _order_calendars

    def cal(calendar_id: str) -> tuple[ExternalCalendar, str]:
        return ExternalCalendar(calendar_id, calendar_id), f"/home/{calendar_id}"

    created = cal(EXPORT_CALENDAR_PREFIX + "0000")
    ordered = _order_calendars([cal("work"), created, cal("personal")], None)
    assert [c.id for c in ordered if c.is_primary] == ["personal"]
    only = _order_calendars([created], None)
    assert only[0].is_primary  # the account has nothing else


@pytest.mark.peers
def test_create_with_a_key_finds_the_calendar_an_interrupted_create_made(
    dav_server: peers.DavServer,
) -> None:
    provider = CalDavProvider(dav_server.base_url)
    account = provider.verify(Credentials(USER, dav_server.users[USER]))
    assert provider.writer is not None
    key = uuid.uuid4().hex[:16]
    first = provider.writer.create_calendar(account, "Bookings", key=key)
    again = provider.writer.create_calendar(account, "Bookings", key=key)
    assert again.id == first.id == EXPORT_CALENDAR_PREFIX + key
    assert [c.id for c in provider.list_calendars(account)].count(first.id) == 1
    provider.writer.delete_calendar(account, first.id)
