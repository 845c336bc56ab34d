"""POST /v1/free-busy:query and POST /v1/availability:query over HTTP, against the fake
provider: merging, clipping, all-day in the schedule's zone, sessions, failed connections,
working hours on a DST day, the limits and tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from calsync.api.openapi import openapi_document
from calsync.service.runtime import Runtime
from tests.api.test_external_api import ical, make_schedule, wait_status
from tests.conftest import EXT, FAKE_PROVIDER_ID, Api, new_key, random_guid
from tests.fakes import FakeProvider

FREE_BUSY = "/v1/free-busy:query"
AVAILABILITY = "/v1/availability:query"
PASSWORD = "pw"
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


def _account(fake: FakeProvider, email: str, events: list[tuple[str, str, str]]) -> None:
    fake.add_account(email, PASSWORD)
    fake.add_calendar(email, "home", "Home", primary=True)
    for index, (start, end, title) in enumerate(events):
        body = ical(f"{email}-{index}", start, end, title)
        fake.put(email, "home", f"/{email}/{index}.ics", body)


def _connect(api: Api, schedule_id: str, email: str) -> str:
    body = {
        "scheduleId": schedule_id,
        "providerId": FAKE_PROVIDER_ID,
        "email": email,
        "password": PASSWORD,
    }
    response = api.post(f"{EXT}/connections:connectByCredentials", body)
    assert response.status_code == 200, response.text
    connection_id: str = response.json()["connection"]["id"]
    wait_status(api, connection_id, "SYNCED")
    return connection_id


def _documented(api_response: Any, path: str, status: int = 200) -> dict[str, Any]:
    """The response has ``status`` and fits the OpenAPI document's schema for it."""
    assert api_response.status_code == status, api_response.text
    document = openapi_document()
    op = document["paths"][path]["post"]["responses"][str(status)]
    schema = {**op["content"]["application/json"]["schema"], "components": document["components"]}
    body: dict[str, Any] = api_response.json()
    Draft202012Validator(schema).validate(body)
    return body


def _busy(api: Api, schedule_ids: list[str], **extra: Any) -> list[dict[str, Any]]:
    body = {"from": "2027-01-04T00:00:00Z", "to": "2027-01-05T00:00:00Z"}
    body |= {"scheduleIds": schedule_ids, **extra}
    schedules: list[dict[str, Any]] = _documented(api.post(FREE_BUSY, body), FREE_BUSY)["schedules"]
    return schedules


def _violations(response: Any, path: str) -> set[str]:
    body = _documented(response, path, 400)
    return {v["field"] for v in body["details"]["validationError"]["fieldViolations"]}


def test_busy_is_merged_clipped_and_in_request_order(api: Api, fake_provider: FakeProvider) -> None:
    _account(
        fake_provider,
        "ada@example.com",
        [
            ("20270104T090000Z", "20270104T100000Z", "a"),
            ("20270104T093000Z", "20270104T110000Z", "b"),  # overlaps a
            ("20270104T110000Z", "20270104T113000Z", "c"),  # touches b
            ("20270104T140000Z", "20270104T150000Z", "d"),
            ("20270104T230000Z", "20270105T010000Z", "e"),  # runs past the window
            ("20270103T220000Z", "20270104T003000Z", "f"),  # starts before it
            ("20270106T090000Z", "20270106T100000Z", "g"),  # outside
        ],
    )
    busy_schedule, empty_schedule = make_schedule(api, tz="UTC"), make_schedule(api, tz="UTC")
    _connect(api, busy_schedule, "ada@example.com")
    got = _busy(api, [empty_schedule, busy_schedule])
    assert [s["scheduleId"] for s in got] == [empty_schedule, busy_schedule]
    assert got[0] == {"scheduleId": empty_schedule, "busy": [], "failedConnectionIds": []}
    assert [(b["start"], b["end"]) for b in got[1]["busy"]] == [
        ("2027-01-04T00:00:00.000Z", "2027-01-04T00:30:00.000Z"),
        ("2027-01-04T09:00:00.000Z", "2027-01-04T11:30:00.000Z"),
        ("2027-01-04T14:00:00.000Z", "2027-01-04T15:00:00.000Z"),
        ("2027-01-04T23:00:00.000Z", "2027-01-05T00:00:00.000Z"),
    ]
    assert got[1]["failedConnectionIds"] == []


def test_all_day_counts_in_the_schedules_zone(api: Api, fake_provider: FakeProvider) -> None:
    fake_provider.add_account("bo@example.com", PASSWORD)
    fake_provider.add_calendar("bo@example.com", "home", "Home", primary=True)
    holiday = ALL_DAY.format(uid="h1", start="20270104", end="20270105")
    fake_provider.put("bo@example.com", "home", "/bo/h1.ics", holiday)
    schedule_id = make_schedule(api, tz="America/New_York")
    _connect(api, schedule_id, "bo@example.com")
    body = {"from": "2027-01-03T00:00:00Z", "to": "2027-01-07T00:00:00Z"}
    body["scheduleIds"] = [schedule_id]  # type: ignore[assignment]
    got = _documented(api.post(FREE_BUSY, body), FREE_BUSY)["schedules"][0]["busy"]
    # New York is UTC-5 in January: its midnights are 05:00 UTC.
    assert got == [{"start": "2027-01-04T05:00:00.000Z", "end": "2027-01-05T05:00:00.000Z"}]


def test_include_sessions_counts_confirmed_sessions(api: Api) -> None:
    schedule_id = make_schedule(api, tz="UTC")
    session = {"title": "Cut", "status": "CONFIRMED"}
    session |= {"start": "2027-01-04T10:00:00Z", "end": "2027-01-04T11:00:00Z"}
    assert api.put(f"/v1/schedules/{schedule_id}/sessions/s-1", session).status_code == 200
    cancelled = {**session, "status": "CANCELLED", "start": "2027-01-04T15:00:00Z"}
    cancelled["end"] = "2027-01-04T16:00:00Z"
    assert api.put(f"/v1/schedules/{schedule_id}/sessions/s-2", cancelled).status_code == 200
    assert _busy(api, [schedule_id])[0]["busy"] == []
    assert _busy(api, [schedule_id], includeSessions=True)[0]["busy"] == [
        {"start": "2027-01-04T10:00:00.000Z", "end": "2027-01-04T11:00:00.000Z"}
    ]


def test_revoked_connection_is_named_failed(api: Api, fake_provider: FakeProvider) -> None:
    _account(fake_provider, "cy@example.com", [("20270104T090000Z", "20270104T100000Z", "x")])
    schedule_id = make_schedule(api, tz="UTC")
    connection_id = _connect(api, schedule_id, "cy@example.com")
    assert _busy(api, [schedule_id])[0]["busy"] != []
    fake_provider.accounts["cy@example.com"].password = "changed"
    assert api.get(f"{EXT}/connections/{connection_id}/calendars").status_code == 428
    got = _busy(api, [schedule_id])[0]
    assert got["failedConnectionIds"] == [connection_id]
    assert got["busy"] == []


def test_unknown_and_foreign_schedules_are_404(api: Api, runtime: Runtime) -> None:
    mine = make_schedule(api)
    other = new_key(runtime, tenant="site-two")
    window = {"from": "2027-01-04T00:00:00Z", "to": "2027-01-05T00:00:00Z"}
    for key in (other, None):
        ids = [mine] if key else [mine, random_guid()]
        response = api.post(FREE_BUSY, {**window, "scheduleIds": ids}, key=key)
        _documented(response, FREE_BUSY, 404)
        groups = [{"scheduleIds": ids, "required": 1}]
        query = {**window, "durationMinutes": 30, "groups": groups}
        _documented(api.post(AVAILABILITY, query, key=key), AVAILABILITY, 404)
    assert api.post(FREE_BUSY, {**window, "scheduleIds": [mine]}).status_code == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"scheduleIds": [random_guid() for _ in range(101)]}, "scheduleIds"),
        ({"scheduleIds": []}, "scheduleIds"),
        ({"scheduleIds": ["not-a-guid"]}, "scheduleIds[0]"),
        ({"to": "2028-01-06T00:00:00Z"}, "to"),  # 367 days
        ({"to": "2027-01-04T00:00:00Z"}, "to"),  # from == to
        ({"to": "2027-01-03T00:00:00Z"}, "to"),  # from > to
        ({"from": None}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"includeSessions": "maybe"}, "includeSessions"),
    ],
)
def test_free_busy_bad_input_is_400(api: Api, change: dict[str, Any], field: str) -> None:
    body = {"from": "2027-01-04T00:00:00Z", "to": "2027-01-05T00:00:00Z"}
    body |= {"scheduleIds": [random_guid()], **change}
    assert field in _violations(api.post(FREE_BUSY, body), FREE_BUSY)


def test_free_busy_limits_accept_their_edge(api: Api) -> None:
    schedule_id = make_schedule(api)
    body = {"from": "2027-01-04T00:00:00Z", "to": "2028-01-05T00:00:00Z"}  # 366 days
    body["scheduleIds"] = [schedule_id]  # type: ignore[assignment]
    assert api.post(FREE_BUSY, body).status_code == 200


def _group(size: int, required: int) -> dict[str, Any]:
    return {"scheduleIds": [random_guid() for _ in range(size)], "required": required}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"groups": [_group(26, 1), _group(25, 1)]}, "groups"),  # 51 schedules
        ({"groups": []}, "groups"),
        ({"groups": [_group(2, 3)]}, "groups[0].required"),
        ({"groups": [_group(2, 0)]}, "groups[0].required"),
        ({"to": "2027-02-05T00:00:00Z"}, "to"),  # 32 days
        ({"to": "2027-01-04T00:00:00Z"}, "to"),
        ({"durationMinutes": 0}, "durationMinutes"),
        ({"durationMinutes": None}, "durationMinutes"),
        ({"durationMinutes": 1.5}, "durationMinutes"),
        ({"slotStepMinutes": 0}, "slotStepMinutes"),
        ({"bufferAfterMinutes": -1}, "bufferAfterMinutes"),
        (
            {"workingHours": [{"day": "MON", "start": "17:00", "end": "09:00"}]},
            "workingHours[0].end",
        ),
        (
            {"workingHours": [{"day": "XYZ", "start": "09:00", "end": "17:00"}]},
            "workingHours[0].day",
        ),
        (
            {"workingHours": [{"day": "MON", "start": "9am", "end": "17:00"}]},
            "workingHours[0].start",
        ),
    ],
)
def test_availability_bad_input_is_400(api: Api, change: dict[str, Any], field: str) -> None:
    body = {"from": "2027-01-04T00:00:00Z", "to": "2027-01-05T00:00:00Z"}
    body |= {"durationMinutes": 30, "groups": [_group(1, 1)], **change}
    assert field in _violations(api.post(AVAILABILITY, body), AVAILABILITY)


def test_availability_working_hours_on_berlin_dst_day(api: Api) -> None:
    berlin = make_schedule(api, tz="Europe/Berlin")
    body = {
        "from": "2027-03-27T00:00:00Z",
        "to": "2027-03-29T00:00:00Z",
        "durationMinutes": 60,
        "slotStepMinutes": 30,
        "workingHours": [
            {"day": "SAT", "start": "09:00", "end": "10:30"},
            {"day": "SUN", "start": "09:00", "end": "10:30"},
        ],
        "groups": [{"scheduleIds": [berlin], "required": 1}],
    }
    slots = _documented(api.post(AVAILABILITY, body), AVAILABILITY)["slots"]
    # Saturday is CET (UTC+1), Sunday 2027-03-28 CEST (UTC+2) from 02:00 local.
    assert [(s["start"], s["end"]) for s in slots] == [
        ("2027-03-27T08:00:00.000Z", "2027-03-27T09:00:00.000Z"),
        ("2027-03-27T08:30:00.000Z", "2027-03-27T09:30:00.000Z"),
        ("2027-03-28T07:00:00.000Z", "2027-03-28T08:00:00.000Z"),
        ("2027-03-28T07:30:00.000Z", "2027-03-28T08:30:00.000Z"),
    ]
    assert all(s["scheduleIds"] == [berlin] for s in slots)


def test_availability_groups_buffers_and_sessions(api: Api) -> None:
    staff_a, staff_b, room = (make_schedule(api, tz="UTC") for _ in range(3))
    session = {"title": "Booked", "status": "CONFIRMED"}
    session |= {"start": "2027-01-04T09:00:00Z", "end": "2027-01-04T10:00:00Z"}
    assert api.put(f"/v1/schedules/{staff_a}/sessions/s-1", session).status_code == 200
    room_session = {**session, "start": "2027-01-04T11:10:00Z", "end": "2027-01-04T12:00:00Z"}
    assert api.put(f"/v1/schedules/{room}/sessions/s-2", room_session).status_code == 200
    body = {
        "from": "2027-01-04T09:00:00Z",
        "to": "2027-01-04T12:00:00Z",
        "durationMinutes": 60,
        "slotStepMinutes": 60,
        "bufferAfterMinutes": 10,
        "groups": [
            {"scheduleIds": [staff_a, staff_b], "required": 1},
            {"scheduleIds": [room], "required": 1},
        ],
    }
    slots = _documented(api.post(AVAILABILITY, body), AVAILABILITY)["slots"]
    # 09:00 only staff b is free; 10:00 both (the room's 11:10 session is past the buffer);
    # 11:00 the room is busy.
    assert slots == [
        {
            "start": "2027-01-04T09:00:00.000Z",
            "end": "2027-01-04T10:00:00.000Z",
            "scheduleIds": [staff_b, room],
        },
        {
            "start": "2027-01-04T10:00:00.000Z",
            "end": "2027-01-04T11:00:00.000Z",
            "scheduleIds": [staff_a, staff_b, room],
        },
    ]
    body["bufferAfterMinutes"] = 11  # now 10:00-11:00 + 11 min reaches the room's session
    slots = _documented(api.post(AVAILABILITY, body), AVAILABILITY)["slots"]
    assert [s["start"] for s in slots] == ["2027-01-04T09:00:00.000Z"]
