"""The ics adapter against a local feed server (loopback, so ``allow_private=True``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from calsync.providers.base import AccountRef, Credentials
from calsync.providers.ics import IcsFeedProvider
from calsync.providers.ics.feed import FeedRefused, normalise_url

FEED = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{extra}"
    "BEGIN:VEVENT\r\nUID:a@x\r\nDTSTAMP:20270101T000000Z\r\nDTSTART:20270105T100000Z\r\n"
    "DTEND:20270105T110000Z\r\nSUMMARY:A\r\nEND:VEVENT\r\n{events}END:VCALENDAR\r\n"
)


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream_bytes: int = 0


@dataclass
class State:
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)


def _handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.requests.append(dict(self.headers))
            route = state.routes.get(self.path, Route(status=404))
            etag = route.headers.get("ETag")
            if etag and self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(route.status)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if route.stream_bytes:
                self.end_headers()
                self._stream(route.stream_bytes)
                return
            self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        def _stream(self, total: int) -> None:
            chunk = b"X" * 65536
            try:
                for _ in range(total // len(chunk)):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, State]]:
    state = State()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    httpd.shutdown()
    httpd.server_close()


def _feed(events: str = "", extra: str = "") -> bytes:
    return FEED.format(events=events, extra=extra).encode()


def _account(url: str) -> AccountRef:
    return AccountRef(email="feed", credentials=Credentials(username="", password=url))


def test_conditional_get_304_changes_nothing(server: tuple[str, State]) -> None:
    base, state = server
    state.routes["/f.ics"] = Route(body=_feed(), headers={"ETag": '"v1"'})
    provider = IcsFeedProvider(allow_private=True)
    first = provider.read_changes(_account(base + "/f.ics"), "feed", None, {})
    assert first.full and [r.key for r in first.upserted] == ["a@x"]
    again = provider.read_changes(_account(base + "/f.ics"), "feed", first.cursor, {})
    assert state.requests[-1].get("If-None-Match") == '"v1"'
    assert not again.full and again.upserted == [] and again.cursor == first.cursor


def test_etag_change_is_a_full_read(server: tuple[str, State]) -> None:
    base, state = server
    state.routes["/f.ics"] = Route(body=_feed(), headers={"ETag": '"v1"'})
    provider = IcsFeedProvider(allow_private=True)
    first = provider.read_changes(_account(base + "/f.ics"), "feed", None, {})
    more = "BEGIN:VEVENT\r\nUID:b@x\r\nDTSTART:20270106T100000Z\r\nEND:VEVENT\r\n"
    state.routes["/f.ics"] = Route(body=_feed(more), headers={"ETag": '"v2"'})
    second = provider.read_changes(_account(base + "/f.ics"), "feed", first.cursor, {})
    assert second.full and sorted(r.key for r in second.upserted) == ["a@x", "b@x"]
    assert second.cursor != first.cursor


def test_size_cap(server: tuple[str, State]) -> None:
    base, state = server
    state.routes["/big"] = Route(stream_bytes=25 * 1024 * 1024)
    with pytest.raises(FeedRefused, match="20 MB"):
        IcsFeedProvider(allow_private=True).read_changes(_account(base + "/big"), "feed", None, {})


def test_redirect_limit_and_private_target(server: tuple[str, State]) -> None:
    base, state = server
    state.routes["/f.ics"] = Route(body=_feed())
    for i in range(4):
        state.routes[f"/r{i}"] = Route(status=302, headers={"Location": f"/r{i + 1}"})
    state.routes["/r4"] = Route(status=302, headers={"Location": "/f.ics"})
    provider = IcsFeedProvider(allow_private=True)
    state.routes["/ok"] = Route(status=302, headers={"Location": "/f.ics"})
    assert provider.read_changes(_account(base + "/ok"), "feed", None, {}).upserted
    with pytest.raises(FeedRefused, match="redirects"):
        provider.read_changes(_account(base + "/r0"), "feed", None, {})
    with pytest.raises(FeedRefused, match="private"):
        IcsFeedProvider().read_changes(_account(base + "/ok"), "feed", None, {})


def test_html_answer_is_an_error(server: tuple[str, State]) -> None:
    base, state = server
    state.routes["/f.ics"] = Route(body=_feed(), headers={"ETag": '"v1"'})
    provider = IcsFeedProvider(allow_private=True)
    first = provider.read_changes(_account(base + "/f.ics"), "feed", None, {})
    state.routes["/f.ics"] = Route(body=b"<html>maintenance</html>", headers={"ETag": '"v2"'})
    with pytest.raises(FeedRefused, match="iCalendar"):
        provider.read_changes(_account(base + "/f.ics"), "feed", first.cursor, {})
    state.routes["/f.ics"] = Route(body=b"")
    with pytest.raises(FeedRefused):
        provider.read_changes(_account(base + "/f.ics"), "feed", first.cursor, {})


def test_empty_vcalendar_is_an_empty_feed(server: tuple[str, State]) -> None:
    base, state = server
    state.routes["/e"] = Route(body=b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n")
    changes = IcsFeedProvider(allow_private=True).read_changes(_account(base + "/e"), "f", None, {})
    assert changes.full and changes.upserted == []


def test_x_wr_timezone_applies_to_floating_times(server: tuple[str, State]) -> None:
    base, state = server
    floating = "BEGIN:VEVENT\r\nUID:f@x\r\nDTSTART:20270107T090000\r\nEND:VEVENT\r\n"
    state.routes["/z"] = Route(body=_feed(floating, "X-WR-TIMEZONE:Europe/Berlin\r\n"))
    changes = IcsFeedProvider(allow_private=True).read_changes(_account(base + "/z"), "f", None, {})
    by_key = {r.key: r.ical for r in changes.upserted}
    assert "DTSTART;TZID=Europe/Berlin:20270107T090000" in by_key["f@x"]
    assert "DTSTART:20270105T100000Z" in by_key["a@x"]


def test_webcal_is_https() -> None:
    assert (
        normalise_url("webcal://cal.example.org/a.ics?t=1") == "https://cal.example.org/a.ics?t=1"
    )
    with pytest.raises(FeedRefused):
        normalise_url("ftp://cal.example.org/a.ics")


def test_duplicate_uids_kept_and_overrides_merged(server: tuple[str, State]) -> None:
    base, state = server
    dup = (
        "BEGIN:VEVENT\r\nUID:a@x\r\nDTSTART:20270108T100000Z\r\nSUMMARY:A2\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:a@x\r\nRECURRENCE-ID:20270105T100000Z\r\n"
        "DTSTART:20270105T120000Z\r\nEND:VEVENT\r\n"
    )
    state.routes["/d"] = Route(body=_feed(dup))
    changes = IcsFeedProvider(allow_private=True).read_changes(_account(base + "/d"), "f", None, {})
    by_key = {r.key: r.ical for r in changes.upserted}
    assert sorted(by_key) == ["a@x", "a@x#1"]
    assert "RECURRENCE-ID" in by_key["a@x"] and "A2" in by_key["a@x#1"]


def test_verify_shows_only_the_host(server: tuple[str, State]) -> None:
    base, state = server
    state.routes["/f.ics?token=s3cret"] = Route(body=_feed())
    account = IcsFeedProvider(allow_private=True).verify(
        Credentials(username="", password=base + "/f.ics?token=s3cret")
    )
    assert account.email == "feed at 127.0.0.1" and "s3cret" not in account.email
