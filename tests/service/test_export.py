"""Export: sessions reconciled into the external calendar (FakeProvider's writer).

The provider adapters' own writers are tested against Radicale, Xandikos and the Google and
Graph fakes in tests/providers; here the reconciler's behaviour is pinned down: targets,
idempotency across crashes, external edits, deleted calendars, rate limits, disconnect.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from calsync.api.app import create_app
from calsync.providers.base import EventWrite, ProviderError, ProviderUnreachable
from calsync.service.export.event import export_uid
from calsync.service.export.writes import refusal_wait
from calsync.service.runtime import Runtime
from calsync.service.sync.run import SyncFailed, sync_connection
from calsync.store.db import transaction
from calsync.store.models import Connection, ExportedEvent, ExportTarget
from tests.api.test_external_api import EMAIL, PASSWORD, connect, ical, make_schedule
from tests.conftest import EXT, Api, new_key
from tests.fakes import FakeProvider


@pytest.fixture
def api(runtime: Runtime) -> Iterator[Api]:
    """No in-process worker: each test runs the export itself, deterministically."""
    with TestClient(create_app(runtime, worker=False)) as client:
        yield Api(client, new_key(runtime))


@pytest.fixture
def api_with_worker(runtime: Runtime) -> Iterator[Api]:
    with TestClient(create_app(runtime)) as client:
        yield Api(client, new_key(runtime))


WINDOW = {"from": "2026-12-01T00:00:00Z", "to": "2027-01-31T00:00:00Z", "fieldsets": "OWN_PI"}


@pytest.fixture
def account(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.add_account(EMAIL, PASSWORD)
    fake_provider.add_calendar(EMAIL, "home", "Home", primary=True)
    fake_provider.put(
        EMAIL, "home", "/h/1.ics", ical("own", "20261202T090000Z", "20261202T100000Z", "Dentist")
    )
    return fake_provider


def put_session(api: Api, schedule_id: str, session_id: str, **fields: Any) -> Any:
    body = {
        "title": f"Session {session_id}",
        "start": "2026-12-03T10:00:00+01:00",
        "end": "2026-12-03T11:00:00+01:00",
        "status": "CONFIRMED",
        **fields,
    }
    return api.put(f"/v1/schedules/{schedule_id}/sessions/{session_id}", body)


def setup_connection(api: Api) -> tuple[str, str]:
    schedule_id = make_schedule(api)
    connection_id = connect(api, schedule_id)["connection"]["id"]
    return schedule_id, connection_id


def export(rt: Runtime, connection_id: str) -> None:
    sync_connection(rt, connection_id, export=True)


def dedicated(rt: Runtime, connection_id: str) -> str:
    with rt.db() as session:
        target = session.get(ExportTarget, connection_id)
        assert target is not None and target.dedicated_calendar_id is not None
        return target.dedicated_calendar_id


def connection_row(rt: Runtime, connection_id: str) -> Connection:
    with rt.db() as session:
        row = session.get(Connection, connection_id)
        assert row is not None
        return row


def test_sessions_api_round_trip(api: Api) -> None:
    schedule_id = make_schedule(api)
    created = put_session(api, schedule_id, "s-1", location="Room 2")
    assert created.status_code == 200, created.text
    session = created.json()["session"]
    assert (
        session["start"] == "2026-12-03T10:00:00+01:00" and session["timeZone"] == "Europe/Berlin"
    )
    assert session["revision"] == 1 and session["location"] == "Room 2"
    same = put_session(api, schedule_id, "s-1", location="Room 2").json()["session"]
    assert same["revision"] == 1  # nothing changed: no new revision, nothing to export
    day = put_session(api, schedule_id, "s-2", allDay=True, start="2026-12-05", end="2026-12-06")
    assert day.json()["session"]["start"] == "2026-12-05"
    listed = api.get(
        f"/v1/schedules/{schedule_id}/sessions",
        params={"from": "2026-12-04T00:00:00Z", "to": "2026-12-31T00:00:00Z"},
    ).json()["sessions"]
    assert [s["id"] for s in listed] == ["s-2"]
    cancelled = api.delete(f"/v1/schedules/{schedule_id}/sessions/s-1").json()["session"]
    assert cancelled["status"] == "CANCELLED" and cancelled["revision"] == 2
    got = api.get(f"/v1/schedules/{schedule_id}/sessions/s-1").json()["session"]
    assert got["status"] == "CANCELLED"
    confirmed = api.get(
        f"/v1/schedules/{schedule_id}/sessions", params={"includeCancelled": "false"}
    ).json()["sessions"]
    assert [s["id"] for s in confirmed] == ["s-2"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"start": "2026-12-03 10:00"}, "start"),
        ({"end": "2026-12-03T09:00:00+01:00"}, "end"),
        ({"status": "MAYBE"}, "status"),
        ({"title": ""}, "title"),
        ({"timeZone": "Mars/Olympus"}, "timeZone"),
        ({"allDay": True, "start": "2026-12-05T00:00:00Z", "end": "2026-12-06"}, "start"),
        ({"allDay": True, "start": "2026-12-06", "end": "2026-12-06"}, "end"),
        ({"allDay": "yes"}, "allDay"),
        ({"start": "0001-01-01T00:30:00+01:00", "end": "0001-01-01T02:00:00+01:00"}, "start"),
        ({"allDay": True, "start": "9999-12-30", "end": "9999-12-31"}, "start"),
    ],
)
def test_bad_session_is_refused_and_changes_nothing(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    schedule_id = make_schedule(api)
    response = put_session(api, schedule_id, "s-1", **fields)
    assert response.status_code == 400, response.text
    violations = response.json()["details"]["validationError"]["fieldViolations"]
    assert field in [v["field"] for v in violations]
    assert api.get(f"/v1/schedules/{schedule_id}/sessions/s-1").status_code == 404


def test_sessions_are_listed_a_page_at_a_time(api: Api) -> None:
    schedule_id = make_schedule(api)
    # Two sessions share a start (the session id orders them), one is all-day.
    starts = {"a": "10:00", "b": "09:00", "c": "09:00", "d": "10:30"}
    for session_id, start in starts.items():
        put_session(api, schedule_id, session_id, start=f"2026-12-03T{start}:00+01:00")
    put_session(api, schedule_id, "e", allDay=True, start="2026-12-04", end="2026-12-05")
    url = f"/v1/schedules/{schedule_id}/sessions"
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2", "from": "2026-12-01T00:00:00Z"}
    for _ in range(5):
        page = api.get(url, params=params).json()
        seen += [s["id"] for s in page["sessions"]]
        if "nextCursor" not in page:
            break
        assert len(page["sessions"]) == 2
        params = {**params, "cursor": page["nextCursor"]}
    assert seen == ["b", "c", "a", "d", "e"]
    huge = base64.urlsafe_b64encode(b"9" * 40 + b":a").decode()  # no 500 from the driver
    for bad in ({"limit": "0"}, {"limit": "1001"}, {"cursor": "not a cursor!"}, {"cursor": huge}):
        response = api.get(url, params=bad)
        assert response.status_code == 400, response.text
        [violation] = response.json()["details"]["validationError"]["fieldViolations"]
        assert violation["field"] == next(iter(bad))


def test_bad_session_ids_and_unknown_schedule(api: Api) -> None:
    schedule_id = make_schedule(api)
    assert put_session(api, schedule_id, "a b").status_code == 400
    assert put_session(api, schedule_id, "x" * 129).status_code == 400
    unknown = put_session(api, "00000000-0000-4000-8000-000000000000", "s-1")
    assert unknown.status_code == 404


def test_export_into_dedicated_calendar_and_never_imported_back(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    export(runtime, connection_id)
    assert account.writer.created_calendars == []  # nothing to export yet: no calendar
    put_session(api, schedule_id, "s-1")
    put_session(api, schedule_id, "s-2", allDay=True, start="2026-12-05", end="2026-12-07")
    put_session(api, schedule_id, "s-3", status="CANCELLED")
    export(runtime, connection_id)
    calendar_id = dedicated(runtime, connection_id)
    assert account.accounts[EMAIL].calendars[calendar_id].name == "Bookings"
    events = account.writer.exported(EMAIL, calendar_id)
    assert len(events) == 2
    assert any("DTSTART;VALUE=DATE:20261205" in r.ical for r in events.values())
    assert any("DTSTART:20261203T090000Z" in r.ical for r in events.values())
    # Import the dedicated calendar too: the exported sessions are not busy time.
    body = {
        "syncConfig": {
            "listEventFromCalendars": {
                "enabled": True,
                "calendars": {"calendars": [{"id": "home"}, {"id": calendar_id}]},
            }
        }
    }
    response = api.patch(f"{EXT}/connections/{connection_id}/sync-config", body)
    assert response.status_code == 200, response.text
    export(runtime, connection_id)
    titles = [e["title"] for e in api.get(f"{EXT}/events", params=WINDOW).json()["events"]]
    assert titles == ["Dentist"]
    # Nothing changed: nothing is written again.
    before = list(account.writer.batches)
    export(runtime, connection_id)
    assert account.writer.batches == before


def test_only_changed_sessions_are_rewritten_and_cancel_deletes(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    for n in range(3):
        put_session(api, schedule_id, f"s-{n}")
    export(runtime, connection_id)
    calendar_id = dedicated(runtime, connection_id)
    put_session(
        api,
        schedule_id,
        "s-1",
        title="Moved",
        start="2026-12-04T10:00:00+01:00",
        end="2026-12-04T11:00:00+01:00",
    )
    api.delete(f"/v1/schedules/{schedule_id}/sessions/s-2")
    batches = len(account.writer.batches)
    export(runtime, connection_id)
    assert account.writer.batches[batches:] == [1]
    events = account.writer.exported(EMAIL, calendar_id)
    assert len(events) == 2
    assert any("SUMMARY:Moved" in r.ical and "20261204T090000Z" in r.ical for r in events.values())


def test_external_delete_and_edit_are_put_back(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1", title="Keep me")
    put_session(api, schedule_id, "s-2", title="Do not move")
    export(runtime, connection_id)
    calendar_id = dedicated(runtime, connection_id)
    export(runtime, connection_id)  # the edit watch starts from here
    events = account.writer.exported(EMAIL, calendar_id)
    deleted_key, moved_key = sorted(events, key=lambda k: "Keep me" not in events[k].ical)
    account.delete(EMAIL, calendar_id, deleted_key)
    moved = events[moved_key].ical.replace("20261203T090000Z", "20261210T090000Z")
    account.put(EMAIL, calendar_id, moved_key, moved)
    export(runtime, connection_id)
    after = account.writer.exported(EMAIL, calendar_id)
    assert set(after) == {deleted_key, moved_key}
    assert "20261203T090000Z" in after[moved_key].ical
    assert "SUMMARY:Keep me" in after[deleted_key].ical
    with runtime.db() as session:
        target = session.get(ExportTarget, connection_id)
        assert target is not None and target.external_edits == 2
    report = api.get(f"/v1/connections/{connection_id}/sync").json()["sync"]["export"]
    assert report["target"] == "dedicated" and report["calendarId"] == calendar_id
    assert report["exportedEvents"] == 2 and report["pendingWrites"] == 0
    assert report["externalEditsRestored"] == 2 and report["calendarCreatedByCalsync"] is True


def test_an_event_the_provider_refuses_waits_before_it_is_written_again(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    """A refusal of one event (a 400 for it, not an outage) does not stop the others, and the
    event is not written again on every run: it waits 15 minutes, then 30, ..., unless its
    session changes. Once accepted, its refusals are forgotten."""
    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "ok", title="Fine")
    put_session(
        api,
        schedule_id,
        "bad",
        title="Refused",
        start="2026-12-03T12:00:00+01:00",
        end="2026-12-03T13:00:00+01:00",
    )
    account.writer.refuse_titles = {
        "Refused": ProviderError("400 Bad Request: the event was refused"),
        "Fine": ProviderUnreachable("503 Service Unavailable"),  # this item's hiccup
    }
    export(runtime, connection_id)
    sync = api.get(f"/v1/connections/{connection_id}/sync").json()["sync"]
    assert "session bad: 400 Bad Request" in sync["lastError"]
    assert "session ok: 503 Service Unavailable" in sync["lastError"]
    assert connection_row(runtime, connection_id).status == "SYNCED"
    ok_uid, bad_uid = export_uid(connection_id, "ok"), export_uid(connection_id, "bad")
    assert account.writer.attempts[ok_uid] == account.writer.attempts[bad_uid] == 1
    del account.writer.refuse_titles["Fine"]  # an outage of one item is tried again next run
    export(runtime, connection_id)
    assert account.writer.attempts[ok_uid] == 2
    assert account.writer.attempts[bad_uid] == 1  # the refused one waits
    calendar_id = dedicated(runtime, connection_id)
    assert [
        r.ical.count("SUMMARY:Fine") for r in account.writer.exported(EMAIL, calendar_id).values()
    ] == [1]
    sync = api.get(f"/v1/connections/{connection_id}/sync").json()["sync"]
    assert sync["export"]["refusedWrites"] == 1 and sync["export"]["exportedEvents"] == 1
    assert sync["export"]["pendingWrites"] == 0
    assert "1 session(s) the provider refused wait to be written again" in sync["lastError"]

    def mapping() -> ExportedEvent:
        with runtime.db() as session:
            m = session.get(ExportedEvent, (connection_id, "bad"))
            assert m is not None
            return m

    first = mapping()
    assert first.refusals == 1 and first.retry_at is not None
    wait = first.retry_at - datetime.now(UTC)
    assert timedelta(minutes=14) < wait <= timedelta(minutes=15)

    export(runtime, connection_id)  # another run within the wait does not write it either
    assert account.writer.attempts[bad_uid] == 1

    # A changed session is tried at once; refused again, it waits twice as long.
    put_session(
        api,
        schedule_id,
        "bad",
        title="Refused",
        start="2026-12-03T14:00:00+01:00",
        end="2026-12-03T15:00:00+01:00",
    )
    export(runtime, connection_id)
    assert account.writer.attempts[bad_uid] == 2
    second = mapping()
    assert second.refusals == 2 and second.retry_at is not None
    assert timedelta(minutes=29) < second.retry_at - datetime.now(UTC) <= timedelta(minutes=30)

    # When the wait is over it is tried again; accepted, the refusals are forgotten.
    with transaction(runtime.db) as session:
        stored = session.get(ExportedEvent, (connection_id, "bad"))
        assert stored is not None
        stored.retry_at = datetime.now(UTC) - timedelta(seconds=1)
    account.writer.refuse_titles = {}
    export(runtime, connection_id)
    assert account.writer.attempts[bad_uid] == 3
    done = mapping()
    assert (done.refusals, done.retry_at, done.refused_revision) == (0, None, None)
    sync = api.get(f"/v1/connections/{connection_id}/sync").json()["sync"]
    assert sync["export"]["refusedWrites"] == 0 and sync["export"]["exportedEvents"] == 2
    assert sync["lastError"] is None
    summaries = sorted(
        "Fine" if "SUMMARY:Fine" in r.ical else "Refused"
        for r in account.writer.exported(EMAIL, calendar_id).values()
    )
    assert summaries == ["Fine", "Refused"]


def test_the_wait_after_refusals_doubles_up_to_a_day() -> None:
    waits = [refusal_wait(n) for n in (1, 2, 3, 7, 8, 1000)]
    assert waits[:3] == [timedelta(minutes=15), timedelta(minutes=30), timedelta(hours=1)]
    assert waits[3] == timedelta(hours=16)
    assert waits[4] == waits[5] == timedelta(hours=24)


class Crash(Exception):
    pass


def test_crash_between_write_and_commit_never_duplicates(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    for n in range(25):
        put_session(api, schedule_id, f"s-{n:02d}")
    writes: list[EventWrite] = []

    def crash_on_the_twelfth(write: EventWrite) -> None:
        writes.append(write)
        if len(writes) == 12:
            raise Crash("worker killed after the external write")

    account.writer.after_write = crash_on_the_twelfth
    with pytest.raises(Crash):
        export(runtime, connection_id)
    account.writer.after_write = None
    export(runtime, connection_id)
    calendar_id = dedicated(runtime, connection_id)
    events = account.writer.exported(EMAIL, calendar_id)
    assert len(events) == 25
    with runtime.db() as session:
        rows = session.scalars(
            select(ExportedEvent).where(ExportedEvent.connection_id == connection_id)
        ).all()
        assert len(rows) == 25 and all(r.external_id in events for r in rows)


def test_burst_of_1000_sessions_is_batched_without_duplicates(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    for n in range(1000):
        day, hour = divmod(n, 10)
        start = f"2027-01-{1 + day % 28:02d}T{8 + hour:02d}:{(day // 28) * 10:02d}:00Z"
        end = f"2027-01-{1 + day % 28:02d}T{8 + hour:02d}:{(day // 28) * 10 + 5:02d}:00Z"
        assert put_session(api, schedule_id, f"b-{n}", start=start, end=end).status_code == 200
    account.writer.rate_limit_next = 0
    export(runtime, connection_id)
    calendar_id = dedicated(runtime, connection_id)
    assert len(account.writer.exported(EMAIL, calendar_id)) == 1000
    assert max(account.writer.batches) == account.writer.max_batch
    assert sum(account.writer.batches) == 1000


def test_rate_limit_backs_off_keeps_progress_and_finishes_later(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    for n in range(30):
        put_session(api, schedule_id, f"s-{n:02d}")
    export(runtime, connection_id)  # creates the calendar and everything
    for n in range(30, 60):
        put_session(api, schedule_id, f"s-{n:02d}")
    account.writer.rate_limit_next = 3
    with pytest.raises(SyncFailed):
        export(runtime, connection_id)
    row = connection_row(runtime, connection_id)
    assert row.failure_count == 1 and row.status != "ERROR"
    calendar_id = dedicated(runtime, connection_id)
    assert 30 <= len(account.writer.exported(EMAIL, calendar_id)) < 60
    export(runtime, connection_id)
    assert len(account.writer.exported(EMAIL, calendar_id)) == 60


def test_an_import_only_sync_does_not_cut_an_export_backoff_short(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1")
    account.writer.rate_limit_next = 1
    with pytest.raises(SyncFailed):
        export(runtime, connection_id)
    backing_off = connection_row(runtime, connection_id)
    assert backing_off.failure_count == 1 and backing_off.next_sync_at > datetime.now(UTC)
    sync_connection(runtime, connection_id)  # List Events freshening: imports, succeeds
    after = connection_row(runtime, connection_id)
    assert after.status == "SYNCED" and after.last_synced_at is not None
    assert after.next_sync_at == backing_off.next_sync_at  # not due at once
    export(runtime, connection_id)  # the worker, once the backoff is over
    assert len(account.writer.exported(EMAIL, dedicated(runtime, connection_id))) == 1
    assert connection_row(runtime, connection_id).next_sync_at > datetime.now(UTC)


def test_deleted_dedicated_calendar_is_reported_then_repaired_by_new_config(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1")
    export(runtime, connection_id)
    old = dedicated(runtime, connection_id)
    del account.accounts[EMAIL].calendars[old]
    put_session(api, schedule_id, "s-2")
    export(runtime, connection_id)
    connection = api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
    assert connection["status"] == "ERROR"
    assert connection["errorReason"] == "EXTERNAL_CALENDAR_DELETED"
    export(runtime, connection_id)  # stays put: nothing is recreated behind the user's back
    assert len(account.writer.created_calendars) == 1
    body = {"syncConfig": {"syncToCalendar": {"enabled": True, "dedicatedCalendar": {}}}}
    assert api.patch(f"{EXT}/connections/{connection_id}/sync-config", body).status_code == 200
    export(runtime, connection_id)
    new = dedicated(runtime, connection_id)
    assert new != old and len(account.writer.exported(EMAIL, new)) == 2
    connection = api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
    assert connection["status"] == "SYNCED"


def test_deleted_dedicated_calendar_recreated_when_configured(
    make_runtime: Any, fake_provider: FakeProvider
) -> None:
    fake_provider.add_account(EMAIL, PASSWORD)
    fake_provider.add_calendar(EMAIL, "home", "Home", primary=True)
    rt = make_runtime(
        adapter_factory=lambda _c: fake_provider, export_recreate_deleted_calendar=True
    )
    with TestClient(create_app(rt, worker=False)) as client:
        api = Api(client, new_key(rt))
        schedule_id, connection_id = setup_connection(api)
        put_session(api, schedule_id, "s-1")
        export(rt, connection_id)
        old = dedicated(rt, connection_id)
        del fake_provider.accounts[EMAIL].calendars[old]
        put_session(api, schedule_id, "s-2")
        export(rt, connection_id)
        new = dedicated(rt, connection_id)
        assert new != old and len(fake_provider.writer.exported(EMAIL, new)) == 2
        connection = api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
        assert connection["status"] == "SYNCED"


def test_calendar_creation_failure_is_reported(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    account.writer.fail_calendar_creation = True
    put_session(api, schedule_id, "s-1")
    export(runtime, connection_id)
    connection = api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
    assert connection["status"] == "ERROR"
    assert connection["errorReason"] == "EXTERNAL_CALENDAR_CREATION_FAILED"


def test_turning_export_off_and_switching_target_remove_old_events(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1")
    export(runtime, connection_id)
    calendar_id = dedicated(runtime, connection_id)
    assert len(account.writer.exported(EMAIL, calendar_id)) == 1
    body = {"syncConfig": {"syncToCalendar": {"enabled": False}}}
    assert api.patch(f"{EXT}/connections/{connection_id}/sync-config", body).status_code == 200
    export(runtime, connection_id)
    assert account.writer.exported(EMAIL, calendar_id) == {}
    body = {"syncConfig": {"syncToCalendar": {"enabled": True, "dedicatedCalendar": {}}}}
    assert api.patch(f"{EXT}/connections/{connection_id}/sync-config", body).status_code == 200
    export(runtime, connection_id)
    assert dedicated(runtime, connection_id) == calendar_id  # the same calendar is reused
    assert len(account.writer.exported(EMAIL, calendar_id)) == 1


def wait_for(predicate: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_disconnect_removes_exported_events_and_our_empty_calendar(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1")
    export(runtime, connection_id)
    calendar_id = dedicated(runtime, connection_id)
    assert api.post(f"{EXT}/connections/{connection_id}/disconnect").status_code == 200
    wait_for(lambda: calendar_id not in account.accounts[EMAIL].calendars)
    with runtime.db() as session:
        left = session.scalar(select(func.count()).select_from(ExportedEvent))
        assert left == 0


def test_disconnect_keeps_a_dedicated_calendar_holding_the_owners_events(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1")
    export(runtime, connection_id)
    calendar_id = dedicated(runtime, connection_id)
    account.put(
        EMAIL,
        calendar_id,
        "/mine.ics",
        ical("mine", "20261209T090000Z", "20261209T100000Z", "Mine"),
    )
    assert api.post(f"{EXT}/connections/{connection_id}/disconnect").status_code == 200
    wait_for(lambda: account.writer.exported(EMAIL, calendar_id) == {})
    time.sleep(0.2)
    assert calendar_id in account.accounts[EMAIL].calendars
    assert "/mine.ics" in account.accounts[EMAIL].calendars[calendar_id].resources


def test_worker_exports_a_confirmed_session_within_five_seconds(
    api_with_worker: Api, runtime: Runtime, account: FakeProvider
) -> None:
    api = api_with_worker
    schedule_id, connection_id = setup_connection(api)
    wait_for(lambda: connection_row(runtime, connection_id).status == "SYNCED")
    started = time.monotonic()
    put_session(api, schedule_id, "fast")

    def exported() -> bool:
        with runtime.db() as session:
            target = session.get(ExportTarget, connection_id)
            calendar_id = target.dedicated_calendar_id if target else None
        return bool(calendar_id and account.writer.exported(EMAIL, calendar_id))

    wait_for(exported, seconds=5)
    assert time.monotonic() - started < 5


def test_session_moved_beyond_the_horizon_moves_its_event(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1")
    export(runtime, connection_id)
    calendar_id = dedicated(runtime, connection_id)
    far = {"start": "2031-06-01T10:00:00+02:00", "end": "2031-06-01T11:00:00+02:00"}
    put_session(api, schedule_id, "s-1", **far)
    export(runtime, connection_id)
    [event] = account.writer.exported(EMAIL, calendar_id).values()
    assert "DTSTART:20310601T080000Z" in event.ical


def test_export_runs_are_counted_in_metrics(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1")
    put_session(api, schedule_id, "s-2")
    export(runtime, connection_id)
    api.delete(f"/v1/schedules/{schedule_id}/sessions/s-2")
    export(runtime, connection_id)
    text = runtime.metrics.render().decode()
    written = [line for line in text.splitlines() if line.startswith("calsync_export_events_total")]
    assert any('action="written"' in line and line.endswith(" 2.0") for line in written), written
    assert any('action="deleted"' in line and line.endswith(" 1.0") for line in written), written


def test_disconnect_clean_up_survives_a_crash_and_an_outage(
    api: Api, runtime: Runtime, account: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from calsync.service.connections import retire
    from calsync.store.models import PendingRetirement

    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1")
    export(runtime, connection_id)
    calendar_id = dedicated(runtime, connection_id)
    # The process dies right after Disconnect commits: the clean-up job never runs.
    monkeypatch.setattr(retire, "retire_later", lambda rt, connection_id: None)
    monkeypatch.setattr("calsync.service.connections.manage.retire_later", lambda rt, cid: None)
    assert api.post(f"{EXT}/connections/{connection_id}/disconnect").status_code == 200
    with runtime.db() as session:
        pending = session.get(PendingRetirement, connection_id)
        assert pending is not None and pending.secret is not None  # sealed, kept for the job
    monkeypatch.undo()
    # The next worker tick finds it; the provider is down, so it is retried later.
    account.unreachable = True
    retire.retire_pending(runtime, connection_id)
    assert len(account.writer.exported(EMAIL, calendar_id)) == 1
    with runtime.db() as session:
        pending = session.get(PendingRetirement, connection_id)
        assert pending is not None and pending.attempts == 1
        pending_at = pending.next_attempt_at
    assert retire.retire_due(runtime) == 0  # backing off
    account.unreachable = False
    with transaction(runtime.db) as session:
        row = session.get(PendingRetirement, connection_id)
        assert row is not None and row.next_attempt_at == pending_at
        row.next_attempt_at = row.created_at  # the backoff is over
    assert retire.retire_due(runtime) == 1
    wait_for(lambda: calendar_id not in account.accounts[EMAIL].calendars)
    wait_for(lambda: _pending(runtime, connection_id) is None)


def _pending(rt: Runtime, connection_id: str) -> object:
    from calsync.store.models import PendingRetirement

    with rt.db() as session:
        return session.get(PendingRetirement, connection_id)


def test_a_session_changed_during_an_export_is_exported_next_not_after_the_poll(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1")
    changed: list[bool] = []

    def change_during_the_run(write: EventWrite) -> None:
        if not changed:
            changed.append(True)
            put_session(api, schedule_id, "s-2")

    account.writer.after_write = change_during_the_run
    export(runtime, connection_id)
    account.writer.after_write = None
    row = connection_row(runtime, connection_id)
    assert row.next_sync_at <= datetime.now(UTC)  # due again at once, not in 5 minutes
    export(runtime, connection_id)
    assert len(account.writer.exported(EMAIL, dedicated(runtime, connection_id))) == 2


def test_a_new_config_during_a_blocked_run_is_not_lost(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1")
    export(runtime, connection_id)
    del account.accounts[EMAIL].calendars[dedicated(runtime, connection_id)]
    put_session(api, schedule_id, "s-2")
    body = {"syncConfig": {"syncToCalendar": {"enabled": True, "dedicatedCalendar": {}}}}
    original = account.read_changes

    def config_changes_meanwhile(*args: Any) -> Any:
        if account.writer.created_calendars and args[1] not in ("home",):
            account.read_changes = original  # type: ignore[method-assign]
            response = api.patch(f"{EXT}/connections/{connection_id}/sync-config", body)
            assert response.status_code == 200
        return original(*args)

    account.read_changes = config_changes_meanwhile  # type: ignore[method-assign]
    export(runtime, connection_id)  # finds the calendar deleted, while the user picks again
    account.read_changes = original  # type: ignore[method-assign]
    connection = api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
    assert connection["errorReason"] == "UNDEFINED", connection
    export(runtime, connection_id)
    assert len(account.writer.exported(EMAIL, dedicated(runtime, connection_id))) == 2


def test_crash_after_creating_the_dedicated_calendar_leaves_no_second_one(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1")
    real_create = account.writer.create_calendar

    def create_then_crash(*args: Any, **kwargs: Any) -> Any:
        real_create(*args, **kwargs)
        raise Crash("worker killed before the calendar was recorded")

    account.writer.create_calendar = create_then_crash
    with pytest.raises(Crash):
        export(runtime, connection_id)
    account.writer.create_calendar = real_create
    export(runtime, connection_id)
    named = [c for c in account.accounts[EMAIL].calendars.values() if c.name == "Bookings"]
    assert len(named) == 1
    assert len(account.writer.exported(EMAIL, dedicated(runtime, connection_id))) == 1


def test_disconnect_keeps_retrying_deletes_that_failed(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    from calsync.service.connections import retire

    schedule_id, connection_id = setup_connection(api)
    put_session(api, schedule_id, "s-1")
    export(runtime, connection_id)
    calendar_id = dedicated(runtime, connection_id)
    account.writer.fail_deletes = True
    assert api.post(f"{EXT}/connections/{connection_id}/disconnect").status_code == 200
    wait_for(lambda: _failed_once(runtime, connection_id))
    assert len(account.writer.exported(EMAIL, calendar_id)) == 1  # still there, not forgotten
    assert _pending(runtime, connection_id) is not None
    account.writer.fail_deletes = False
    with transaction(runtime.db) as session:
        from calsync.store.models import PendingRetirement

        row = session.get(PendingRetirement, connection_id)
        assert row is not None
        row.next_attempt_at = row.created_at  # the backoff is over
    retire.retire_pending(runtime, connection_id)
    assert calendar_id not in account.accounts[EMAIL].calendars  # emptied, then removed
    assert _pending(runtime, connection_id) is None


def _failed_once(rt: Runtime, connection_id: str) -> bool:
    """The first clean-up job has run and failed: it set a retry time (seconds ahead), not
    the claim's hold (two lease times ahead)."""
    from calsync.store.models import PendingRetirement

    with rt.db() as session:
        row = session.get(PendingRetirement, connection_id)
        soon = datetime.now(UTC) + timedelta(seconds=rt.settings.lease_seconds)
        return row is not None and row.attempts == 1 and row.next_attempt_at < soon


def test_an_import_only_sync_leaves_pending_export_work_due(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    """List Events freshens a connection without exporting; a session waiting to be exported
    keeps the connection due for the worker instead of waiting for the next poll."""
    schedule_id, connection_id = setup_connection(api)
    export(runtime, connection_id)
    put_session(api, schedule_id, "s-1")
    sync_connection(runtime, connection_id)  # what List Events does
    assert connection_row(runtime, connection_id).next_sync_at <= datetime.now(UTC)
    export(runtime, connection_id)
    assert len(account.writer.exported(EMAIL, dedicated(runtime, connection_id))) == 1
    assert connection_row(runtime, connection_id).next_sync_at > datetime.now(UTC)
