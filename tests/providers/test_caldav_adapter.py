"""CalDavProvider against real Radicale and Xandikos servers, plus MockTransport unit tests."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarGone,
    Credentials,
    CursorExpired,
    ProviderError,
    ProviderUnreachable,
    RateLimitedByProvider,
)
from calsync.providers.caldav import CalDavProvider
from tests.peers import dav_servers as peers
from tests.peers.fixtures import DAV_USERS, unique_name


class CountingTransport(httpx.BaseTransport):
    """Counts requests (method, path) and delegates to a real ``httpx.HTTPTransport``."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def counting() -> Iterator[CountingTransport]:
    transport = CountingTransport()
    yield transport
    transport.close()


def _account(
    server: peers.DavServer, user: str, transport: httpx.BaseTransport | None = None
) -> tuple[CalDavProvider, AccountRef]:
    provider = CalDavProvider(server.base_url, transport=transport)
    return provider, provider.verify(Credentials(user, server.users[user]))


def _calendar(
    server: peers.DavServer, user: str = "bob", components: tuple[str, ...] = ("VEVENT",)
) -> tuple[str, str]:
    name = unique_name()
    password = server.users[user]
    return name, peers.make_calendar(server, user, password, name, name, components=components)


def _put(server: peers.DavServer, url: str, filename: str, summary: str, user: str = "bob") -> str:
    ical = peers.simple_event(filename.removesuffix(".ics"), summary)
    return peers.put_event(url, user, server.users[user], filename, ical)


# --- integration: discovery ----------------------------------------------------------------


@pytest.mark.peers
def test_verify_discovers_principal_and_home(
    dav_server: peers.DavServer, counting: CountingTransport
) -> None:
    _, account = _account(dav_server, "alice", counting)
    assert account.email == "alice"
    assert account.state["principal_url"] == f"{dav_server.base_url}alice/"
    home = {"radicale": "alice/", "xandikos": "alice/calendars/"}[dav_server.kind]
    assert account.state["calendar_home_url"] == dav_server.base_url + home
    assert counting.requests[0] == ("PROPFIND", "/.well-known/caldav")  # RFC 6764 first
    if dav_server.kind == "xandikos":  # RFC 6638 default calendar, read from the inbox
        assert account.state["schedule_default_calendar_url"].endswith("/alice/calendars/calendar")
    else:
        assert "schedule_default_calendar_url" not in account.state


@pytest.mark.peers
@pytest.mark.parametrize("user", ["alice", "nobody"])
def test_verify_wrong_password_is_auth_rejected(dav_server: peers.DavServer, user: str) -> None:
    with pytest.raises(AuthRejected) as info:
        CalDavProvider(dav_server.base_url).verify(Credentials(user, "s3cret-wrong"))
    assert "s3cret-wrong" not in str(info.value)


def test_verify_unreachable_port_is_provider_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = CalDavProvider(f"http://127.0.0.1:{port}/", timeout=2.0)
    with pytest.raises(ProviderUnreachable):
        provider.verify(Credentials("alice", "pw"))


# --- integration: calendars -----------------------------------------------------------------


@pytest.mark.peers
def test_list_calendars(dav_server: peers.DavServer) -> None:
    pw = DAV_USERS["carol"]
    peers.make_calendar(dav_server, "carol", pw, "b-cal", "alpha")
    peers.make_calendar(dav_server, "carol", pw, "a-cal", "Zulu")
    peers.make_calendar(dav_server, "carol", pw, "tasks", "Tasks", components=["VTODO"])
    provider, account = _account(dav_server, "carol")
    calendars = provider.list_calendars(account)
    got = [(c.id, c.name, c.is_primary, c.read_only) for c in calendars]
    if dav_server.kind == "radicale":  # no default calendar: first id is primary
        assert got == [("a-cal", "Zulu", True, False), ("b-cal", "alpha", False, False)]
    else:  # xandikos' schedule-default-calendar-URL wins, the rest by name
        assert got == [
            ("calendar", "calendar", True, False),
            ("b-cal", "alpha", False, False),
            ("a-cal", "Zulu", False, False),
        ]


@pytest.mark.peers
def test_calendar_id_with_space_round_trips(dav_server: peers.DavServer) -> None:
    pw = DAV_USERS["dave"]
    url = peers.make_calendar(dav_server, "dave", pw, "team cal", "Team")
    peers.put_event(url, "dave", pw, "x.ics", peers.simple_event("x", "X"))
    provider, account = _account(dav_server, "dave")
    assert "team cal" in [c.id for c in provider.list_calendars(account)]
    changes = provider.read_changes(account, "team cal", None, {})
    assert [r.key.rsplit("/", 1)[1] for r in changes.upserted] == ["x.ics"]


# --- integration: reading ---------------------------------------------------------------------


@pytest.mark.peers
def test_full_read_returns_events_only(dav_server: peers.DavServer) -> None:
    name, url = _calendar(dav_server, components=("VEVENT", "VTODO"))
    etag_a = _put(dav_server, url, "a.ics", "Alpha")
    etag_b = _put(dav_server, url, "b.ics", "Beta")
    todo = peers.simple_todo("t1", "Todo")
    peers.put_event(url, "bob", DAV_USERS["bob"], "t1.ics", todo)
    provider, account = _account(dav_server, "bob")
    changes = provider.read_changes(account, name, None, {})
    assert changes.full and changes.deleted == []
    path = httpx.URL(url).path
    assert [(r.key, r.etag) for r in changes.upserted] == [
        (f"{path}a.ics", etag_a),
        (f"{path}b.ics", etag_b),
    ]
    assert "UID:a" in changes.upserted[0].ical and "SUMMARY:Beta" in changes.upserted[1].ical
    assert changes.cursor is not None and changes.cursor.startswith("sync:")


@pytest.mark.peers
@pytest.mark.parametrize("mode", ["sync", "ctag"])
def test_incremental_add_modify_delete(dav_server: peers.DavServer, mode: str) -> None:
    name, url = _calendar(dav_server)
    _put(dav_server, url, "a.ics", "A")
    _put(dav_server, url, "b.ics", "B")
    provider, account = _account(dav_server, "bob")
    first = provider.read_changes(account, name, None, {})
    known = {r.key: r.etag for r in first.upserted}
    cursor = first.cursor if mode == "sync" else "ctag:stale"
    etag_a2 = _put(dav_server, url, "a.ics", "A changed")
    etag_c = _put(dav_server, url, "c.ics", "C")
    peers.delete_event(url, "bob", DAV_USERS["bob"], "b.ics")
    changes = provider.read_changes(account, name, cursor, known)
    path = httpx.URL(url).path
    assert not changes.full
    assert [(r.key, r.etag) for r in changes.upserted] == [
        (f"{path}a.ics", etag_a2),
        (f"{path}c.ics", etag_c),
    ]
    assert "SUMMARY:A changed" in changes.upserted[0].ical
    assert changes.deleted == [f"{path}b.ics"]
    assert changes.cursor is not None and changes.cursor.startswith(f"{mode}:")
    assert changes.cursor != cursor
    known = {f"{path}a.ics": etag_a2, f"{path}c.ics": etag_c}
    again = provider.read_changes(account, name, changes.cursor, known)
    assert (again.upserted, again.deleted, again.cursor) == ([], [], changes.cursor)


@pytest.mark.peers
@pytest.mark.parametrize("mode", ["sync", "ctag"])
def test_unchanged_calendar_costs_one_request(
    dav_server: peers.DavServer, counting: CountingTransport, mode: str
) -> None:
    name, url = _calendar(dav_server)
    _put(dav_server, url, "a.ics", "A")
    provider, account = _account(dav_server, "bob", counting)
    first = provider.read_changes(account, name, None, {})
    known = {r.key: r.etag for r in first.upserted}
    cursor = (
        first.cursor
        if mode == "sync"
        else provider.read_changes(account, name, "ctag:stale", known).cursor
    )
    assert cursor is not None
    counting.requests.clear()
    changes = provider.read_changes(account, name, cursor, known)
    assert (changes.upserted, changes.deleted, changes.cursor) == ([], [], cursor)
    expected = "REPORT" if mode == "sync" else "PROPFIND"
    assert counting.requests == [(expected, httpx.URL(url).path)]


@pytest.mark.peers
def test_known_etag_is_not_downloaded_again(
    dav_server: peers.DavServer, counting: CountingTransport
) -> None:
    name, url = _calendar(dav_server)
    _put(dav_server, url, "a.ics", "A")
    provider, account = _account(dav_server, "bob", counting)
    first = provider.read_changes(account, name, None, {})
    etag = _put(dav_server, url, "a.ics", "A2")  # the store already holds this version
    counting.requests.clear()
    changes = provider.read_changes(account, name, first.cursor, {first.upserted[0].key: etag})
    assert changes.upserted == [] and changes.deleted == []
    assert len(counting.requests) == 1  # no calendar-multiget


@pytest.mark.peers
@pytest.mark.parametrize("cursor", ["sync:garbage", "sync:http://radicale.org/ns/sync/00", "zz"])
def test_bad_cursor_is_cursor_expired(dav_server: peers.DavServer, cursor: str) -> None:
    name, _ = _calendar(dav_server)
    provider, account = _account(dav_server, "bob")
    with pytest.raises(CursorExpired):
        provider.read_changes(account, name, cursor, {})


@pytest.mark.peers
@pytest.mark.parametrize("cursor", [None, "sync", "ctag:stale"])
def test_deleted_calendar_is_calendar_gone(dav_server: peers.DavServer, cursor: str | None) -> None:
    name, url = _calendar(dav_server)
    _put(dav_server, url, "a.ics", "A")
    provider, account = _account(dav_server, "bob")
    first = provider.read_changes(account, name, None, {})
    peers.delete_collection(url, "bob", DAV_USERS["bob"])
    with pytest.raises(CalendarGone):
        provider.read_changes(account, name, first.cursor if cursor == "sync" else cursor, {})
    with pytest.raises(CalendarGone):
        provider.read_changes(account, unique_name("never"), None, {})


@pytest.mark.peers
def test_someone_elses_calendar_is_calendar_gone(dav_server: peers.DavServer) -> None:
    name, _ = _calendar(dav_server, user="alice")
    provider, account = _account(dav_server, "bob")
    alice_home = account.state["calendar_home_url"].replace("/bob/", "/alice/")
    foreign = AccountRef(
        "bob", account.credentials, {**account.state, "calendar_home_url": alice_home}
    )
    with pytest.raises(CalendarGone):
        provider.read_changes(foreign, name, None, {})


# --- unit: error mapping, the ctag path and paging, over httpx.MockTransport ----------------

BASE = "https://dav.example.com/"
SECRET = Credentials("u@example.com", "hunter2-secret")
ACCOUNT = AccountRef("u@example.com", SECRET, {"calendar_home_url": BASE + "home/"})
COLLECTION = "/home/work/"
CAL_NS = 'xmlns:C="urn:ietf:params:xml:ns:caldav"'
Handler = Callable[[httpx.Request], httpx.Response]


def _mock(handler: Handler) -> CalDavProvider:
    return CalDavProvider(BASE, transport=httpx.MockTransport(handler))


def _ms(*responses: str, token: str | None = None) -> httpx.Response:
    extra = f"<D:sync-token>{token}</D:sync-token>" if token else ""
    body = f'<D:multistatus xmlns:D="DAV:">{"".join(responses)}{extra}</D:multistatus>'
    return httpx.Response(207, content=body.encode())


def _resp(href: str, props: str = "", status: str = "") -> str:
    """A <D:response>: with a response-level ``status``, else one 200 propstat of ``props``."""
    if status:
        inner = f"<D:status>HTTP/1.1 {status}</D:status>"
    else:
        ok = "<D:status>HTTP/1.1 200 OK</D:status>"
        inner = f"<D:propstat><D:prop>{props}</D:prop>{ok}</D:propstat>"
    return f"<D:response><D:href>{href}</D:href>{inner}</D:response>"


def _read_error(
    provider: CalDavProvider, exc: type[ProviderError], cursor: str | None = None
) -> ProviderError:
    with pytest.raises(exc) as info:
        provider.read_changes(ACCOUNT, "work", cursor, {})
    assert "hunter2" not in str(info.value) and "Authorization" not in str(info.value)
    return info.value


def _verify_error(handler: Handler, exc: type[ProviderError]) -> ProviderError:
    with pytest.raises(exc) as info:
        _mock(handler).verify(SECRET)
    assert "hunter2" not in str(info.value) and "Authorization" not in str(info.value)
    return info.value


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (401, AuthRejected),
        (403, CalendarGone),
        (404, CalendarGone),
        (410, CalendarGone),
        (500, ProviderUnreachable),
        (502, ProviderUnreachable),
        (503, ProviderUnreachable),
    ],
)
def test_status_mapping(status: int, exc: type[ProviderError]) -> None:
    error = _read_error(_mock(lambda r: httpx.Response(status)), exc)
    assert str(status) in str(error) and BASE + "home/work/" in str(error)


def test_rate_limits_carry_retry_after() -> None:
    limited = _mock(lambda r: httpx.Response(429, headers={"Retry-After": "120"}))
    error = _read_error(limited, RateLimitedByProvider)
    assert isinstance(error, RateLimitedByProvider) and error.retry_after == 120
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    busy = _mock(lambda r: httpx.Response(503, headers={"Retry-After": when}))
    error = _read_error(busy, RateLimitedByProvider)
    assert isinstance(error, RateLimitedByProvider) and 50 < (error.retry_after or 0) <= 60
    error = _read_error(_mock(lambda r: httpx.Response(429)), RateLimitedByProvider)
    assert isinstance(error, RateLimitedByProvider) and error.retry_after is None


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError]
)
def test_network_errors_are_unreachable(error: type[httpx.TransportError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("boom", request=request)

    _read_error(_mock(handler), ProviderUnreachable)
    _verify_error(handler, ProviderUnreachable)


def test_verify_errors() -> None:
    _verify_error(lambda r: httpx.Response(401), AuthRejected)
    html = _verify_error(lambda r: httpx.Response(200, text="<html/>"), ProviderUnreachable)
    assert "not a CalDAV server" in str(html)
    assert "not a CalDAV server" in str(
        _verify_error(lambda r: httpx.Response(405), ProviderUnreachable)
    )

    def no_home(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/p/":
            return _ms(_resp("/p/", "<D:displayname>p</D:displayname>"))
        principal = "<D:current-user-principal><D:href>/p/</D:href></D:current-user-principal>"
        return _ms(_resp(request.url.path, principal))

    assert "calendar-home-set" in str(_verify_error(no_home, ProviderUnreachable))


def test_well_known_redirect_to_foreign_host_is_not_followed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == "/.well-known/caldav":
            return httpx.Response(301, headers={"Location": "https://evil.example.net/dav/"})
        if request.url.path == "/":
            href = "<D:href>/p/</D:href>"
            return _ms(_resp("/", f"<D:current-user-principal>{href}</D:current-user-principal>"))
        home = f"<C:calendar-home-set {CAL_NS}><D:href>/home/</D:href></C:calendar-home-set>"
        return _ms(_resp("/p/", home))

    account = _mock(handler).verify(SECRET)
    assert account.state == {"principal_url": BASE + "p/", "calendar_home_url": BASE + "home/"}
    assert seen == [BASE + ".well-known/caldav", BASE, BASE + "p/"]


class FakeCtagServer:
    """A calendar collection without sync-collection: only getctag and etags."""

    def __init__(self) -> None:
        self.ctag = "1"
        self.items = {"a.ics": "ea1", "b.ics": "eb1"}
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.content.decode()
        match = re.search(r"<\w+:(propfind|calendar-query|calendar-multiget)", body)
        assert match, body
        kind, depth = match.group(1), request.headers["Depth"]
        self.requests.append(f"{request.method} {kind} {depth}")
        ctag = f'<CS:getctag xmlns:CS="http://calendarserver.org/ns/">{self.ctag}</CS:getctag>'
        if kind == "propfind" and depth == "0":
            calendar = f"<D:resourcetype><D:collection/><C:calendar {CAL_NS}/></D:resourcetype>"
            return _ms(_resp(COLLECTION, ctag + calendar))
        wanted = re.findall(r"<D:href>([^<]+)</D:href>", body)
        out = [_resp(COLLECTION, ctag)] if kind == "propfind" else []
        for name, etag in self.items.items():
            if kind == "calendar-multiget" and COLLECTION + name not in wanted:
                continue
            ical = f"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:{name}\nEND:VEVENT\nEND:VCALENDAR\n"
            data = (
                "" if kind == "propfind" else f"<C:calendar-data {CAL_NS}>{ical}</C:calendar-data>"
            )
            out.append(_resp(COLLECTION + name, f"<D:getetag>{etag}</D:getetag>{data}"))
        return _ms(*out)


def test_ctag_fallback_without_sync_collection() -> None:
    server = FakeCtagServer()
    provider = _mock(server)
    full = provider.read_changes(ACCOUNT, "work", None, {})
    assert full.cursor == "ctag:1"
    assert [r.key for r in full.upserted] == ["/home/work/a.ics", "/home/work/b.ics"]
    known = {r.key: r.etag for r in full.upserted}
    server.requests.clear()
    unchanged = provider.read_changes(ACCOUNT, "work", full.cursor, known)
    assert (unchanged.upserted, unchanged.deleted, unchanged.cursor) == ([], [], "ctag:1")
    assert server.requests == ["PROPFIND propfind 0"]
    server.ctag, server.items = "2", {"a.ics": "ea2", "b.ics": "eb1", "c.ics": "ec1"}
    del server.items["b.ics"]
    server.requests.clear()
    changed = provider.read_changes(ACCOUNT, "work", full.cursor, known)
    got = [(r.key, r.etag) for r in changed.upserted]
    assert got == [("/home/work/a.ics", "ea2"), ("/home/work/c.ics", "ec1")]
    assert changed.deleted == ["/home/work/b.ics"] and changed.cursor == "ctag:2"
    multiget = "REPORT calendar-multiget 1"
    assert server.requests == ["PROPFIND propfind 0", "PROPFIND propfind 1", multiget]


def test_sync_collection_follows_truncated_pages_and_detects_invalid_tokens() -> None:
    tokens: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        token = re.search(r"<D:sync-token>([^<]*)</D:sync-token>", request.content.decode())
        assert token
        tokens.append(token.group(1))
        if tokens[-1] == "t1":  # first page: one deletion, and more to come (RFC 6578 3.6)
            gone = _resp(COLLECTION + "x.ics", status="404 Not Found")
            return _ms(gone, _resp(COLLECTION, status="507 Insufficient Storage"), token="t2")
        if tokens[-1] == "t2":
            return _ms(_resp(COLLECTION + "y.ics", status="404 Not Found"), token="t3")
        invalid = b'<D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>'
        return httpx.Response(403, content=invalid)

    changes = _mock(handler).read_changes(ACCOUNT, "work", "sync:t1", {})
    assert changes.deleted == ["/home/work/x.ics", "/home/work/y.ics"]
    assert changes.cursor == "sync:t3" and tokens == ["t1", "t2"]
    _read_error(_mock(handler), CursorExpired, cursor="sync:other")
    _read_error(_mock(handler), CursorExpired, cursor="not-a-cursor")
