"""The whole API against real CalDAV servers (Radicale and Xandikos), on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from calsync.api.app import create_app
from calsync.crypto import KEY_FILE_NAME
from calsync.providers.caldav.adapter import CalDavProvider
from calsync.service.runtime import Runtime
from calsync.service.sync.run import sync_connection
from calsync.store.models import Connection, EventInstance, ImportedObject
from tests.conftest import EXT, Api, new_key, random_guid
from tests.peers.dav_servers import DavServer, delete_event, make_calendar, put_event
from tests.peers.fixtures import DAV_USERS, unique_name

PROVIDER_ID = "5b7a1c3e-2d4f-4a6b-8c9d-0e1f2a3b4c5d"
DOWN_PROVIDER_ID = "5b7a1c3e-2d4f-4a6b-8c9d-0e1f2a3b4c5e"
USER = "ada@example.com"
PASSWORD = DAV_USERS[USER]

BERLIN = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE"""


def calendar_object(*components: str, timezone: bool = False) -> str:
    body = "\r\n".join(([BERLIN] if timezone else []) + list(components))
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync tests//EN\r\n"
    return f"{head}{body}\r\nEND:VCALENDAR\r\n"


def vevent(uid: str, *lines: str) -> str:
    return "\r\n".join(
        ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"]
    )


@dataclass
class World:
    api: Api
    rt: Runtime
    server: DavServer
    schedule_id: str


@pytest.fixture
def world(make_runtime: Callable[..., Runtime], dav_server: DavServer) -> Iterator[World]:
    rt = make_runtime(
        providers=[
            (PROVIDER_ID, "Team CalDAV", dav_server.base_url),
            (DOWN_PROVIDER_ID, "Down", "http://127.0.0.1:9/"),
        ],
        check_interval_seconds=0.5,  # the worker's change checks, quick enough for a test
        worker_tick_seconds=0.2,
    )
    with TestClient(create_app(rt)) as client:
        api = Api(client, new_key(rt))
        schedule_id = random_guid()
        response = api.put(
            f"/v1/schedules/{schedule_id}",
            {
                "ownerUserId": random_guid(),
                "ownerName": "Ada Lovelace",
                "timeZone": "Europe/Berlin",
            },
        )
        assert response.status_code == 200
        yield World(api, rt, dav_server, schedule_id)


def connect(world: World, password: str = PASSWORD, provider_id: str = PROVIDER_ID):  # type: ignore[no-untyped-def]
    return world.api.post(
        f"{EXT}/connections:connectByCredentials",
        {
            "scheduleId": world.schedule_id,
            "providerId": provider_id,
            "email": USER,
            "password": password,
        },
    )


def select_calendars(world: World, connection_id: str, *calendar_ids: str) -> None:
    body = {
        "syncConfig": {
            "listEventFromCalendars": {
                "enabled": True,
                "calendars": {"calendars": [{"id": c} for c in calendar_ids]},
            }
        }
    }
    response = world.api.patch(f"{EXT}/connections/{connection_id}/sync-config", body)
    assert response.status_code == 200, response.text


def events(world: World, start: str, end: str) -> list[tuple[str, str, str, bool]]:
    response = world.api.get(
        f"{EXT}/events",
        params={
            "from": start,
            "to": end,
            "scheduleIds": world.schedule_id,
            "fieldsets": "OWN_PI",
            "cursorPaging.limit": "1000",
        },
    )
    assert response.status_code == 200, response.text
    return [(e["title"], e["start"], e["end"], e["allDay"]) for e in response.json()["events"]]


def settled_status(world: World, connection_id: str, seconds: float = 10.0) -> str:
    deadline = time.monotonic() + seconds
    while True:
        response = world.api.get(f"{EXT}/connections/{connection_id}")
        status: str = response.json()["connection"]["status"]
        if status != "SYNC_IN_PROGRESS" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_credentials_are_checked_against_the_server(world: World) -> None:
    wrong = connect(world, password="not-the-password")
    assert wrong.status_code == 401
    assert wrong.json()["details"]["applicationError"]["code"] == "BAD_CREDENTIALS"
    down = connect(world, provider_id=DOWN_PROVIDER_ID)
    assert down.status_code == 503
    assert down.json()["details"]["applicationError"]["code"] == "EXTERNAL_PROVIDER_UNAVAILABLE"
    assert world.api.get(f"{EXT}/connections").json()["connections"] == []
    ok = connect(world)
    assert ok.status_code == 200, ok.text
    assert ok.json()["connection"]["externalAccountEmail"] == USER


def test_calendars_events_recurrence_and_incremental_sync(world: World) -> None:
    work_id, home_id, todo_id = unique_name("work"), unique_name("home"), unique_name("todo")
    work = make_calendar(world.server, USER, PASSWORD, work_id, "Work")
    home = make_calendar(world.server, USER, PASSWORD, home_id, "Home")
    make_calendar(world.server, USER, PASSWORD, todo_id, "Tasks", components=("VTODO",))
    weekly = vevent(
        "weekly",
        "SUMMARY:Team meeting",
        "DTSTART;TZID=Europe/Berlin:20270318T090000",
        "DTEND;TZID=Europe/Berlin:20270318T100000",
        "RRULE:FREQ=WEEKLY;COUNT=4",
        "EXDATE;TZID=Europe/Berlin:20270401T090000",
    )
    moved = vevent(
        "weekly",
        "SUMMARY:Team meeting (moved)",
        "RECURRENCE-ID;TZID=Europe/Berlin:20270325T090000",
        "DTSTART;TZID=Europe/Berlin:20270325T140000",
        "DTEND;TZID=Europe/Berlin:20270325T150000",
    )
    put_event(work, USER, PASSWORD, "weekly.ics", calendar_object(weekly, moved, timezone=True))
    put_event(
        work,
        USER,
        PASSWORD,
        "free.ics",
        calendar_object(
            vevent(
                "free",
                "SUMMARY:Free time",
                "DTSTART:20270319T090000Z",
                "DTEND:20270319T100000Z",
                "TRANSP:TRANSPARENT",
            )
        ),
    )
    put_event(
        work,
        USER,
        PASSWORD,
        "declined.ics",
        calendar_object(
            vevent(
                "declined",
                "SUMMARY:Declined",
                "DTSTART:20270319T110000Z",
                "DTEND:20270319T120000Z",
                f"ATTENDEE;PARTSTAT=DECLINED:mailto:{USER}",
            )
        ),
    )
    put_event(
        work,
        USER,
        PASSWORD,
        "cancelled.ics",
        calendar_object(
            vevent(
                "cancelled",
                "SUMMARY:Cancelled",
                "DTSTART:20270319T130000Z",
                "DTEND:20270319T140000Z",
                "STATUS:CANCELLED",
            )
        ),
    )
    put_event(
        home,
        USER,
        PASSWORD,
        "holiday.ics",
        calendar_object(
            vevent(
                "holiday",
                "SUMMARY:Holiday",
                "DTSTART;VALUE=DATE:20270329",
                "DTEND;VALUE=DATE:20270330",
            )
        ),
    )

    connection_id = connect(world).json()["connection"]["id"]
    listed = world.api.get(f"{EXT}/connections/{connection_id}/calendars").json()["calendars"]
    by_id = {c["id"]: c["name"] for c in listed}
    assert by_id[work_id] == "Work" and by_id[home_id] == "Home"
    assert todo_id not in by_id
    select_calendars(world, connection_id, work_id, home_id)

    found = events(world, "2027-03-15T00:00:00Z", "2027-04-15T00:00:00Z")
    assert found == [
        # 18 March: winter time in Berlin (UTC+1).
        ("Team meeting", "2027-03-18T08:00:00.000Z", "2027-03-18T09:00:00.000Z", False),
        # 25 March: the override moved it to 14:00; still winter time.
        ("Team meeting (moved)", "2027-03-25T13:00:00.000Z", "2027-03-25T14:00:00.000Z", False),
        # 29 March: an all-day event at Berlin midnight, summer time began on the 28th.
        ("Holiday", "2027-03-29T00:00:00.000+02:00", "2027-03-30T00:00:00.000+02:00", True),
        # 1 April excluded by EXDATE; 8 April in summer time (UTC+2).
        ("Team meeting", "2027-04-08T07:00:00.000Z", "2027-04-08T08:00:00.000Z", False),
    ]
    # The in-process worker may still be exporting (export is on by default): it settles.
    assert settled_status(world, connection_id) == "SYNCED"

    # Changes on the server show up without anyone asking: the worker's change check sees the
    # calendars' tags move and syncs them (reads meanwhile answer from the store).
    put_event(
        work,
        USER,
        PASSWORD,
        "new.ics",
        calendar_object(
            vevent("new", "SUMMARY:New", "DTSTART:20270316T100000Z", "DTEND:20270316T110000Z")
        ),
    )
    delete_event(home, USER, PASSWORD, "holiday.ics")
    expected = ["New", "Team meeting", "Team meeting (moved)", "Team meeting"]
    deadline = time.monotonic() + 20
    while True:
        titles = [e[0] for e in events(world, "2027-03-15T00:00:00Z", "2027-04-15T00:00:00Z")]
        if titles == expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert titles == expected

    # Unselecting a calendar drops its events.
    select_calendars(world, connection_id, home_id)
    assert events(world, "2027-03-15T00:00:00Z", "2027-04-15T00:00:00Z") == []


def test_secrets_encrypted_at_rest_and_never_logged(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connection_id = connect(world).json()["connection"]["id"]
    world.api.get(
        f"{EXT}/events", params={"from": "2027-01-01T00:00:00Z", "to": "2027-02-01T00:00:00Z"}
    )
    with world.rt.db() as session:
        row = session.get(Connection, connection_id)
        assert row is not None and row.secret is not None
        assert PASSWORD.encode() not in row.secret
        assert PASSWORD not in str(row.account_state)
    assert PASSWORD not in caplog.text
    key_file = world.rt.settings.data_dir / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    for response in (
        world.api.get(f"{EXT}/connections/{connection_id}"),
        world.api.get(f"{EXT}/connections"),
    ):
        assert PASSWORD not in response.text


def test_disconnect_forgets_secret_and_events(world: World) -> None:
    calendar_id = unique_name("cal")
    url = make_calendar(world.server, USER, PASSWORD, calendar_id, "Busy")
    put_event(
        url,
        USER,
        PASSWORD,
        "a.ics",
        calendar_object(
            vevent("a", "SUMMARY:A", "DTSTART:20270105T100000Z", "DTEND:20270105T110000Z")
        ),
    )
    connection_id = connect(world).json()["connection"]["id"]
    select_calendars(world, connection_id, calendar_id)
    assert len(events(world, "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")) == 1
    response = world.api.post(f"{EXT}/connections/{connection_id}/disconnect", {})
    assert response.json()["connection"]["status"] == "DISCONNECTED"
    with world.rt.db() as session:
        row = session.get(Connection, connection_id)
        assert row is not None and row.secret is None
        for model in (EventInstance, ImportedObject):
            assert (
                session.scalars(select(model).where(model.connection_id == connection_id)).all()
                == []
            )
    assert events(world, "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z") == []


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


def test_unchanged_calendars_cost_one_request_each(
    make_runtime: Callable[..., Runtime], dav_server: DavServer
) -> None:
    transport = CountingTransport()
    rt = make_runtime(
        providers=[(PROVIDER_ID, "Team CalDAV", dav_server.base_url)],
        adapter_factory=lambda config: CalDavProvider(config.url, transport=transport),
        check_interval_seconds=0,  # no change check of the worker's among the counted requests
    )
    with TestClient(create_app(rt)) as client:
        api = Api(client, new_key(rt))
        schedule_id = random_guid()
        api.put(f"/v1/schedules/{schedule_id}", {"ownerUserId": random_guid(), "timeZone": "UTC"})
        world = World(api, rt, dav_server, schedule_id)
        ids = [unique_name("one"), unique_name("two")]
        for calendar_id in ids:
            url = make_calendar(dav_server, USER, PASSWORD, calendar_id, calendar_id)
            put_event(
                url,
                USER,
                PASSWORD,
                "x.ics",
                calendar_object(
                    vevent(
                        calendar_id,
                        "SUMMARY:X",
                        "DTSTART:20270105T100000Z",
                        "DTEND:20270105T110000Z",
                    )
                ),
            )
        connection_id = connect(world).json()["connection"]["id"]
        select_calendars(world, connection_id, *ids)
        assert len(events(world, "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z")) == 2
        rt.background.shutdown(wait=True)  # let the syncs the API kicked off finish
        rt.background = ThreadPoolExecutor(max_workers=2)
        transport.requests.clear()
        sync_connection(rt, connection_id)
        assert len(transport.requests) == 2, transport.requests
        assert all(r.startswith(("REPORT", "PROPFIND")) for r in transport.requests)
    transport.close()


def test_window_beyond_the_horizon_is_read_live(world: World) -> None:
    calendar_id = unique_name("far")
    url = make_calendar(world.server, USER, PASSWORD, calendar_id, "Far")
    weekly = vevent(
        "forever",
        "SUMMARY:Weekly forever",
        "DTSTART;TZID=Europe/Berlin:20261201T090000",
        "DTEND;TZID=Europe/Berlin:20261201T100000",
        "RRULE:FREQ=WEEKLY",
    )
    put_event(url, USER, PASSWORD, "forever.ics", calendar_object(weekly, timezone=True))
    connection_id = connect(world).json()["connection"]["id"]
    select_calendars(world, connection_id, calendar_id)
    assert len(events(world, "2027-01-04T00:00:00Z", "2027-01-11T00:00:00Z")) == 1  # stored
    # Four years ahead, far past the 400-day horizon: summer time in Berlin (UTC+2).
    assert events(world, "2030-07-01T00:00:00Z", "2030-07-08T00:00:00Z") == [
        ("Weekly forever", "2030-07-02T07:00:00.000Z", "2030-07-02T08:00:00.000Z", False)
    ]
