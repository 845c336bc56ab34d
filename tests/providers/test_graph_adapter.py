"""GraphCalendarProvider against the Microsoft Graph fake (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from icalendar import Calendar

from calsync.ical.expand import BusyInstance, expand_resource
from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarChanges,
    CalendarGone,
    Credentials,
    CursorExpired,
    EventResource,
    ProviderUnreachable,
    RateLimitedByProvider,
    UnsupportedAccount,
)
from calsync.providers.microsoft import CURSOR_PREFIX, EXPORT_PROPERTY_ID, GraphCalendarProvider
from tests.peers.graph_fake import EXPORT_PROPERTY_ID as FAKE_EXPORT_PROPERTY_ID
from tests.peers.graph_fake import GraphFake, start_graph_fake

ADA = "ada@example.com"
TOKEN = "ada-access-token-0123456789"
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def fake() -> Iterator[GraphFake]:
    with start_graph_fake() as server:
        server.add_account(ADA, token=TOKEN)
        yield server


@pytest.fixture
def account() -> AccountRef:
    return AccountRef(email=ADA, access_token=TOKEN)


def _provider(fake: GraphFake, **kwargs: object) -> GraphCalendarProvider:
    return GraphCalendarProvider(fake.api_url, **kwargs)  # type: ignore[arg-type]


def _soon(hours: float = 24) -> datetime:
    """A whole-minute UTC instant ``hours`` from now (inside the default window)."""
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(second=0, microsecond=0)


def _busy(resources: list[EventResource]) -> list[BusyInstance]:
    now = datetime.now(UTC)
    out: list[BusyInstance] = []
    for resource in resources:
        out += expand_resource(
            resource.ical,
            window_start=now - timedelta(days=100),
            window_end=now + timedelta(days=410),
            owner_emails=frozenset({ADA}),
            local_tz=ZoneInfo("UTC"),
        )
    return sorted(out, key=lambda i: (i.start, i.key))


def _delta_requests(fake: GraphFake, since: int = 0) -> list[str]:
    return [r.query for r in fake.requests[since:] if r.path.lower().endswith("/delta")]


# --- calendars ---------------------------------------------------------------------------------


def test_list_calendars_default_first_then_by_name(fake: GraphFake, account: AccountRef) -> None:
    fake.default_page_size = 2  # three pages of calendars: nextLink is followed
    fake.add_calendar(ADA, "zeta")
    fake.add_calendar(ADA, "Alpha", can_edit=False)
    fake.add_calendar(ADA, "beta")
    fake.add_calendar(ADA, "Birthdays", can_edit=False)
    calendars = _provider(fake).list_calendars(account)
    assert [c.name for c in calendars] == ["Calendar", "Alpha", "beta", "Birthdays", "zeta"]
    assert [c.is_primary for c in calendars] == [True, False, False, False, False]
    assert [c.read_only for c in calendars] == [False, True, False, True, False]
    assert calendars[0].id == fake.default_calendar(ADA).id
    listing = [r for r in fake.requests if r.path.endswith("/me/calendars")]
    assert len(listing) == 3
    assert all(r.token == TOKEN for r in fake.requests)


def test_list_calendars_of_a_mailbox_without_rest_access(account: AccountRef) -> None:
    with start_graph_fake() as fake:
        fake.add_account(ADA, token=TOKEN, mailbox_enabled=False)
        with pytest.raises(UnsupportedAccount, match="MailboxNotEnabledForRESTAPI"):
            _provider(fake).list_calendars(account)


@pytest.mark.parametrize(
    ("status", "code"), [(403, "ErrorAccessDenied"), (404, "ResourceNotFound")]
)
def test_list_calendars_unusable_mailbox(
    fake: GraphFake, account: AccountRef, status: int, code: str
) -> None:
    fake.fail_next(status, code=code)
    with pytest.raises(UnsupportedAccount):
        _provider(fake).list_calendars(account)


def test_verify_is_refused_and_a_token_is_required(fake: GraphFake) -> None:
    provider = _provider(fake)
    with pytest.raises(UnsupportedAccount, match="OAuth"):
        provider.verify(Credentials(ADA, "password"))
    with pytest.raises(AuthRejected):
        provider.list_calendars(AccountRef(email=ADA))
    with pytest.raises(AuthRejected):
        provider.read_changes(AccountRef(email=ADA), "x", None, {})
    assert fake.requests == []


# --- full reads --------------------------------------------------------------------------------


def test_full_read_follows_pages(fake: GraphFake, account: AccountRef) -> None:
    calendar = fake.default_calendar(ADA)
    ids = [
        fake.put_event(ADA, calendar.id, subject=f"e{n}", start=_soon(n), end=_soon(n + 1))["id"]
        for n in range(1, 6)
    ]
    changes = _provider(fake, page_size=2).read_changes(account, calendar.id, None, {})
    assert changes.full and changes.deleted == []
    assert sorted(r.key for r in changes.upserted) == sorted(ids)
    assert changes.cursor is not None and changes.cursor.startswith(CURSOR_PREFIX)
    delta = [r for r in fake.requests if r.path.endswith("/delta")]
    assert len(delta) == 3  # 2 + 2 + 1
    assert "startDateTime" in delta[0].params and "endDateTime" in delta[0].params
    assert "$skiptoken" in delta[1].params and "$skiptoken" in delta[2].params
    for request in fake.requests:
        assert 'outlook.timezone="UTC"' in request.prefer
    assert all("odata.maxpagesize=2" in r.prefer for r in delta)
    assert not any("$expand" in r.params for r in delta)  # Graph refuses it on delta
    window = delta[0].params
    start = datetime.fromisoformat(window["startDateTime"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(window["endDateTime"].replace("Z", "+00:00"))
    assert abs((end - start) - timedelta(days=490)) < timedelta(seconds=2)
    assert [i.title for i in _busy(changes.upserted)] == ["e1", "e2", "e3", "e4", "e5"]


def test_full_read_builds_icalendar_for_each_kind(fake: GraphFake, account: AccountRef) -> None:
    calendar = fake.default_calendar(ADA)
    base = _soon(48)
    day = (base + timedelta(days=3)).date()

    def put(subject: str, hours: int, **fields: object) -> str:
        start = (base + timedelta(hours=hours)).astimezone(BERLIN)  # stored in Berlin time
        end = start + timedelta(minutes=30)
        event = fake.put_event(ADA, calendar.id, subject=subject, start=start, end=end, **fields)
        return str(event["id"])

    timed = put("timed", 0)
    put("free", 1, showAs="free")
    put("elsewhere", 2, showAs="workingElsewhere")
    tentative = put("tentative", 3, showAs="tentative")
    put("declined", 4, responseStatus={"response": "declined", "time": "2024-01-01T00:00:00Z"})
    put("cancelled", 5, isCancelled=True)
    put("exported", 6, export_tag="session-42")
    oof = put("oof", 7, showAs="oof", responseStatus={"response": "accepted"})
    all_day = fake.put_event(
        ADA, calendar.id, subject="holiday", start=day, end=day + timedelta(days=2)
    )["id"]

    changes = _provider(fake, page_size=3).read_changes(account, calendar.id, None, {})
    by_key = {r.key: r for r in changes.upserted}
    assert len(by_key) == 9
    for resource in changes.upserted:
        assert resource.ical.count("BEGIN:VEVENT") == 1
        assert resource.etag.startswith('W/"ck')
    assert "DTSTART:" + base.strftime("%Y%m%dT%H%M%SZ") in by_key[timed].ical
    assert "DTSTART;VALUE=DATE:" + day.strftime("%Y%m%d") in by_key[all_day].ical
    assert "STATUS:TENTATIVE" in by_key[tentative].ical
    assert "PARTSTAT=ACCEPTED:mailto:ada@example.com" in by_key[oof].ical
    exported = next(r for r in changes.upserted if "SUMMARY:exported" in r.ical)
    assert "X-CALSYNC-EXPORT:session-42" in exported.ical

    busy = {i.title: i for i in _busy(changes.upserted)}
    assert sorted(busy) == ["holiday", "oof", "tentative", "timed"]
    assert busy["timed"].start == base and busy["timed"].end == base + timedelta(minutes=30)
    assert busy["holiday"].all_day
    assert (busy["holiday"].start_date, busy["holiday"].end_date) == (day, day + timedelta(2))
    scans = [r for r in fake.requests if r.path.endswith("/calendarView")]
    assert len(scans) == 1  # the export marker: one calendarView over the events' span
    assert scans[0].params["$select"] == "id"
    assert EXPORT_PROPERTY_ID in scans[0].params["$expand"]


def test_export_property_id_matches_the_fake() -> None:
    assert EXPORT_PROPERTY_ID == FAKE_EXPORT_PROPERTY_ID


def test_weekly_series_with_a_moved_and_a_cancelled_exception(
    fake: GraphFake, account: AccountRef
) -> None:
    calendar = fake.default_calendar(ADA)
    first = _soon(24).astimezone(BERLIN)
    master = fake.put_event(
        ADA,
        calendar.id,
        subject="weekly",
        start=first,
        end=first + timedelta(hours=1),
        recurrence={
            "pattern": {
                "type": "weekly",
                "interval": 1,
                "daysOfWeek": [first.strftime("%A").lower()],
                "firstDayOfWeek": "monday",
            },
            "range": {
                "type": "numbered",
                "numberOfOccurrences": 5,
                "startDate": first.date().isoformat(),
            },
        },
    )
    second = (first + timedelta(weeks=1)).date()
    third = (first + timedelta(weeks=2)).date()
    fourth = (first + timedelta(weeks=3)).date()
    moved_start = first + timedelta(weeks=1, hours=2)
    fake.modify_occurrence(
        ADA,
        calendar.id,
        master["id"],
        second,
        subject="moved",
        start=moved_start,
        end=moved_start + timedelta(minutes=45),
    )
    fake.cancel_occurrence(ADA, calendar.id, master["id"], third)
    fake.delete_occurrence(ADA, calendar.id, master["id"], fourth)

    changes = _provider(fake, page_size=2).read_changes(account, calendar.id, None, {})
    assert master["id"] not in {r.key for r in changes.upserted}  # masters are not instances
    assert len(changes.upserted) == 4  # 5 occurrences, one deleted
    busy = _busy(changes.upserted)
    assert [(i.title, i.start) for i in busy] == [  # wall-clock weeks in Berlin
        ("weekly", first.astimezone(UTC)),
        ("moved", moved_start.astimezone(UTC)),
        ("weekly", (first + timedelta(weeks=4)).astimezone(UTC)),
    ]
    assert busy[1].end - busy[1].start == timedelta(minutes=45)
    uids = {str(Calendar.from_ical(r.ical).walk("VEVENT")[0]["UID"]) for r in changes.upserted}
    assert len(uids) == 4  # every occurrence has its own iCalUId


def test_partial_occurrence_rows_are_completed_from_the_series_master(
    fake: GraphFake, account: AccountRef
) -> None:
    fake.partial_occurrences_in_delta = True
    calendar = fake.default_calendar(ADA)
    first = _soon(30)
    master = fake.put_event(
        ADA,
        calendar.id,
        subject="daily tagged",
        start=first,
        end=first + timedelta(hours=1),
        showAs="tentative",
        export_tag="series-1",
        recurrence={
            "pattern": {"type": "daily", "interval": 2},
            "range": {
                "type": "endDate",
                "startDate": first.date().isoformat(),
                "endDate": (first + timedelta(days=6)).date().isoformat(),
            },
        },
    )
    single = fake.put_event(ADA, calendar.id, subject="single", start=first, end=_soon(31))
    changes = _provider(fake).read_changes(account, calendar.id, None, {})
    occurrences = [r for r in changes.upserted if r.key != single["id"]]
    assert len(occurrences) == 4
    for resource in occurrences:
        assert "SUMMARY:daily tagged" in resource.ical
        assert "STATUS:TENTATIVE" in resource.ical
        assert "X-CALSYNC-EXPORT:series-1" in resource.ical
    fetched = [r.path for r in fake.requests if "/me/events/" in r.path]
    assert fetched == [f"/v1.0/me/events/{master['id']}"]  # the master, once
    assert [i.title for i in _busy(changes.upserted)] == ["single"]


# --- incremental reads -------------------------------------------------------------------------


def _first_read(
    fake: GraphFake, account: AccountRef, calendar_id: str
) -> tuple[GraphCalendarProvider, CalendarChanges]:
    provider = _provider(fake, page_size=2)
    return provider, provider.read_changes(account, calendar_id, None, {})


def test_incremental_read_returns_exactly_the_changes(fake: GraphFake, account: AccountRef) -> None:
    calendar = fake.default_calendar(ADA)
    keep = fake.put_event(ADA, calendar.id, subject="keep", start=_soon(1), end=_soon(2))
    edit = fake.put_event(ADA, calendar.id, subject="edit", start=_soon(3), end=_soon(4))
    drop = fake.put_event(ADA, calendar.id, subject="drop", start=_soon(5), end=_soon(6))
    provider, first = _first_read(fake, account, calendar.id)
    known = {r.key: r.etag for r in first.upserted}
    assert set(known) == {keep["id"], edit["id"], drop["id"]}

    added = fake.put_event(ADA, calendar.id, subject="added", start=_soon(7), end=_soon(8))
    fake.update_event(ADA, calendar.id, edit["id"], subject="edited", showAs="free")
    fake.delete_event(ADA, calendar.id, drop["id"])
    second = provider.read_changes(account, calendar.id, first.cursor, known)
    assert not second.full
    assert [r.key for r in second.upserted] == sorted([added["id"], edit["id"]])
    assert second.deleted == [drop["id"]]
    edited = next(r for r in second.upserted if r.key == edit["id"])
    assert "SUMMARY:edited" in edited.ical and "TRANSP:TRANSPARENT" in edited.ical
    assert edited.etag != known[edit["id"]]
    assert second.cursor is not None and second.cursor != first.cursor

    third = provider.read_changes(account, calendar.id, second.cursor, known)
    assert (third.upserted, third.deleted) == ([], [])


def test_unchanged_calendar_costs_one_request(fake: GraphFake, account: AccountRef) -> None:
    calendar = fake.default_calendar(ADA)
    for n in range(5):
        fake.put_event(ADA, calendar.id, subject=f"e{n}", start=_soon(n + 1), end=_soon(n + 2))
    provider, first = _first_read(fake, account, calendar.id)
    before = len(fake.requests)
    again = provider.read_changes(account, calendar.id, first.cursor, {})
    assert len(fake.requests) - before == 1
    assert "$deltatoken" in fake.requests[-1].params
    assert (again.full, again.upserted, again.deleted) == (False, [], [])
    assert again.cursor is not None


def test_incremental_read_skips_what_the_store_already_holds(
    fake: GraphFake, account: AccountRef
) -> None:
    calendar = fake.default_calendar(ADA)
    event = fake.put_event(ADA, calendar.id, subject="x", start=_soon(1), end=_soon(2))
    provider, first = _first_read(fake, account, calendar.id)
    changed = fake.update_event(ADA, calendar.id, event["id"], subject="y")
    known = {event["id"]: changed["@odata.etag"]}  # e.g. written by calsync itself meanwhile
    before = len(fake.requests)
    second = provider.read_changes(account, calendar.id, first.cursor, known)
    assert second.upserted == []
    assert len(fake.requests) - before == 1  # no marker lookup for nothing


def test_series_changes_arrive_per_occurrence(fake: GraphFake, account: AccountRef) -> None:
    calendar = fake.default_calendar(ADA)
    first = _soon(10)
    master = fake.put_event(
        ADA,
        calendar.id,
        subject="daily",
        start=first,
        end=first + timedelta(hours=1),
        recurrence={
            "pattern": {"type": "daily", "interval": 1},
            "range": {"type": "numbered", "numberOfOccurrences": 3},
        },
    )
    provider, initial = _first_read(fake, account, calendar.id)
    assert len(initial.upserted) == 3
    fake.delete_occurrence(ADA, calendar.id, master["id"], (first + timedelta(days=1)).date())
    second = provider.read_changes(account, calendar.id, initial.cursor, {})
    assert second.upserted == []
    assert second.deleted == [fake.occurrence_id(master["id"], (first + timedelta(1)).date())]
    fake.delete_event(ADA, calendar.id, master["id"])
    third = provider.read_changes(account, calendar.id, second.cursor, {})
    assert len(third.deleted) == 2


# --- errors ------------------------------------------------------------------------------------


def test_expired_delta_token_is_cursor_expired(fake: GraphFake, account: AccountRef) -> None:
    calendar = fake.default_calendar(ADA)
    fake.put_event(ADA, calendar.id, subject="x", start=_soon(1), end=_soon(2))
    provider, first = _first_read(fake, account, calendar.id)
    assert first.cursor is not None
    fake.expire_delta_tokens()
    with pytest.raises(CursorExpired):
        provider.read_changes(account, calendar.id, first.cursor, {})
    fake.fail_next(410, code="resyncRequired")
    with pytest.raises(CursorExpired):
        provider.read_changes(account, calendar.id, first.cursor, {})
    again = provider.read_changes(account, calendar.id, None, {})
    assert again.full and len(again.upserted) == 1


@pytest.mark.parametrize(
    "cursor",
    [
        "sync:abc",
        "graph-delta:http://elsewhere.example/v1.0/me/calendarView/delta?$deltatoken=x",
        "graph-delta:https://127.0.0.1/v1.0/me/calendarView/delta?$deltatoken=x",
    ],
)
def test_foreign_cursors_are_expired(fake: GraphFake, account: AccountRef, cursor: str) -> None:
    with pytest.raises(CursorExpired):
        _provider(fake).read_changes(account, "cal", cursor, {})
    assert fake.requests == []


def test_refused_token_is_auth_rejected_without_the_token(fake: GraphFake) -> None:
    calendar = fake.default_calendar(ADA)
    wrong = AccountRef(email=ADA, access_token="expired-token-SECRET")
    provider = _provider(fake)
    for call in (
        lambda: provider.list_calendars(wrong),
        lambda: provider.read_changes(wrong, calendar.id, None, {}),
    ):
        with pytest.raises(AuthRejected) as caught:
            call()
        assert "SECRET" not in str(caught.value)
        assert "InvalidAuthenticationToken" in str(caught.value)


def test_throttling_carries_retry_after(fake: GraphFake, account: AccountRef) -> None:
    calendar = fake.default_calendar(ADA)
    provider = _provider(fake)
    fake.fail_next(429, retry_after=7)
    with pytest.raises(RateLimitedByProvider) as caught:
        provider.read_changes(account, calendar.id, None, {})
    assert caught.value.retry_after == 7
    fake.fail_next(429)  # no Retry-After: throttled, wait unknown
    with pytest.raises(RateLimitedByProvider) as caught:
        provider.list_calendars(account)
    assert caught.value.retry_after is None
    later = datetime.now(UTC) + timedelta(seconds=120)
    fake.fail_next(429, retry_after=format_datetime(later, usegmt=True))
    with pytest.raises(RateLimitedByProvider) as caught:
        provider.list_calendars(account)
    assert caught.value.retry_after is not None and 100 < caught.value.retry_after <= 120


def test_throttling_in_the_middle_of_a_round(fake: GraphFake, account: AccountRef) -> None:
    calendar = fake.default_calendar(ADA)
    for n in range(5):
        fake.put_event(ADA, calendar.id, subject=f"e{n}", start=_soon(n + 1), end=_soon(n + 2))
    fake.fail_next(429, retry_after=3, path_contains="/delta")
    provider = _provider(fake, page_size=2)
    with pytest.raises(RateLimitedByProvider):
        provider.read_changes(account, calendar.id, None, {})


def test_service_unavailable(fake: GraphFake, account: AccountRef) -> None:
    """503 with Retry-After is throttling; without it (and 500/504) the server is unreachable."""
    calendar = fake.default_calendar(ADA)
    provider = _provider(fake)
    fake.fail_next(503, retry_after=30)
    with pytest.raises(RateLimitedByProvider) as caught:
        provider.read_changes(account, calendar.id, None, {})
    assert caught.value.retry_after == 30
    for status in (503, 500, 504):
        fake.fail_next(status)
        with pytest.raises(ProviderUnreachable, match=str(status)):
            provider.read_changes(account, calendar.id, None, {})


def test_deleted_calendar_is_gone(fake: GraphFake, account: AccountRef) -> None:
    calendar = fake.add_calendar(ADA, "Temp")
    fake.put_event(ADA, calendar.id, subject="x", start=_soon(1), end=_soon(2))
    provider, first = _first_read(fake, account, calendar.id)
    fake.remove_calendar(ADA, calendar.id)
    with pytest.raises(CalendarGone, match="ErrorItemNotFound"):
        provider.read_changes(account, calendar.id, first.cursor, {})
    with pytest.raises(CalendarGone):
        provider.read_changes(account, calendar.id, None, {})
    fake.fail_next(403, code="ErrorAccessDenied")
    with pytest.raises(CalendarGone):
        provider.read_changes(account, fake.default_calendar(ADA).id, None, {})


def test_links_to_another_host_are_not_followed(fake: GraphFake, account: AccountRef) -> None:
    calendar = fake.default_calendar(ADA)
    for n in range(3):
        fake.put_event(ADA, calendar.id, subject=f"e{n}", start=_soon(n + 1), end=_soon(n + 2))
    fake.link_base = "http://graph.attacker.example/v1.0"
    provider = _provider(fake, page_size=2)
    with pytest.raises(ProviderUnreachable, match="another host"):
        provider.read_changes(account, calendar.id, None, {})  # a foreign nextLink
    with pytest.raises(ProviderUnreachable, match="another host"):
        _provider(fake, page_size=10).read_changes(account, calendar.id, None, {})  # deltaLink
    fake.default_page_size = 1
    fake.add_calendar(ADA, "second")
    with pytest.raises(ProviderUnreachable, match="another host"):
        provider.list_calendars(account)
    assert all(r.path.startswith("/v1.0/") for r in fake.requests)


def test_network_failures_are_unreachable(account: AccountRef) -> None:
    with socket.socket() as sock:  # a port that refuses connections
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = GraphCalendarProvider(f"http://127.0.0.1:{port}/v1.0", timeout=2.0)
    with pytest.raises(ProviderUnreachable, match="could not be reached"):
        provider.list_calendars(account)


def test_timeouts_are_unreachable(fake: GraphFake, account: AccountRef) -> None:
    fake.response_delay = 0.5
    with pytest.raises(ProviderUnreachable, match="timed out"):
        _provider(fake, timeout=0.1).list_calendars(account)


def test_a_caller_owned_transport_is_borrowed(fake: GraphFake, account: AccountRef) -> None:
    calendar = fake.default_calendar(ADA)
    fake.put_event(ADA, calendar.id, subject="x", start=date.today(), end=date.today())
    with httpx.HTTPTransport() as transport:
        provider = _provider(fake, transport=transport)
        assert len(provider.list_calendars(account)) == 1
        changes = provider.read_changes(account, calendar.id, None, {})
        assert len(changes.upserted) == 1  # an all-day event whose end <= start lasts one day
        assert len(_busy(changes.upserted)) == 1


# --- answers the fake does not give (httpx.MockTransport) --------------------------------------

API = "https://graph.test/v1.0"


def _mock(routes: dict[str, httpx.Response]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        key = request.url.path + ("?" + request.url.query.decode() if request.url.query else "")
        for prefix, response in routes.items():
            if key.startswith(prefix):
                return response
        return httpx.Response(500, json={"error": {"code": "Unexpected", "message": key}})

    return httpx.MockTransport(handle)


def _row(event_id: str, **fields: object) -> dict[str, object]:
    start = _soon(5).strftime("%Y-%m-%dT%H:%M:%S.0000000")
    end = _soon(6).strftime("%Y-%m-%dT%H:%M:%S.0000000")
    return {
        "id": event_id,
        "start": {"dateTime": start, "timeZone": "UTC"},
        "end": {"dateTime": end, "timeZone": "UTC"},
        **fields,
    }


def test_partial_rows_without_a_master_are_fetched_or_deleted(account: AccountRef) -> None:
    full = _row(
        "one",
        changeKey="ck-1",  # no @odata.etag: the changeKey is the etag
        subject="fetched",
        isAllDay=False,
        showAs="busy",
        isCancelled=False,
        responseStatus={"response": "accepted"},
        iCalUId="uid-one",
    )
    transport = _mock(
        {
            "/v1.0/me/calendarView/delta?$deltatoken=old": httpx.Response(
                200,
                json={
                    "value": [{"id": "one", "type": "singleInstance"}, {"id": "two"}],
                    "@odata.deltaLink": f"{API}/me/calendarView/delta?$deltatoken=new",
                },
            ),
            "/v1.0/me/events/one": httpx.Response(200, json=full),
            "/v1.0/me/events/two": httpx.Response(
                404, json={"error": {"code": "ErrorItemNotFound", "message": "gone"}}
            ),
            "/v1.0/me/calendars/cal/calendarView": httpx.Response(200, json={"value": []}),
        }
    )
    provider = GraphCalendarProvider(API, transport=transport)
    cursor = f"{CURSOR_PREFIX}{API}/me/calendarView/delta?$deltatoken=old"
    changes = provider.read_changes(account, "cal", cursor, {})
    assert [(r.key, r.etag) for r in changes.upserted] == [("one", "ck-1")]
    assert "SUMMARY:fetched" in changes.upserted[0].ical
    assert "UID:uid-one" in changes.upserted[0].ical
    assert changes.deleted == ["two"]
    assert changes.cursor == f"{CURSOR_PREFIX}{API}/me/calendarView/delta?$deltatoken=new"


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (
            httpx.Response(400, json={"error": {"code": "ErrorInvalidIdMalformed"}}),
            CalendarGone,
        ),
        (httpx.Response(200, text="<html>maintenance</html>"), ProviderUnreachable),
        (httpx.Response(200, json={"no": "value"}), ProviderUnreachable),
        (
            httpx.Response(400, json={"error": {"code": "ErrorInvalidUrlQuery"}}),
            ProviderUnreachable,
        ),
        (
            httpx.Response(
                200,
                json={"value": [], "@odata.nextLink": f"{API}/me/calendars/cal/calendarView/delta"},
            ),
            ProviderUnreachable,  # a nextLink that points back at itself: a loop
        ),
    ],
)
def test_odd_answers(account: AccountRef, response: httpx.Response, error: type[Exception]) -> None:
    provider = GraphCalendarProvider(API, transport=_mock({"/v1.0/me/calendars/": response}))
    with pytest.raises(error):
        provider.read_changes(account, "cal", None, {})


def test_stale_sync_state_while_resuming_is_cursor_expired(account: AccountRef) -> None:
    answer = httpx.Response(400, json={"error": {"code": "ErrorInvalidSyncStateData"}})
    provider = GraphCalendarProvider(API, transport=_mock({"/v1.0/": answer}))
    with pytest.raises(CursorExpired):
        provider.read_changes(account, "cal", f"{CURSOR_PREFIX}{API}/x?$deltatoken=t", {})


def test_a_round_without_delta_link_gives_no_cursor(account: AccountRef) -> None:
    answer = httpx.Response(200, json={"value": []})
    provider = GraphCalendarProvider(API, transport=_mock({"/v1.0/": answer}))
    changes = provider.read_changes(account, "cal", None, {})
    assert (changes.full, changes.upserted, changes.cursor) == (True, [], None)
