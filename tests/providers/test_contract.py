"""One contract, every adapter: CalDAV (Radicale and Xandikos), Google (fake) and Graph (fake)
must list calendars, read a calendar in full and incrementally, cost one request when nothing
changed, and report lost cursors, lost calendars and refused credentials the same way."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from calsync.ical.expand import expand_resource
from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarChanges,
    CalendarGone,
    CalendarProvider,
    Credentials,
    CursorExpired,
)
from calsync.providers.caldav.adapter import CalDavProvider
from calsync.providers.google.adapter import GoogleCalendarProvider
from calsync.providers.microsoft.adapter import GraphCalendarProvider
from tests.peers.dav_servers import (
    DavServer,
    delete_collection,
    delete_event,
    make_calendar,
    put_event,
    simple_event,
)
from tests.peers.fixtures import DAV_USERS
from tests.peers.google_fake import GoogleFake, start_google_fake
from tests.peers.graph_fake import GraphFake, start_graph_fake

START = datetime(2027, 2, 1, 9, tzinfo=UTC)


class Counting(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return super().handle_request(request)


@dataclass
class Contract:
    """What the suite needs from each provider: the adapter, an account, and a way to change
    the account's calendars behind the adapter's back."""

    adapter: CalendarProvider
    account: AccountRef
    bad_account: AccountRef
    transport: Counting
    add_calendar: Callable[[str], str]
    put: Callable[[str, str, str, datetime], None]
    delete: Callable[[str, str], None]
    remove_calendar: Callable[[str], None]
    ids: dict[tuple[str, str], str] = field(default_factory=dict)


def caldav_contract(server: DavServer, transport: Counting) -> Contract:
    user = "alice"
    password = DAV_USERS[user]
    urls: dict[str, str] = {}

    def add_calendar(name: str) -> str:
        calendar_id = f"{name}-{uuid.uuid4().hex[:8]}"
        urls[calendar_id] = make_calendar(server, user, password, calendar_id, name)
        return calendar_id

    def put(calendar_id: str, uid: str, title: str, start: datetime) -> None:
        ical = simple_event(uid, title, start.strftime("%Y%m%dT%H%M%SZ"))
        put_event(urls[calendar_id], user, password, f"{uid}.ics", ical)

    adapter = CalDavProvider(server.base_url, transport=transport)
    return Contract(
        adapter=adapter,
        account=adapter.verify(Credentials(user, password)),  # with the discovered URLs
        bad_account=AccountRef(email=user, credentials=Credentials(user, "wrong")),
        transport=transport,
        add_calendar=add_calendar,
        put=put,
        delete=lambda cid, uid: delete_event(urls[cid], user, password, f"{uid}.ics"),
        remove_calendar=lambda cid: delete_collection(urls[cid], user, password),
    )


def google_contract(fake: GoogleFake, transport: Counting) -> Contract:
    email = f"g{uuid.uuid4().hex[:8]}@example.com"
    token = fake.add_account(email)

    def add_calendar(name: str) -> str:
        calendar_id = f"{name}-{uuid.uuid4().hex[:8]}@group.calendar.google.com"
        fake.add_calendar(email, calendar_id, name)
        return calendar_id

    def put(calendar_id: str, uid: str, title: str, start: datetime) -> None:
        fake.put_event(
            email,
            calendar_id,
            {
                "id": uid,
                "summary": title,
                "start": {"dateTime": start.isoformat()},
                "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
            },
        )

    return Contract(
        adapter=GoogleCalendarProvider(fake.api_url, transport=transport),
        account=AccountRef(email=email, access_token=token),
        bad_account=AccountRef(email=email, access_token="expired-token"),
        transport=transport,
        add_calendar=add_calendar,
        put=put,
        delete=lambda cid, uid: fake.delete_event(email, cid, uid),
        remove_calendar=lambda cid: fake.remove_calendar(email, cid),
    )


def graph_contract(fake: GraphFake, transport: Counting) -> Contract:
    email = f"m{uuid.uuid4().hex[:8]}@example.com"
    token = f"tok-{uuid.uuid4().hex}"
    fake.add_account(email, token=token)
    event_ids: dict[str, str] = {}

    def put(calendar_id: str, uid: str, title: str, start: datetime) -> None:
        fields = {"subject": title, "start": start, "end": start + timedelta(hours=1)}
        if uid in event_ids:
            fake.update_event(email, calendar_id, event_ids[uid], **fields)
        else:
            event_ids[uid] = str(fake.put_event(email, calendar_id, **fields)["id"])

    return Contract(
        adapter=GraphCalendarProvider(fake.api_url, transport=transport),
        account=AccountRef(email=email, access_token=token),
        bad_account=AccountRef(email=email, access_token="expired-token"),
        transport=transport,
        add_calendar=lambda name: fake.add_calendar(email, name).id,
        put=put,
        delete=lambda cid, uid: fake.delete_event(email, cid, event_ids[uid]),
        remove_calendar=lambda cid: fake.remove_calendar(email, cid),
    )


@pytest.fixture(scope="module")
def google_fake() -> Iterator[GoogleFake]:
    fake = start_google_fake(page_size=2)
    yield fake
    assert fake.violations == [], fake.violations
    fake.stop()


@pytest.fixture(scope="module")
def graph_fake() -> Iterator[GraphFake]:
    fake = start_graph_fake(default_page_size=2)
    yield fake
    fake.stop()


@pytest.fixture(params=["radicale", "xandikos", "google", "microsoft"])
def contract(request: pytest.FixtureRequest) -> Iterator[Contract]:
    transport = Counting()
    kind = request.param
    if kind in ("radicale", "xandikos"):
        made = caldav_contract(request.getfixturevalue(f"{kind}_server"), transport)
    elif kind == "google":
        made = google_contract(request.getfixturevalue("google_fake"), transport)
    else:
        made = graph_contract(request.getfixturevalue("graph_fake"), transport)
    yield made
    transport.close()


def busy(changes: CalendarChanges) -> dict[str, tuple[str, datetime]]:
    """key -> (title, start) of every busy instance in the changes."""
    out = {}
    for resource in changes.upserted:
        for instance in expand_resource(
            resource.ical,
            window_start=START - timedelta(days=30),
            window_end=START + timedelta(days=30),
            owner_emails=frozenset(),
            local_tz=ZoneInfo("UTC"),
        ):
            out[resource.key] = (instance.title, instance.start)
    return out


def test_lists_calendars_primary_first(contract: Contract) -> None:
    calendar_id = contract.add_calendar("Contract")
    calendars = contract.adapter.list_calendars(contract.account)
    assert {c.id: c.name for c in calendars}[calendar_id] == "Contract"
    assert sum(c.is_primary for c in calendars) <= 1
    if any(c.is_primary for c in calendars):
        assert calendars[0].is_primary


def test_full_then_incremental_reads(contract: Contract) -> None:
    calendar_id = contract.add_calendar("Reads")
    for n in range(3):
        contract.put(calendar_id, f"ev{n}", f"Event {n}", START + timedelta(days=n))
    full = contract.adapter.read_changes(contract.account, calendar_id, None, {})
    assert full.full and full.cursor
    assert sorted(t for t, _ in busy(full).values()) == ["Event 0", "Event 1", "Event 2"]
    keys = {title: key for key, (title, _) in busy(full).items()}
    known = {r.key: r.etag for r in full.upserted}

    contract.put(calendar_id, "ev3", "Event 3", START + timedelta(days=5))
    contract.put(calendar_id, "ev1", "Event 1 moved", START + timedelta(days=9))
    contract.delete(calendar_id, "ev0")
    changes = contract.adapter.read_changes(contract.account, calendar_id, full.cursor, known)
    assert not changes.full
    assert sorted(t for t, _ in busy(changes).values()) == ["Event 1 moved", "Event 3"]
    assert keys["Event 0"] in changes.deleted
    assert busy(changes)[keys["Event 1"]][1] == START + timedelta(days=9)
    assert keys["Event 2"] not in {r.key for r in changes.upserted}

    contract.transport.count = 0
    again = contract.adapter.read_changes(contract.account, calendar_id, changes.cursor, known)
    assert (again.upserted, again.deleted) == ([], [])
    assert contract.transport.count == 1


def test_garbage_cursor_means_full_read(contract: Contract) -> None:
    calendar_id = contract.add_calendar("Cursor")
    with pytest.raises(CursorExpired):
        contract.adapter.read_changes(contract.account, calendar_id, "garbage", {})


def test_removed_calendar_is_gone(contract: Contract) -> None:
    calendar_id = contract.add_calendar("Doomed")
    contract.put(calendar_id, "x", "X", START)
    first = contract.adapter.read_changes(contract.account, calendar_id, None, {})
    contract.remove_calendar(calendar_id)
    with pytest.raises(CalendarGone):
        contract.adapter.read_changes(contract.account, calendar_id, first.cursor, {})


def test_refused_credentials(contract: Contract) -> None:
    with pytest.raises(AuthRejected):
        contract.adapter.list_calendars(contract.bad_account)


def test_read_window_reaches_beyond_the_horizon(contract: Contract) -> None:
    calendar_id = contract.add_calendar("Far")
    far = datetime(2031, 6, 2, 9, tzinfo=UTC)  # years past any sync horizon
    contract.put(calendar_id, "far", "Far away", far)
    contract.put(calendar_id, "near", "Near", START)
    found = contract.adapter.read_window(
        contract.account, calendar_id, far - timedelta(days=1), far + timedelta(days=1)
    )
    titles = set()
    for resource in found:
        for instance in expand_resource(
            resource.ical,
            window_start=far - timedelta(days=1),
            window_end=far + timedelta(days=1),
            owner_emails=frozenset(),
            local_tz=ZoneInfo("UTC"),
        ):
            titles.add((instance.title, instance.start))
    assert titles == {("Far away", far)}


def test_the_change_check_sees_what_moved_in_one_request(contract: Contract) -> None:
    check = contract.adapter.change_check
    if check is None:
        pytest.skip("kept fresh by push notifications or incremental polls, not a change check")
    quiet, busy_one = contract.add_calendar("Quiet"), contract.add_calendar("Busy")
    for calendar_id in (quiet, busy_one):
        contract.put(calendar_id, "a", "A", START)
    cursors: dict[str, str | None] = {
        cid: contract.adapter.read_changes(contract.account, cid, None, {}).cursor
        for cid in (quiet, busy_one)
    }
    contract.transport.count = 0
    assert check.changed_calendars(contract.account, cursors) == set()
    assert contract.transport.count == 1  # one request for all calendars of the account

    contract.put(busy_one, "b", "B", START + timedelta(hours=2))
    assert check.changed_calendars(contract.account, cursors) == {busy_one}
    cursors[busy_one] = contract.adapter.read_changes(
        contract.account, busy_one, cursors[busy_one], {}
    ).cursor
    assert check.changed_calendars(contract.account, cursors) == set()

    contract.delete(quiet, "a")
    assert check.changed_calendars(contract.account, cursors) == {quiet}
    gone = contract.add_calendar("Gone")
    contract.remove_calendar(gone)
    never_read = {gone: "sync:whatever", busy_one: None}
    assert check.changed_calendars(contract.account, never_read) == {gone, busy_one}
