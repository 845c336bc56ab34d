"""Export end to end against real CalDAV servers (Radicale and Xandikos), on SQLite and
PostgreSQL: sessions in, events in the dedicated calendar out, never imported back, external
edits put back, everything removed on disconnect."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from calsync.api.app import create_app
from calsync.providers.base import AccountRef, Credentials, EventResource
from calsync.providers.caldav.adapter import CalDavProvider
from calsync.service.runtime import Runtime
from calsync.service.sync.run import sync_connection
from tests.conftest import EXT, Api, new_key, random_guid
from tests.integration.test_worker import wait_until
from tests.peers.dav_servers import DavServer, delete_event, make_calendar, put_event, simple_event
from tests.peers.fixtures import DAV_USERS, unique_name

PROVIDER_ID = "5b7a1c3e-2d4f-4a6b-8c9d-0e1f2a3b4c6a"
USER = "grace@example.com"  # the other end-to-end tests use ada@example.com
PASSWORD = DAV_USERS[USER]


@dataclass
class World:
    api: Api
    rt: Runtime
    server: DavServer
    schedule_id: str
    own_calendar: str

    @property
    def account(self) -> AccountRef:
        return AccountRef(email=USER, credentials=Credentials(USER, PASSWORD))

    def adapter(self) -> CalDavProvider:
        return CalDavProvider(self.server.base_url)


@pytest.fixture
def world(make_runtime: Callable[..., Runtime], dav_server: DavServer) -> Iterator[World]:
    rt = make_runtime(
        providers=[(PROVIDER_ID, "Team CalDAV", dav_server.base_url)], horizon_past_days=30
    )
    name = unique_name("own")
    url = make_calendar(dav_server, USER, PASSWORD, name, "My own")
    put_event(
        url, USER, PASSWORD, "dentist.ics", simple_event("dentist", "Dentist", "20271202T090000Z")
    )
    with TestClient(create_app(rt, worker=False)) as client:
        api = Api(client, new_key(rt))
        schedule_id = random_guid()
        body = {"ownerUserId": random_guid(), "ownerName": "Grace", "timeZone": "Europe/Berlin"}
        assert api.put(f"/v1/schedules/{schedule_id}", body).status_code == 200
        yield World(api, rt, dav_server, schedule_id, name)


def exported(world: World, calendar_id: str) -> list[EventResource]:
    changes = world.adapter().read_changes(world.account, calendar_id, None, {})
    return [r for r in changes.upserted if "X-CALSYNC-EXPORT" in r.ical]


def _connect(world: World) -> str:
    response = world.api.post(
        f"{EXT}/connections:connectByCredentials",
        {
            "scheduleId": world.schedule_id,
            "providerId": PROVIDER_ID,
            "email": USER,
            "password": PASSWORD,
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["connection"]["id"])


def test_sessions_reach_the_dedicated_calendar_and_stay_as_the_platform_says(
    world: World,
) -> None:
    api = world.api
    connection_id = _connect(world)
    connection = api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
    assert connection["syncConfig"]["syncToCalendar"]["enabled"] is True
    sessions = {
        # Across the end of daylight saving time in Berlin (2027-10-31).
        "dst": {"start": "2027-10-30T10:00:00+02:00", "end": "2027-11-01T10:00:00+01:00"},
        "cut": {"start": "2027-12-02T09:30:00+01:00", "end": "2027-12-02T10:30:00+01:00"},
        "holiday": {"allDay": True, "start": "2027-12-24", "end": "2027-12-27"},
    }
    for session_id, times in sessions.items():
        body = {"title": f"Booking {session_id}", "status": "CONFIRMED", **times}
        response = api.put(f"/v1/schedules/{world.schedule_id}/sessions/{session_id}", body)
        assert response.status_code == 200, response.text
    sync_connection(world.rt, connection_id, export=True)
    report = api.get(f"/v1/connections/{connection_id}/sync").json()["sync"]
    assert report["export"]["exportedEvents"] == 3, report
    calendar_id = report["export"]["calendarId"]
    calendars = api.get(f"{EXT}/connections/{connection_id}/calendars").json()["calendars"]
    assert any(c["id"] == calendar_id and c["name"] == "Bookings" for c in calendars)
    written = exported(world, calendar_id)
    assert len(written) == 3
    ical = "\n".join(r.ical for r in written)
    assert "Booking dst" in ical and "DTSTART;VALUE=DATE:20271224" in ical

    # Import the owner's calendar and the dedicated one: only the owner's event is busy time.
    all_ids = [{"id": world.own_calendar}, {"id": calendar_id}]
    body = {
        "syncConfig": {
            "listEventFromCalendars": {"enabled": True, "calendars": {"calendars": all_ids}}
        }
    }
    assert api.patch(f"{EXT}/connections/{connection_id}/sync-config", body).status_code == 200
    sync_connection(world.rt, connection_id, export=True)
    listed = api.get(
        f"{EXT}/events",
        params={
            "from": "2027-10-01T00:00:00Z",
            "to": "2028-01-01T00:00:00Z",
            "fieldsets": "OWN_PI",
        },
    ).json()["events"]
    assert [e["title"] for e in listed] == ["Dentist"]

    # The account owner deletes one exported event: calsync puts it back.
    victim = next(r for r in written if "Booking cut" in r.ical)
    calendar_url = world.server.base_url.rstrip("/") + victim.key.rsplit("/", 1)[0] + "/"
    delete_event(calendar_url, USER, PASSWORD, victim.key.rsplit("/", 1)[1])
    assert len(exported(world, calendar_id)) == 2
    sync_connection(world.rt, connection_id, export=True)
    assert len(exported(world, calendar_id)) == 3

    # A cancelled session leaves the calendar.
    assert api.delete(f"/v1/schedules/{world.schedule_id}/sessions/cut").status_code == 200
    sync_connection(world.rt, connection_id, export=True)
    assert sorted("Booking dst" in r.ical for r in exported(world, calendar_id)) == [False, True]

    # Disconnect removes the events and the calendar calsync created (it holds nothing else).
    assert api.post(f"{EXT}/connections/{connection_id}/disconnect").status_code == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ids = {c.id for c in world.adapter().list_calendars(world.account)}
        if calendar_id not in ids:
            break
        time.sleep(0.1)
    assert calendar_id not in ids and world.own_calendar in ids


def test_a_running_worker_exports_a_confirmed_session_within_five_seconds(
    make_runtime: Callable[..., Runtime], dav_server: DavServer
) -> None:
    """Nobody calls a sync: the worker of ``calsync serve`` notices the session and writes it
    to the real server's dedicated calendar within the issue's 5 s."""
    rt = make_runtime(
        providers=[(PROVIDER_ID, "Team CalDAV", dav_server.base_url)], worker_tick_seconds=0.5
    )
    with TestClient(create_app(rt, worker=True)) as client:
        api = Api(client, new_key(rt))
        schedule_id = random_guid()
        body = {"ownerUserId": random_guid(), "ownerName": "Grace", "timeZone": "Europe/Berlin"}
        assert api.put(f"/v1/schedules/{schedule_id}", body).status_code == 200
        world = World(api, rt, dav_server, schedule_id, "")
        connection_id = _connect(world)

        def report() -> dict:  # type: ignore[type-arg]
            return api.get(f"/v1/connections/{connection_id}/sync").json()["sync"]  # type: ignore[no-any-return]

        wait_until(lambda: report()["status"] == "SYNCED", timeout=30)
        session = {
            "title": "Booking fast",
            "status": "CONFIRMED",
            "start": "2027-12-03T09:30:00+01:00",
            "end": "2027-12-03T10:30:00+01:00",
        }
        started = time.monotonic()
        assert api.put(f"/v1/schedules/{schedule_id}/sessions/fast", session).status_code == 200

        def on_the_server() -> bool:
            calendar_id = report()["export"].get("calendarId")
            return bool(calendar_id) and any(
                "Booking fast" in r.ical for r in exported(world, calendar_id)
            )

        wait_until(on_the_server, timeout=5.0)
        assert time.monotonic() - started < 5.0


def test_an_owner_edit_and_a_session_change_together_end_as_the_session_says(
    world: World,
) -> None:
    """The owner retitles an exported event in their calendar (its ETag changes) while the
    platform changes the session: the next run writes the session's version over the edit
    (conditional writes see the stale ETag, the edit check sees the change) and counts it."""
    api = world.api
    connection_id = _connect(world)
    session = {
        "title": "Booking v1",
        "status": "CONFIRMED",
        "start": "2027-12-06T09:30:00+01:00",
        "end": "2027-12-06T10:30:00+01:00",
    }
    path = f"/v1/schedules/{world.schedule_id}/sessions/edit-me"
    assert api.put(path, session).status_code == 200
    sync_connection(world.rt, connection_id, export=True)
    calendar_id = api.get(f"/v1/connections/{connection_id}/sync").json()["sync"]["export"][
        "calendarId"
    ]
    [event] = exported(world, calendar_id)
    calendar_url = world.server.base_url.rstrip("/") + event.key.rsplit("/", 1)[0] + "/"
    edited = event.ical.replace("SUMMARY:Booking v1", "SUMMARY:Owner's title")
    assert edited != event.ical
    put_event(calendar_url, USER, PASSWORD, event.key.rsplit("/", 1)[1], edited)
    [changed] = exported(world, calendar_id)
    assert changed.etag != event.etag and "Owner's title" in changed.ical

    assert api.put(path, {**session, "title": "Booking v2"}).status_code == 200
    sync_connection(world.rt, connection_id, export=True)
    [final] = exported(world, calendar_id)
    assert "SUMMARY:Booking v2" in final.ical and "Owner's title" not in final.ical
    report = api.get(f"/v1/connections/{connection_id}/sync").json()["sync"]
    assert report["export"]["externalEditsRestored"] >= 1, report
    assert report["status"] == "SYNCED", report
