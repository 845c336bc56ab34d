"""GraphWriter (export) against the Microsoft Graph fake, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarGone,
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
from calsync.providers.microsoft import EXPORT_PROPERTY_ID, GraphCalendarProvider
from calsync.providers.microsoft.writer import EXPORT_UID_PROPERTY_ID, GraphWriter
from tests.peers.graph_fake import GraphFake, LoggedRequest, start_graph_fake

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


@pytest.fixture
def provider(fake: GraphFake) -> GraphCalendarProvider:
    return GraphCalendarProvider(fake.api_url)


@pytest.fixture
def writer(provider: GraphCalendarProvider) -> GraphWriter:
    assert isinstance(provider.writer, GraphWriter)
    return provider.writer


@pytest.fixture
def calendar_id(writer: GraphWriter, account: AccountRef) -> str:
    return writer.create_calendar(account, "Bookings").id


def _session(n: int, **fields: object) -> ExportEvent:
    start = (datetime.now(UTC) + timedelta(days=1, hours=n)).replace(second=0, microsecond=0)
    values: dict[str, object] = {
        "uid": f"{n:032x}",
        "tag": f"session-{n}",
        "title": f"Class {n}",
        "time_zone": "Europe/Berlin",
        "start": start,
        "end": start + timedelta(minutes=45),
        "location": "Studio 2",
        "description": "Bring a mat",
    }
    values.update(fields)
    return ExportEvent(**values)  # type: ignore[arg-type]


def _written(results: list[WrittenEvent | ProviderError]) -> list[WrittenEvent]:
    assert all(isinstance(r, WrittenEvent) for r in results), results
    return [r for r in results if isinstance(r, WrittenEvent)]


def _writes(fake: GraphFake, since: int = 0) -> list[LoggedRequest]:
    """Event writes the fake received (alone or inside a $batch), in order."""
    return [
        r
        for r in fake.requests[since:]
        if r.method in ("POST", "PATCH", "DELETE") and "/events" in r.path
    ]


def _batches(fake: GraphFake, since: int = 0) -> list[LoggedRequest]:
    return [r for r in fake.requests[since:] if r.path.endswith("/$batch")]


def _read(
    provider: GraphCalendarProvider, account: AccountRef, cid: str
) -> dict[str, EventResource]:
    changes = provider.read_changes(account, cid, None, {})
    return {r.key: r for r in changes.upserted}


# --- calendars ---------------------------------------------------------------------------------


def test_create_calendar_is_listed_reused_and_deleted(
    fake: GraphFake, provider: GraphCalendarProvider, writer: GraphWriter, account: AccountRef
) -> None:
    created = writer.create_calendar(account, "Bookings")
    assert (created.name, created.is_primary, created.read_only) == ("Bookings", False, False)
    listed = {c.id: c.name for c in provider.list_calendars(account)}
    assert listed[created.id] == "Bookings"
    # an interrupted earlier create left it behind: Graph answers 409, the writer reuses it
    assert writer.create_calendar(account, "bookings").id == created.id
    assert [c.name for c in fake.account(ADA).calendars.values()].count("Bookings") == 1
    writer.delete_calendar(account, created.id)
    assert created.id not in {c.id for c in provider.list_calendars(account)}
    writer.delete_calendar(account, created.id)  # already gone: fine


def test_delete_calendar_refused_is_an_error(
    fake: GraphFake, writer: GraphWriter, account: AccountRef
) -> None:
    with pytest.raises(ProviderError):
        writer.delete_calendar(account, fake.default_calendar(ADA).id)  # Graph refuses (400)
    assert fake.default_calendar(ADA) is not None


# --- writing -----------------------------------------------------------------------------------


def test_one_event_is_posted_alone_and_read_back_tagged(
    fake: GraphFake,
    provider: GraphCalendarProvider,
    writer: GraphWriter,
    account: AccountRef,
    calendar_id: str,
) -> None:
    event = _session(1)
    since = len(fake.requests)
    [written] = _written(writer.put_events(account, calendar_id, [EventWrite(event)]))
    [post] = _writes(fake, since)
    assert not _batches(fake, since)
    assert (post.method, post.path) == ("POST", f"/v1.0/me/calendars/{calendar_id}/events")
    assert event.start is not None and event.end is not None
    local = event.start.astimezone(BERLIN).strftime("%Y-%m-%dT%H:%M:%S")
    assert post.body["transactionId"] == event.uid
    assert post.body["start"] == {"dateTime": local, "timeZone": "Europe/Berlin"}
    assert post.body["isAllDay"] is False and post.body["showAs"] == "busy"
    assert post.body["location"] == {"displayName": "Studio 2"}
    assert post.body["body"] == {"contentType": "text", "content": "Bring a mat"}
    assert {p["id"]: p["value"] for p in post.body["singleValueExtendedProperties"]} == {
        EXPORT_PROPERTY_ID: event.tag,
        EXPORT_UID_PROPERTY_ID: event.uid,
    }
    resources = _read(provider, account, calendar_id)
    assert list(resources) == [written.external_id]
    resource = resources[written.external_id]
    assert resource.etag == written.etag
    assert f"X-CALSYNC-EXPORT:{event.tag}" in resource.ical
    assert "SUMMARY:Class 1" in resource.ical
    assert event.start.strftime("DTSTART:%Y%m%dT%H%M%SZ") in resource.ical


def test_all_day_and_zones_graph_does_not_know(
    fake: GraphFake, writer: GraphWriter, account: AccountRef, calendar_id: str
) -> None:
    all_day = _session(
        1, start=None, end=None, start_date=date(2031, 5, 1), end_date=date(2031, 5, 3)
    )
    toronto = _session(2, time_zone="America/Toronto")  # not among Graph's IANA names
    since = len(fake.requests)
    _written(writer.put_events(account, calendar_id, [EventWrite(all_day), EventWrite(toronto)]))
    first, second = sorted(_writes(fake, since), key=lambda r: r.body["subject"])
    assert first.body["isAllDay"] is True
    assert first.body["start"] == {"dateTime": "2031-05-01T00:00:00", "timeZone": "Europe/Berlin"}
    assert first.body["end"] == {"dateTime": "2031-05-03T00:00:00", "timeZone": "Europe/Berlin"}
    assert toronto.start is not None
    utc = toronto.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert second.body["start"] == {"dateTime": utc, "timeZone": "UTC"}


def test_many_writes_go_in_batches_of_twenty(
    fake: GraphFake,
    provider: GraphCalendarProvider,
    writer: GraphWriter,
    account: AccountRef,
    calendar_id: str,
) -> None:
    events = [_session(n) for n in range(45)]
    since = len(fake.requests)
    written = _written(writer.put_events(account, calendar_id, [EventWrite(e) for e in events]))
    batches = _batches(fake, since)
    assert [len(b.body["requests"]) for b in batches] == [20, 20, 5]
    inner = _writes(fake, since)
    assert len(inner) == 45 and all(r.batch_id is not None for r in inner)
    # answers come back in reverse order from the fake: results still follow the writes
    by_id = {w.external_id: w for w in written}
    stored = fake.account(ADA).calendars[calendar_id].events
    assert [stored[w.external_id]["transactionId"] for w in written] == [e.uid for e in events]
    resources = _read(provider, account, calendar_id)
    assert {k: r.etag for k, r in resources.items()} == {k: w.etag for k, w in by_id.items()}


def test_a_retried_create_reuses_the_transaction(
    fake: GraphFake, writer: GraphWriter, account: AccountRef, calendar_id: str
) -> None:
    write = EventWrite(_session(1))
    [first] = _written(writer.put_events(account, calendar_id, [write]))
    [again] = _written(writer.put_events(account, calendar_id, [write]))
    assert again == first
    assert len(fake.account(ADA).calendars[calendar_id].events) == 1


def test_find_event_after_a_lost_response(
    fake: GraphFake,
    provider: GraphCalendarProvider,
    writer: GraphWriter,
    account: AccountRef,
    calendar_id: str,
) -> None:
    event = _session(1)
    assert writer.find_event(account, calendar_id, event.uid) is None
    fake.fail_next(504, path_contains="/events", method="POST", applied=True)
    [lost] = writer.put_events(account, calendar_id, [EventWrite(event)])
    assert isinstance(lost, ProviderUnreachable)
    found = writer.find_event(account, calendar_id, event.uid)
    assert found is not None
    [resource] = _read(provider, account, calendar_id).values()
    assert (found.external_id, found.etag) == (resource.key, resource.etag)
    assert writer.find_event(account, calendar_id, _session(2).uid) is None
    renamed = EventWrite(_session(1, title="Renamed"), found.external_id, found.etag)
    [updated] = _written(writer.put_events(account, calendar_id, [renamed]))
    assert updated.external_id == found.external_id and updated.etag != found.etag
    [stored] = fake.account(ADA).calendars[calendar_id].events.values()
    assert stored["subject"] == "Renamed"


def test_an_externally_deleted_event_is_created_again(
    fake: GraphFake, writer: GraphWriter, account: AccountRef, calendar_id: str
) -> None:
    one, two = _session(1), _session(2)
    first = _written(writer.put_events(account, calendar_id, [EventWrite(one), EventWrite(two)]))
    fake.delete_event(ADA, calendar_id, first[0].external_id)
    writes = [EventWrite(one, w.external_id) for w in first[:1]] + [
        EventWrite(two, first[1].external_id)
    ]
    since = len(fake.requests)
    again = _written(writer.put_events(account, calendar_id, writes))
    assert again[0].external_id != first[0].external_id  # a new Graph id
    assert again[1].external_id == first[1].external_id
    assert [(r.method, r.status) for r in _writes(fake, since)] == [
        ("PATCH", 404),
        ("PATCH", 200),
        ("POST", 201),  # the second round: only the one gone
    ]
    stored = fake.account(ADA).calendars[calendar_id].events
    assert set(stored) == {w.external_id for w in again}


def test_a_stale_etag_is_refused(
    fake: GraphFake,
    provider: GraphCalendarProvider,
    writer: GraphWriter,
    account: AccountRef,
    calendar_id: str,
) -> None:
    one, two = _session(1), _session(2)
    first = _written(writer.put_events(account, calendar_id, [EventWrite(one), EventWrite(two)]))
    fake.update_event(ADA, calendar_id, first[0].external_id, subject="Edited in Outlook")
    since = len(fake.requests)
    [alone] = writer.put_events(
        account, calendar_id, [EventWrite(one, first[0].external_id, first[0].etag)]
    )
    assert isinstance(alone, StaleEvent)
    assert [r.if_match for r in _writes(fake, since)] == [first[0].etag]
    batched = writer.put_events(
        account,
        calendar_id,
        [EventWrite(e, w.external_id, w.etag) for e, w in zip((one, two), first, strict=True)],
    )
    assert isinstance(batched[0], StaleEvent) and isinstance(batched[1], WrittenEvent)
    stored = fake.account(ADA).calendars[calendar_id].events[first[0].external_id]
    assert stored["subject"] == "Edited in Outlook"
    current = _read(provider, account, calendar_id)[first[0].external_id].etag
    [overwritten] = _written(
        writer.put_events(account, calendar_id, [EventWrite(one, first[0].external_id, current)])
    )
    stored = fake.account(ADA).calendars[calendar_id].events[overwritten.external_id]
    assert stored["subject"] == "Class 1"


def test_throttled_item_in_a_batch(
    fake: GraphFake, writer: GraphWriter, account: AccountRef, calendar_id: str
) -> None:
    events = [_session(n) for n in range(3)]
    fake.fail_next(429, retry_after=7, path_contains="/events", method="POST", after=1)
    results = writer.put_events(account, calendar_id, [EventWrite(e) for e in events])
    assert isinstance(results[0], WrittenEvent) and isinstance(results[2], WrittenEvent)
    assert isinstance(results[1], RateLimitedByProvider) and results[1].retry_after == 7
    stored = fake.account(ADA).calendars[calendar_id].events.values()
    assert sorted(e["transactionId"] for e in stored) == [events[0].uid, events[2].uid]


def test_a_throttled_batch_is_raised(
    fake: GraphFake, writer: GraphWriter, account: AccountRef, calendar_id: str
) -> None:
    fake.fail_next(429, retry_after=3, path_contains="/$batch")
    writes = [EventWrite(_session(n)) for n in range(2)]
    with pytest.raises(RateLimitedByProvider) as caught:
        writer.put_events(account, calendar_id, writes)
    assert caught.value.retry_after == 3
    assert not fake.account(ADA).calendars[calendar_id].events


def test_a_deleted_calendar_is_gone(
    fake: GraphFake, writer: GraphWriter, account: AccountRef, calendar_id: str
) -> None:
    [written] = _written(writer.put_events(account, calendar_id, [EventWrite(_session(1))]))
    fake.remove_calendar(ADA, calendar_id)
    with pytest.raises(CalendarGone):
        writer.put_events(account, calendar_id, [EventWrite(_session(2))])
    with pytest.raises(CalendarGone):  # the update finds no event, the re-create no calendar
        writer.put_events(
            account,
            calendar_id,
            [EventWrite(_session(1), written.external_id), EventWrite(_session(3))],
        )
    with pytest.raises(CalendarGone):
        writer.find_event(account, calendar_id, _session(1).uid)


def test_refused_credentials(fake: GraphFake, writer: GraphWriter, calendar_id: str) -> None:
    stranger = AccountRef(email=ADA, access_token="not-a-token")
    with pytest.raises(AuthRejected):
        writer.put_events(stranger, calendar_id, [EventWrite(_session(1))])
    with pytest.raises(AuthRejected):
        writer.put_events(stranger, calendar_id, [EventWrite(_session(n)) for n in range(2)])


# --- deleting ----------------------------------------------------------------------------------


def test_deletes_show_in_the_next_delta(
    fake: GraphFake,
    provider: GraphCalendarProvider,
    writer: GraphWriter,
    account: AccountRef,
    calendar_id: str,
) -> None:
    initial = provider.read_changes(account, calendar_id, None, {})
    written = _written(
        writer.put_events(account, calendar_id, [EventWrite(_session(n)) for n in range(4)])
    )
    changes = provider.read_changes(account, calendar_id, initial.cursor, {})
    assert {r.key: r.etag for r in changes.upserted} == {w.external_id: w.etag for w in written}
    fake.update_event(ADA, calendar_id, written[1].external_id, subject="Edited")
    results = writer.delete_events(
        account,
        calendar_id,
        [
            EventDelete(written[0].external_id, written[0].etag),
            EventDelete(written[1].external_id, written[1].etag),  # stale
            EventDelete("AAMkunknown"),
            EventDelete(written[2].external_id),
        ],
    )
    assert results[0] is None and results[2] is None and results[3] is None
    assert isinstance(results[1], StaleEvent)
    assert writer.delete_events(account, calendar_id, [EventDelete(written[3].external_id)]) == [
        None
    ]
    after = provider.read_changes(account, calendar_id, changes.cursor, {})
    gone = {w.external_id for w in (written[0], written[2], written[3])}
    assert set(after.deleted) == gone
    assert [r.key for r in after.upserted] == [written[1].external_id]
    assert writer.delete_events(account, calendar_id, []) == []
    assert writer.put_events(account, calendar_id, []) == []
