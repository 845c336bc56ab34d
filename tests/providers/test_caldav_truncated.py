"""A CalDAV server that cuts a listing short (507 on the collection, RFC 4918 / RFC 6578):
the read fails, so the sync deletes nothing and keeps its cursor (red-team finding 6: 2 items
plus a 507 made calsync store 2, delete the rest, report nothing and save the cursor)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from calsync.providers.base import AccountRef, Credentials, CursorExpired, ProviderError
from calsync.providers.caldav.adapter import CalDavProvider

BASE = "https://dav.example.org/"
HOME = "/home/ada/"
CAL = "/home/ada/work/"


def _event(uid: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20270101T000000Z\r\nDTSTART:20270105T100000Z\r\n"
        "DTEND:20270105T110000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def _item(href: str, uid: str) -> str:
    return (
        f"<D:response><D:href>{href}</D:href><D:propstat><D:prop>"
        f'<D:getetag>"{uid}"</D:getetag><C:calendar-data>{_event(uid)}</C:calendar-data>'
        "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
    )


CUT_SHORT = (
    f"<D:response><D:href>{CAL}</D:href><D:status>HTTP/1.1 507 Insufficient Storage</D:status>"
    "<D:error><D:number-of-matches-within-limits/></D:error></D:response>"
)


def _multistatus(*parts: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/">'
        + "".join(parts)
        + "</D:multistatus>"
    ).encode()


def _server(*, cut_short: bool, sync_token: bool) -> Callable[[httpx.Request], httpx.Response]:
    token = "<D:sync-token>http://t/1</D:sync-token>" if sync_token else ""
    collection = _multistatus(
        f"<D:response><D:href>{CAL}</D:href><D:propstat><D:prop><D:resourcetype>"
        "<D:collection/><C:calendar/></D:resourcetype>"
        f"{token}<CS:getctag>ctag-2</CS:getctag></D:prop>"
        "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
    )

    def handle(request: httpx.Request) -> httpx.Response:
        body = request.content.decode()
        if request.method == "PROPFIND" and request.headers.get("Depth") == "0":
            return httpx.Response(207, content=collection)
        if request.method == "PROPFIND":  # the ctag path's listing
            listing = [
                f"<D:response><D:href>{CAL}{n}.ics</D:href><D:propstat><D:prop>"
                f'<D:resourcetype/><D:getetag>"{n}"</D:getetag></D:prop>'
                "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
                for n in ("a", "b")
            ]
            return httpx.Response(207, content=_multistatus(*listing, *([CUT_SHORT] * cut_short)))
        if "sync-collection" in body:  # the old token: refused, as in the finding
            return httpx.Response(
                403,
                content=b'<?xml version="1.0"?><D:error xmlns:D="DAV:"><D:valid-sync-token/>'
                b"</D:error>",
            )
        if "calendar-query" in body:
            parts = [_item(f"{CAL}a.ics", "a"), _item(f"{CAL}b.ics", "b")]
            return httpx.Response(207, content=_multistatus(*parts, *([CUT_SHORT] * cut_short)))
        if "calendar-multiget" in body:
            return httpx.Response(
                207, content=_multistatus(_item(f"{CAL}a.ics", "a"), _item(f"{CAL}b.ics", "b"))
            )
        return httpx.Response(400)

    return handle


def _adapter(handler: Callable[[httpx.Request], httpx.Response]) -> CalDavProvider:
    return CalDavProvider(BASE, transport=httpx.MockTransport(handler))


ACCOUNT = AccountRef(
    email="ada@example.org",
    credentials=Credentials("ada", "pw"),
    state={"calendar_home_url": f"https://dav.example.org{HOME}"},
)


@pytest.mark.parametrize("sync_token", [True, False])
def test_a_full_read_cut_short_fails_and_changes_nothing(sync_token: bool) -> None:
    adapter = _adapter(_server(cut_short=True, sync_token=sync_token))
    with pytest.raises(ProviderError) as raised:
        adapter.read_changes(ACCOUNT, "work", None, {})
    assert "cut its calendar-query listing short" in str(raised.value)
    assert "Error" not in str(raised.value)  # plain words, no exception names


def test_the_fallback_after_an_expired_token_is_refused_when_cut_short() -> None:
    """The finding's exact path: sync-collection answers 403 valid-sync-token, the caller
    falls back to a full read (``CursorExpired``), and that full read comes back truncated."""
    adapter = _adapter(_server(cut_short=True, sync_token=True))
    with pytest.raises(CursorExpired):
        adapter.read_changes(ACCOUNT, "work", "sync:http://t/0", {"/x.ics": '"x"'})
    with pytest.raises(ProviderError):
        adapter.read_changes(ACCOUNT, "work", None, {"/x.ics": '"x"'})


def test_a_ctag_listing_cut_short_deletes_nothing() -> None:
    adapter = _adapter(_server(cut_short=True, sync_token=False))
    known = {f"{CAL}{n}.ics": f'"{n}"' for n in ("a", "b", "c", "d", "e")}
    with pytest.raises(ProviderError):
        adapter.read_changes(ACCOUNT, "work", "ctag:ctag-1", known)


def test_a_whole_listing_is_read_as_before() -> None:
    """The control: the same server without the 507 gives its two events (and a ctag
    listing that lacks c, d, e deletes those)."""
    whole = _adapter(_server(cut_short=False, sync_token=False))
    changes = whole.read_changes(ACCOUNT, "work", None, {})
    assert changes.full and len(changes.upserted) == 2
    known = {f"{CAL}{n}.ics": f'"{n}"' for n in ("a", "b", "c", "d", "e")}
    listed = whole.read_changes(ACCOUNT, "work", "ctag:ctag-1", known)
    assert sorted(listed.deleted) == [f"{CAL}{n}.ics" for n in ("c", "d", "e")]


@pytest.mark.parametrize("bad", ["\x0b", "&#11;", "&#x1F;"])
def test_one_forbidden_character_costs_only_itself(bad: str) -> None:
    """Red-team finding 11: a single U+000B in one event made the whole REPORT "not
    well-formed" and 0 of 4 good events were imported. Every event is read now."""
    good = [_item(f"{CAL}{n}.ics", n) for n in ("a", "b", "c", "d")]
    broken = _item(f"{CAL}e.ics", "e").replace("SUMMARY:x", f"SUMMARY:tab{bad}bed")

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "PROPFIND":
            return _server(cut_short=False, sync_token=False)(request)
        return httpx.Response(207, content=_multistatus(*good, broken))

    changes = _adapter(handle).read_changes(ACCOUNT, "work", None, {})
    assert sorted(r.key for r in changes.upserted) == [f"{CAL}{n}.ics" for n in "abcde"]
    [fixed] = [r for r in changes.upserted if r.key.endswith("e.ics")]
    assert "SUMMARY:tabbed" in fixed.ical


def test_xml_broken_otherwise_still_fails() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "PROPFIND":
            return _server(cut_short=False, sync_token=False)(request)
        return httpx.Response(207, content=_multistatus(_item(f"{CAL}a.ics", "a"))[:-20])

    with pytest.raises(ProviderError):
        _adapter(handle).read_changes(ACCOUNT, "work", None, {})
