"""List Events: window semantics, filters, paging, cursors, partial failure, all-day events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import create_engine

from calsync.service.access.auth import key_cache
from calsync.service.runtime import Runtime
from calsync.store.instances import page
from tests.api.test_external_api import (
    EMAIL,
    PASSWORD,
    connect,
    ical,
    import_calendars,
    make_schedule,
)
from tests.conftest import EXT, FAKE_PROVIDER_ID, Api, new_key, random_guid, settle
from tests.fakes import FakeProvider

WINDOW = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-31T00:00:00Z"}

ALL_DAY = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
DTSTART;VALUE=DATE:{start}
DTEND;VALUE=DATE:{end}
SUMMARY:Holiday
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture
def busy(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.add_account(EMAIL, PASSWORD)
    fake_provider.add_calendar(EMAIL, "home", "Home", primary=True)
    for day in range(1, 8):
        fake_provider.put(
            EMAIL,
            "home",
            f"/h/{day}.ics",
            ical(f"d{day}", f"202612{day:02d}T090000Z", f"202612{day:02d}T100000Z", f"Day {day}"),
        )
    return fake_provider


def titles(response_json: dict) -> list[str]:  # type: ignore[type-arg]
    return [e["title"] for e in response_json["events"]]


def test_paging_visits_every_event_once(api: Api, busy: FakeProvider) -> None:
    schedule_id = make_schedule(api)
    connect(api, schedule_id)
    page = api.get(
        f"{EXT}/events", params={**WINDOW, "fieldsets": "OWN_PI", "cursorPaging.limit": "3"}
    ).json()
    seen = titles(page)
    assert page["pagingMetadata"]["count"] == 3 and page["pagingMetadata"]["hasNext"] is True
    while page["pagingMetadata"]["hasNext"]:
        cursor = page["pagingMetadata"]["cursors"]["next"]
        page = api.get(
            f"{EXT}/events", params={"cursorPaging.cursor": cursor, "cursorPaging.limit": "3"}
        ).json()
        seen += titles(page)
    assert seen == [f"Day {d}" for d in range(1, 8)]
    assert page["pagingMetadata"]["cursors"] == {}


def test_window_is_half_open_overlap(api: Api, busy: FakeProvider) -> None:
    connect(api, make_schedule(api))

    def window(start: str, end: str) -> list[str]:
        return titles(
            api.get(
                f"{EXT}/events", params={"from": start, "to": end, "fieldsets": "OWN_PI"}
            ).json()
        )

    assert window("2026-12-02T10:00:00Z", "2026-12-03T09:00:00Z") == []
    assert window("2026-12-02T09:59:59Z", "2026-12-03T09:00:01Z") == ["Day 2", "Day 3"]
    assert window("2026-12-02T09:30:00+01:00", "2026-12-02T10:30:00+01:00") == ["Day 2"]


def test_filters_combine_with_and(api: Api, runtime: Runtime, busy: FakeProvider) -> None:
    owner = random_guid()
    mine = make_schedule(api, owner)
    connect(api, mine)
    other = make_schedule(api)
    params = {**WINDOW}
    assert (
        len(api.get(f"{EXT}/events", params={**params, "scheduleIds": mine}).json()["events"]) == 7
    )
    assert api.get(f"{EXT}/events", params={**params, "scheduleIds": other}).json()["events"] == []
    assert len(api.get(f"{EXT}/events", params={**params, "userIds": owner}).json()["events"]) == 7
    both = {**params, "userIds": owner, "scheduleIds": other}
    assert api.get(f"{EXT}/events", params=both).json()["events"] == []
    assert api.get(f"{EXT}/events", params={**params, "allDay": "true"}).json()["events"] == []
    assert len(api.get(f"{EXT}/events", params={**params, "allDay": "false"}).json()["events"]) == 7


def test_all_day_events_at_local_midnight(api: Api, fake_provider: FakeProvider) -> None:
    fake_provider.add_account(EMAIL, PASSWORD)
    fake_provider.add_calendar(EMAIL, "home", "Home", primary=True)
    fake_provider.put(
        EMAIL, "home", "/h/x.ics", ALL_DAY.format(uid="x", start="20261224", end="20261226")
    )
    schedule_id = make_schedule(api, tz="America/New_York")
    connect(api, schedule_id)
    events = api.get(f"{EXT}/events", params={**WINDOW, "allDay": "true"}).json()["events"]
    assert [(e["start"], e["end"], e["allDay"]) for e in events] == [
        ("2026-12-24T00:00:00.000-05:00", "2026-12-26T00:00:00.000-05:00", True)
    ]
    assert events[0]["allDay"] is True  # a JSON boolean, not SQLite's 1
    # 23 Dec 23:00 in New York is 24 Dec 04:00Z: a window ending then must not see it...
    before = {"from": "2026-12-23T00:00:00Z", "to": "2026-12-24T04:00:00Z"}
    assert api.get(f"{EXT}/events", params=before).json()["events"] == []
    # ...and one ending a second later must.
    assert (
        len(
            api.get(f"{EXT}/events", params={**before, "to": "2026-12-24T05:00:01Z"}).json()[
                "events"
            ]
        )
        == 1
    )
    # Moving the schedule to Berlin moves the day.
    body = {
        "ownerName": "Ada",
        "timeZone": "Europe/Berlin",
        "ownerUserId": api.get(f"/v1/schedules/{schedule_id}")
        .json()["schedule"]
        .get("ownerUserId"),
    }
    assert api.put(f"/v1/schedules/{schedule_id}", body).status_code == 200
    events = api.get(f"{EXT}/events", params={**WINDOW, "allDay": "true"}).json()["events"]
    assert events[0]["start"] == "2026-12-24T00:00:00.000+01:00"
    assert (
        len(
            api.get(f"{EXT}/events", params={**before, "to": "2026-12-23T23:00:01Z"}).json()[
                "events"
            ]
        )
        == 1
    )


def test_partial_failure(api: Api, runtime: Runtime, busy: FakeProvider) -> None:
    connect(api, make_schedule(api))
    busy.unreachable = True
    runtime.settings.freshness_seconds = 0  # every call re-reads the provider
    strict = api.get(f"{EXT}/events", params=WINDOW)
    assert strict.status_code == 503
    assert strict.json()["details"]["applicationError"]["data"]["failedProviderIds"] == [
        FAKE_PROVIDER_ID
    ]
    # With partial results allowed but every connection failing, it still fails.
    assert api.get(f"{EXT}/events", params={**WINDOW, "partialFailure": "true"}).status_code == 503
    busy.unreachable = False
    ok = api.get(f"{EXT}/events", params={**WINDOW, "partialFailure": "true"}).json()
    assert len(ok["events"]) == 7 and ok["failedProviderIds"] == []


def test_partial_failure_returns_the_readable_connections(
    api: Api, runtime: Runtime, busy: FakeProvider
) -> None:
    good = connect(api, make_schedule(api))["connection"]["id"]
    busy.add_account("bob@example.com", "pw-b")
    busy.add_calendar("bob@example.com", "cal", "Bob", primary=True)
    body = {
        "scheduleId": make_schedule(api),
        "providerId": FAKE_PROVIDER_ID,
        "email": "bob@example.com",
        "password": "pw-b",
    }
    bad = api.post(f"{EXT}/connections:connectByCredentials", body).json()["connection"]["id"]
    assert api.get(f"{EXT}/events", params=WINDOW).status_code == 200
    busy.accounts["bob@example.com"].password = "revoked"
    api.get(f"{EXT}/connections/{bad}/calendars")  # discovers the refusal: ERROR/TOKEN_REVOKED
    partial = api.get(f"{EXT}/events", params={**WINDOW, "partialFailure": "true"}).json()
    assert len(partial["events"]) == 7
    assert partial["failedProviderIds"] == [FAKE_PROVIDER_ID]
    assert good != bad


def test_cursor_is_tamper_proof_and_tenant_bound(
    api: Api, runtime: Runtime, busy: FakeProvider
) -> None:
    connect(api, make_schedule(api))
    page = api.get(f"{EXT}/events", params={**WINDOW, "cursorPaging.limit": "2"}).json()
    cursor = page["pagingMetadata"]["cursors"]["next"]
    body, mac = cursor.split(".")
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac
    for bad in (forged, "garbage", cursor + "x"):
        response = api.get(f"{EXT}/events", params={"cursorPaging.cursor": bad})
        assert response.status_code == 400
        field = response.json()["details"]["validationError"]["fieldViolations"][0]["field"]
        assert field == "cursorPaging.cursor"
    other = new_key(runtime, tenant="site-two")
    foreign = api.get(f"{EXT}/events", params={"cursorPaging.cursor": cursor}, key=other)
    assert foreign.status_code == 400


@pytest.mark.parametrize(
    ("params", "field", "rule"),
    [
        ({}, "from", "REQUIRED_FIELD"),
        ({"from": "2026-12-01T00:00:00Z"}, "to", "REQUIRED_FIELD"),
        ({**WINDOW, "from": "2026-12-01"}, "from", "FORMAT"),
        ({**WINDOW, "to": "2026-12-01T00:00Z"}, "to", "FORMAT"),
        ({**WINDOW, "from": "2026-12-31T00:00:00Z"}, "to", "OTHER"),
        ({**WINDOW, "scheduleIds": "not-a-guid"}, "scheduleIds[0]", "FORMAT"),
        ({**WINDOW, "userIds": "1234"}, "userIds[0]", "FORMAT"),
        ({**WINDOW, "cursorPaging.limit": "0"}, "cursorPaging.limit", "MIN"),
        ({**WINDOW, "cursorPaging.limit": "1001"}, "cursorPaging.limit", "MAX"),
        ({**WINDOW, "cursorPaging.limit": "ten"}, "cursorPaging.limit", "FORMAT"),
        ({**WINDOW, "allDay": "maybe"}, "allDay", "FORMAT"),
        ({**WINDOW, "fieldsets": "ALL_PI"}, "fieldsets[0]", "ONEOF"),
        ({**WINDOW, "partialFailure": "yes"}, "partialFailure", "FORMAT"),
    ],
)
def test_bad_query_is_400(api: Api, params: dict, field: str, rule: str) -> None:  # type: ignore[type-arg]
    response = api.get(f"{EXT}/events", params=params)
    assert response.status_code == 400, response.text
    violations = response.json()["details"]["validationError"]["fieldViolations"]
    assert (violations[0]["field"], violations[0]["violatedRule"]) == (field, rule)
    assert violations[0]["ruleName"] == "VALIDATION_ERROR"
    assert "applicationError" not in response.json()["details"]


def test_too_many_ids_and_long_query(api: Api) -> None:
    ids = [random_guid() for _ in range(101)]
    response = api.get(f"{EXT}/events", params={**WINDOW, "scheduleIds": ids})
    assert response.status_code == 400
    assert response.json()["details"]["validationError"]["fieldViolations"][0]["rule" + "Name"]
    ok = api.get(
        f"{EXT}/events", params={**WINDOW, "scheduleIds": ids[:100], "userIds": ids[1:101]}
    )
    assert ok.status_code == 200


def _where_the_store_is_read(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, bool]]:
    """List Events' reads of the store: ("loop" or "thread", whether through the loop's
    engine), a run of the same kind recorded once.

    The key cache keeps entries for an hour here and starts empty: the loop path needs a
    cached key, and a 5 s entry could lapse between two calls on a slow machine. The next
    call fills it (in a thread) and is not recorded by the callers' checks below."""
    monkeypatch.setattr(key_cache, "ttl", 3600.0)
    key_cache.clear()
    seen: list[tuple[str, bool]] = []
    real = page.reading

    def spy(engine: Any) -> Any:
        try:
            asyncio.get_running_loop()
            where = "loop"
        except RuntimeError:  # a worker thread has no running loop
            where = "thread"
        if not seen or seen[-1] != (where, engine is runtime.loop_engine):
            seen.append((where, engine is runtime.loop_engine))
        return real(engine)

    monkeypatch.setattr(page, "reading", spy)
    return seen


def test_a_store_page_is_read_on_the_event_loop_on_sqlite_only(
    api: Api, runtime: Runtime, busy: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the common call (every connection fresh, the window stored) is read on the
    event loop with its own connection; a call that must sync first goes on in a thread. On
    PostgreSQL every call runs in a thread."""
    connect(api, make_schedule(api))
    params = {**WINDOW, "fieldsets": "OWN_PI"}
    seen = _where_the_store_is_read(runtime, monkeypatch)
    assert len(api.get(f"{EXT}/events", params=params).json()["events"]) == 7  # caches the key
    seen.clear()
    sqlite = runtime.engine.dialect.name == "sqlite"
    assert (runtime.loop_engine is not None) == sqlite

    assert len(api.get(f"{EXT}/events", params=params).json()["events"]) == 7
    assert seen == ([("loop", True)] if sqlite else [("thread", False)])

    seen.clear()
    runtime.settings.freshness_seconds = 0  # stale: answered from the store all the same
    busy.put(EMAIL, "home", "/h/8.ics", ical("d8", "20261208T090000Z", "20261208T100000Z", "New"))
    page = api.get(f"{EXT}/events", params=params).json()
    assert "New" not in titles(page) and len(page["events"]) == 7
    assert seen == ([("loop", True)] if sqlite else [("thread", False)])
    assert settle(runtime) == 1  # ... and refreshed behind the answer
    page = api.get(f"{EXT}/events", params=params).json()
    assert "New" in titles(page) and len(page["events"]) == 8


@pytest.mark.parametrize("failure", ["cannot open", "query interrupted"])
def test_a_failing_loop_connection_hands_the_call_to_a_thread(
    api: Api,
    runtime: Runtime,
    busy: FakeProvider,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    """If the loop's own connection cannot read, as when the database stays locked longer than
    it waits, the call is answered from a thread. Two real driver errors: a database file that
    cannot be opened, and a query the driver interrupts (sqlite3's progress handler)."""
    connect(api, make_schedule(api))
    if runtime.loop_engine is None:
        pytest.skip("PostgreSQL reads in threads only (the test above checks that)")
    seen = _where_the_store_is_read(runtime, monkeypatch)
    params = {**WINDOW, "fieldsets": "OWN_PI"}
    assert api.get(f"{EXT}/events", params=params).status_code == 200  # caches the key
    seen.clear()
    if failure == "cannot open":
        broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'calsync.db'}")
        monkeypatch.setattr(runtime, "loop_engine", broken)
    else:
        with runtime.loop_engine.connect() as conn:
            driver = conn.connection.dbapi_connection
            assert driver is not None
            driver.set_progress_handler(lambda: 1, 1)  # type: ignore[attr-defined]
    page = api.get(f"{EXT}/events", params=params)
    assert page.status_code == 200 and len(page.json()["events"]) == 7
    assert seen == [("loop", True), ("thread", False)]
    if failure == "cannot open":
        broken.dispose()


def test_a_live_read_after_a_sync_names_the_calendars_the_sync_added(
    api: Api, runtime: Runtime, busy: FakeProvider
) -> None:
    """A window beyond the stored horizon is read live; when the call first syncs a connection
    that now imports a new calendar, that calendar's events carry its name."""
    connection_id = connect(api, make_schedule(api))["connection"]["id"]
    busy.add_calendar(EMAIL, "work", "Work")
    far = "2030-06-03"  # beyond the 400 days the store holds
    busy.put(EMAIL, "work", "/w/1.ics", ical("w1", "20300603T090000Z", "20300603T100000Z", "Far"))
    assert import_calendars(api, connection_id, ["home", "work"]).status_code == 200
    window = {"from": f"{far}T00:00:00Z", "to": f"{far}T23:59:59Z", "fieldsets": "OWN_PI"}
    events = api.get(f"{EXT}/events", params=window).json()["events"]
    assert [(e["title"], e["calendarName"]) for e in events] == [("Far", "Work")]
