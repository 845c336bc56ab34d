"""GoogleWriter (the Google adapter's export) against the Google Calendar API v3 fake.

Real HTTP on 127.0.0.1. Every test's fixture checks at the end that the writer's requests (batch
calls included) conformed to Google's discovery document and the fake's answers to its schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarGone,
    CalendarWriter,
    EventDelete,
    EventWrite,
    ExportEvent,
    ProviderError,
    ProviderUnreachable,
    RateLimitedByProvider,
    StaleEvent,
    WrittenEvent,
)
from calsync.providers.google import GoogleCalendarProvider
from calsync.providers.google.events import EXPORT_PROPERTY
from tests.peers.google_fake import BATCH, GoogleFake, start_google_fake

EMAIL = "ada@example.com"
TOKEN = "ya29.secret-access-token-ada"
PRIMARY = EMAIL
ACCOUNT = AccountRef(EMAIL, access_token=TOKEN)
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime.now(BERLIN).replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=3)


@pytest.fixture(scope="module")
def server() -> Iterator[GoogleFake]:
    with start_google_fake() as fake:
        yield fake


@pytest.fixture
def fake(server: GoogleFake) -> Iterator[GoogleFake]:
    server.reset()
    server.page_size = None
    server.add_account(EMAIL, token=TOKEN)
    server.add_calendar(EMAIL, PRIMARY, "Ada Lovelace", primary=True, time_zone="Europe/Berlin")
    yield server
    assert server.violations == []
    assert server.response_violations == []
    assert server.unimplemented == []


@pytest.fixture
def provider(fake: GoogleFake) -> GoogleCalendarProvider:
    return GoogleCalendarProvider(fake.api_url, timeout=5.0)


@pytest.fixture
def writer(provider: GoogleCalendarProvider) -> CalendarWriter:
    assert provider.writer is not None
    return provider.writer


def session(number: int, **changes: object) -> ExportEvent:
    start = START + timedelta(hours=number)
    fields: dict[str, object] = {
        "uid": f"{number:032x}",
        "tag": f"session-{number}",
        "title": f"Session {number}",
        "time_zone": "Europe/Berlin",
        "start": start,
        "end": start + timedelta(minutes=45),
        **changes,
    }
    return ExportEvent(**fields)  # type: ignore[arg-type]


def put(writer: CalendarWriter, *events: ExportEvent) -> list[WrittenEvent]:
    results = writer.put_events(ACCOUNT, PRIMARY, [EventWrite(e) for e in events])
    assert all(isinstance(r, WrittenEvent) for r in results), results
    return [r for r in results if isinstance(r, WrittenEvent)]


def statuses(fake: GoogleFake) -> list[tuple[str | None, int]]:
    return [(r.method, r.status) for r in fake.requests]


def live_ids(fake: GoogleFake, calendar_id: str = PRIMARY) -> list[str]:
    events = fake.accounts[EMAIL].calendars[calendar_id].events
    return sorted(i for i, stored in events.items() if not stored.deleted)


# --- calendars ---------------------------------------------------------------------------------


def test_created_calendar_is_listed_and_deleted(
    fake: GoogleFake, provider: GoogleCalendarProvider, writer: CalendarWriter
) -> None:
    created = writer.create_calendar(ACCOUNT, "Bookings (calsync)")
    assert created.name == "Bookings (calsync)" and not created.is_primary
    listed = provider.list_calendars(ACCOUNT)
    assert [(c.id, c.name, c.read_only) for c in listed if c.id == created.id] == [
        (created.id, "Bookings (calsync)", False)
    ]
    writer.delete_calendar(ACCOUNT, created.id)
    assert created.id not in {c.id for c in provider.list_calendars(ACCOUNT)}
    writer.delete_calendar(ACCOUNT, created.id)  # already gone: fine
    assert [s for m, s in statuses(fake) if m == "calendar.calendars.delete"] == [204, 404]


def test_calendar_creation_refused_is_no_calendar_gone(
    fake: GoogleFake, writer: CalendarWriter
) -> None:
    fake.fail_next(403, reason="quotaExceeded", method="calendars.insert")
    with pytest.raises(RateLimitedByProvider):
        writer.create_calendar(ACCOUNT, "Bookings")
    fake.fail_next(403, method="calendars.insert")
    with pytest.raises(ProviderError) as caught:
        writer.create_calendar(ACCOUNT, "Bookings")
    assert type(caught.value) is ProviderError


# --- writing events ------------------------------------------------------------------------------


def test_single_write_is_one_insert_read_back_with_tag_id_and_etag(
    fake: GoogleFake, provider: GoogleCalendarProvider, writer: CalendarWriter
) -> None:
    event = session(1, location="Room 4", description="Yoga for beginners")
    [written] = put(writer, event)
    assert statuses(fake) == [("calendar.events.insert", 200)]
    assert written.external_id == event.uid
    stored = fake.accounts[EMAIL].calendars[PRIMARY].events[event.uid].event
    assert stored["summary"] == "Session 1"
    assert stored["start"] == {"dateTime": event.start.isoformat(), "timeZone": "Europe/Berlin"}
    assert stored["end"]["dateTime"] == (START + timedelta(hours=1, minutes=45)).isoformat()
    assert (stored["location"], stored["description"]) == ("Room 4", "Yoga for beginners")
    assert (stored["transparency"], stored["status"]) == ("opaque", "confirmed")
    assert stored["extendedProperties"] == {"private": {EXPORT_PROPERTY: "session-1"}}

    changes = provider.read_changes(ACCOUNT, PRIMARY, None, {})
    assert [(r.key, r.etag) for r in changes.upserted] == [(written.external_id, written.etag)]
    assert "X-CALSYNC-EXPORT:session-1" in changes.upserted[0].ical


def test_all_day_event_has_dates_with_exclusive_end(
    fake: GoogleFake, writer: CalendarWriter
) -> None:
    day = START.date()
    event = session(2, start=None, end=None, start_date=day, end_date=day + timedelta(days=1))
    put(writer, event)
    stored = fake.accounts[EMAIL].calendars[PRIMARY].events[event.uid].event
    assert (stored["start"], stored["end"]) == (
        {"date": day.isoformat()},
        {"date": (day + timedelta(days=1)).isoformat()},
    )


def test_many_writes_go_in_batches_of_fifty_and_show_in_incremental_reads(
    fake: GoogleFake, provider: GoogleCalendarProvider, writer: CalendarWriter
) -> None:
    first = provider.read_changes(ACCOUNT, PRIMARY, None, {})
    fake.clear_log()
    written = put(writer, *(session(n) for n in range(120)))
    assert [r.status for r in fake.requests_for(BATCH)] == [200, 200, 200]
    inserts = fake.requests_for("events.insert")
    assert [sum(1 for r in inserts if r.batch == b) for b in (1, 2, 3)] == [50, 50, 20]
    assert all(r.status == 200 for r in inserts)
    assert [w.external_id for w in written] == [session(n).uid for n in range(120)]
    changes = provider.read_changes(ACCOUNT, PRIMARY, first.cursor, {})
    assert not changes.full
    assert sorted((r.key, r.etag) for r in changes.upserted) == sorted(
        (w.external_id, w.etag) for w in written
    )
    assert all("X-CALSYNC-EXPORT:session-" in r.ical for r in changes.upserted)


def test_a_retried_create_replaces_instead_of_duplicating(
    fake: GoogleFake, provider: GoogleCalendarProvider, writer: CalendarWriter
) -> None:
    [first] = put(writer, session(3))
    [again] = put(writer, session(3, title="Session 3 (renamed)"))  # the crash-retry
    assert again.external_id == first.external_id and again.etag != first.etag
    assert statuses(fake) == [
        ("calendar.events.insert", 200),
        ("calendar.events.insert", 409),
        ("calendar.events.update", 200),
    ]
    fake.clear_log()
    batch = put(writer, session(3), session(4), session(5))  # 3 exists, 4 and 5 are new
    assert [s for m, s in statuses(fake) if m != BATCH] == [409, 200, 200, 200]
    assert [r.batch for r in fake.requests if r.method != BATCH] == [1, 1, 1, None]
    assert live_ids(fake) == sorted(w.external_id for w in batch)
    upserted = provider.read_changes(ACCOUNT, PRIMARY, None, {}).upserted
    assert sorted((r.key, r.etag) for r in upserted) == sorted(
        (w.external_id, w.etag) for w in batch
    )


def test_an_externally_deleted_event_is_restored(
    fake: GoogleFake, provider: GoogleCalendarProvider, writer: CalendarWriter
) -> None:
    event = session(6)
    [written] = put(writer, event)
    fake.delete_event(EMAIL, PRIMARY, written.external_id)
    assert writer.find_event(ACCOUNT, PRIMARY, event.uid) is None
    [restored] = writer.put_events(
        ACCOUNT, PRIMARY, [EventWrite(event, external_id=written.external_id)]
    )
    assert isinstance(restored, WrittenEvent)
    assert restored.external_id == written.external_id
    assert fake.requests[-1].method == "calendar.events.update"
    assert writer.find_event(ACCOUNT, PRIMARY, event.uid) == restored
    upserted = provider.read_changes(ACCOUNT, PRIMARY, None, {}).upserted
    assert [(r.key, r.etag) for r in upserted] == [(restored.external_id, restored.etag)]


def test_an_unknown_external_id_is_created(fake: GoogleFake, writer: CalendarWriter) -> None:
    event = session(7)
    [written] = writer.put_events(ACCOUNT, PRIMARY, [EventWrite(event, external_id=event.uid)])
    assert isinstance(written, WrittenEvent)
    assert statuses(fake) == [("calendar.events.update", 404), ("calendar.events.insert", 200)]
    assert live_ids(fake) == [event.uid]


def test_a_stale_etag_is_a_stale_event(fake: GoogleFake, writer: CalendarWriter) -> None:
    event = session(8)
    [written] = put(writer, event)
    stored = fake.accounts[EMAIL].calendars[PRIMARY].events[event.uid].event
    fake.put_event(EMAIL, PRIMARY, {**stored, "summary": "moved by the owner"})
    [result] = writer.put_events(
        ACCOUNT, PRIMARY, [EventWrite(event, written.external_id, written.etag)]
    )
    assert isinstance(result, StaleEvent)
    assert fake.accounts[EMAIL].calendars[PRIMARY].events[event.uid].event["summary"] == (
        "moved by the owner"
    )
    current = writer.find_event(ACCOUNT, PRIMARY, event.uid)
    assert current is not None and current.etag != written.etag
    [updated] = writer.put_events(
        ACCOUNT, PRIMARY, [EventWrite(event, current.external_id, current.etag)]
    )
    assert isinstance(updated, WrittenEvent)
    assert fake.accounts[EMAIL].calendars[PRIMARY].events[event.uid].event["summary"] == (
        "Session 8"
    )


def test_a_rate_limited_call_in_a_batch_fails_its_item_only(
    fake: GoogleFake, writer: CalendarWriter
) -> None:
    fake.fail_next(403, reason="rateLimitExceeded", retry_after=5, method="events.insert", after=2)
    events = [session(n) for n in range(10, 15)]
    results = writer.put_events(ACCOUNT, PRIMARY, [EventWrite(e) for e in events])
    assert [type(r) for r in results] == [WrittenEvent] * 2 + [RateLimitedByProvider] + [
        WrittenEvent
    ] * 2
    limited = results[2]
    assert isinstance(limited, RateLimitedByProvider) and limited.retry_after == 5.0
    assert live_ids(fake) == sorted(e.uid for i, e in enumerate(events) if i != 2)

    fake.fail_next(429, method="events.insert")  # a lone write: no batch
    [alone] = writer.put_events(ACCOUNT, PRIMARY, [EventWrite(events[2])])
    assert isinstance(alone, RateLimitedByProvider)
    assert fake.requests[-1].batch is None


def test_a_failed_batch_fails_each_of_its_items(fake: GoogleFake, writer: CalendarWriter) -> None:
    fake.fail_next(503, method=BATCH)
    results = writer.put_events(ACCOUNT, PRIMARY, [EventWrite(session(n)) for n in (20, 21)])
    assert [type(r) for r in results] == [ProviderUnreachable, ProviderUnreachable]
    assert live_ids(fake) == []


def test_refused_credentials_in_a_batch_are_raised(
    fake: GoogleFake, writer: CalendarWriter
) -> None:
    fake.fail_next(401, method="events.insert", after=1)
    with pytest.raises(AuthRejected):
        writer.put_events(ACCOUNT, PRIMARY, [EventWrite(session(n)) for n in (22, 23)])


@pytest.mark.parametrize("external", [False, True])
@pytest.mark.parametrize("count", [1, 2])
def test_a_deleted_calendar_raises_calendar_gone(
    fake: GoogleFake, writer: CalendarWriter, external: bool, count: int
) -> None:
    calendar = writer.create_calendar(ACCOUNT, "Bookings")
    fake.remove_calendar(EMAIL, calendar.id)
    events = [session(n) for n in range(30, 30 + count)]
    writes = [EventWrite(e, external_id=e.uid if external else None) for e in events]
    with pytest.raises(CalendarGone):
        writer.put_events(ACCOUNT, calendar.id, writes)


def test_a_session_without_times_fails_its_item(fake: GoogleFake, writer: CalendarWriter) -> None:
    broken = session(40, start=datetime(2030, 1, 1, 10), end=datetime(2030, 1, 1, 11))  # naive
    results = writer.put_events(ACCOUNT, PRIMARY, [EventWrite(broken), EventWrite(session(41))])
    assert type(results[0]) is ProviderError and isinstance(results[1], WrittenEvent)
    assert live_ids(fake) == [session(41).uid]


# --- deleting and finding ------------------------------------------------------------------------


def test_deletes(
    fake: GoogleFake, provider: GoogleCalendarProvider, writer: CalendarWriter
) -> None:
    a, b, c, d = put(writer, *(session(n) for n in range(50, 54)))
    fake.delete_event(EMAIL, PRIMARY, c.external_id)  # deleted by the owner already
    results = writer.delete_events(
        ACCOUNT,
        PRIMARY,
        [
            EventDelete(a.external_id, a.etag),
            EventDelete(b.external_id),
            EventDelete(c.external_id, c.etag),
            EventDelete(f"{99:032x}"),  # never existed
            EventDelete(d.external_id, '"stale"'),
        ],
    )
    assert results[:4] == [None, None, None, None]
    assert isinstance(results[4], StaleEvent)
    assert [s for m, s in statuses(fake) if m == "calendar.events.delete"][-5:] == [
        204,
        204,
        410,
        404,
        412,
    ]
    assert live_ids(fake) == [d.external_id]
    [single] = writer.delete_events(ACCOUNT, PRIMARY, [EventDelete(d.external_id, d.etag)])
    assert single is None and fake.requests[-1].batch is None
    assert provider.read_changes(ACCOUNT, PRIMARY, None, {}).upserted == []


def test_find_event(fake: GoogleFake, writer: CalendarWriter) -> None:
    event = session(60)
    assert writer.find_event(ACCOUNT, PRIMARY, event.uid) is None
    [written] = put(writer, event)
    assert writer.find_event(ACCOUNT, PRIMARY, event.uid) == written


def test_nothing_to_do_sends_nothing(fake: GoogleFake, writer: CalendarWriter) -> None:
    assert writer.put_events(ACCOUNT, PRIMARY, []) == []
    assert writer.delete_events(ACCOUNT, PRIMARY, []) == []
    assert fake.requests == []


def test_start_is_sent_in_rfc3339_whole_seconds(fake: GoogleFake, writer: CalendarWriter) -> None:
    moment = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    put(writer, session(70, start=moment, end=moment + timedelta(hours=1), time_zone="UTC"))
    stored = fake.accounts[EMAIL].calendars[PRIMARY].events[session(70).uid].event
    assert stored["start"] == {"dateTime": "2031-05-06T07:08:09+00:00", "timeZone": "UTC"}
    assert stored["end"] == {"dateTime": "2031-05-06T08:08:09+00:00", "timeZone": "UTC"}


def test_create_with_a_key_finds_the_calendar_an_interrupted_create_made(
    fake: GoogleFake, provider: GoogleCalendarProvider, writer: CalendarWriter
) -> None:
    first = writer.create_calendar(ACCOUNT, "Bookings", key="0a1b2c3d4e5f6071")
    again = writer.create_calendar(ACCOUNT, "Bookings", key="0a1b2c3d4e5f6071")
    other = writer.create_calendar(ACCOUNT, "Bookings", key="ffffffffffffffff")
    assert again.id == first.id and other.id != first.id
    named = [c for c in provider.list_calendars(ACCOUNT) if c.name == "Bookings"]
    assert len(named) == 2
    assert [s for m, s in statuses(fake) if m == "calendar.calendars.insert"] == [200, 200]
