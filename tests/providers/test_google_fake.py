"""The Google Calendar API v3 fake itself: it answers as Google documents, and it says no.

Requests go over real HTTP with plain httpx, so these tests check the wire format: paths and
parameters against the discovery document, answers against its schemas, Google's error bodies.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.peers.google_fake import (
    BATCH,
    Discovery,
    GoogleFake,
    parameter_problem,
    schema_problems,
    start_google_fake,
)

EMAIL = "grace@example.com"
TOKEN = "ya29.grace-token"
CAL = EMAIL
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def server() -> Iterator[GoogleFake]:
    with start_google_fake() as fake:
        yield fake


@pytest.fixture
def fake(server: GoogleFake) -> GoogleFake:
    server.reset()
    server.page_size = None
    server.add_account(EMAIL, token=TOKEN)
    server.add_calendar(EMAIL, CAL, "Grace", primary=True, time_zone="America/New_York")
    return server


@pytest.fixture
def client(fake: GoogleFake) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=fake.api_url + "/", headers=headers, timeout=5.0) as client:
        yield client


def iso(moment: datetime) -> str:
    return moment.isoformat()


def event(event_id: str, days: int, hours: int = 1, **extra: Any) -> dict[str, Any]:
    start = NOW + timedelta(days=days)
    return {
        "id": event_id,
        "summary": event_id,
        "start": {"dateTime": iso(start)},
        "end": {"dateTime": iso(start + timedelta(hours=hours))},
        **extra,
    }


def list_events(client: httpx.Client, **params: str) -> dict[str, Any]:
    response = client.get(f"calendars/{CAL}/events", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def all_pages(client: httpx.Client, **params: str) -> tuple[list[dict[str, Any]], str | None]:
    items: list[dict[str, Any]] = []
    page: dict[str, str] = {}
    while True:
        body = list_events(client, **params, **page)
        items.extend(body["items"])
        if "nextPageToken" not in body:
            return items, body.get("nextSyncToken")
        assert "nextSyncToken" not in body  # only on the last page
        page = {"pageToken": body["nextPageToken"]}


def google_error(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == status and isinstance(error["message"], str)
    assert error["errors"][0]["reason"] == reason
    return error


# --- the server --------------------------------------------------------------------------------


def test_starts_and_stops_without_leaks() -> None:
    threads = threading.active_count()
    fake = start_google_fake()
    port = int(fake.api_url.split(":")[2].split("/")[0])
    assert fake.api_url == f"http://127.0.0.1:{port}/calendar/v3"
    with httpx.Client() as client:
        assert client.get(fake.api_url + "/colors").status_code == 401
    fake.stop()
    assert threading.active_count() == threads
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


# --- requests: the discovery document says what is allowed ---------------------------------------


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"singleEvent": "true"}, "singleEvent"),  # a typo: unknown parameter
        ({"singleEvents": "yes"}, "singleEvents"),
        ({"singleEvents": "True"}, "singleEvents"),
        ({"maxResults": "0"}, "maxResults"),
        ({"maxResults": "ten"}, "maxResults"),
        ({"maxResults": "99999999999"}, "maxResults"),
        ({"timeMin": "2026-01-01"}, "timeMin"),
        ({"timeMin": "2026-01-01T10:00:00"}, "timeMin"),  # the offset is mandatory
        ({"orderBy": "start"}, "orderBy"),
        ({"eventTypes": "meeting"}, "eventTypes"),
        ({"minAccessRole": "owner"}, "minAccessRole"),  # a calendarList parameter
    ],
)
def test_nonconforming_parameters_are_refused(
    fake: GoogleFake, client: httpx.Client, params: dict[str, str], location: str
) -> None:
    response = client.get(f"calendars/{CAL}/events", params=params)
    error = google_error(response, 400, response.json()["error"]["errors"][0]["reason"])
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["errors"][0]["location"] == location
    assert [v.method for v in fake.violations] == ["calendar.events.list"]
    fake.violations.clear()


def test_unknown_parameter_gets_googles_answer(fake: GoogleFake, client: httpx.Client) -> None:
    response = client.get("users/me/calendarList", params={"pageSize": "10"})
    error = google_error(response, 400, "badRequest")
    assert 'Unknown name "pageSize"' in error["message"]
    assert fake.violations[0].problem == error["message"]
    fake.violations.clear()


def test_repeating_a_single_parameter_is_refused(fake: GoogleFake, client: httpx.Client) -> None:
    response = client.get(f"calendars/{CAL}/events?maxResults=5&maxResults=6")
    google_error(response, 400, "invalid")
    fake.violations.clear()
    response = client.get(f"calendars/{CAL}/events?eventTypes=default&eventTypes=focusTime")
    assert response.status_code == 200  # eventTypes is documented as repeated
    assert fake.violations == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "calendars"),  # calendars.insert is POST only
        ("DELETE", "users/me/calendarList"),
        ("GET", "calendar/events"),
        ("GET", "users/me/calendarList/x/y"),
    ],
)
def test_unknown_paths_are_not_found(
    fake: GoogleFake, client: httpx.Client, method: str, path: str
) -> None:
    google_error(client.request(method, path), 404, "notFound")
    assert len(fake.violations) == 1
    fake.violations.clear()


def test_requests_outside_the_service_path_are_not_found(fake: GoogleFake) -> None:
    with httpx.Client() as client:
        response = client.get(fake.api_url.replace("/calendar/v3", "/calendar/v2") + "/colors")
    google_error(response, 404, "notFound")
    fake.violations.clear()


def test_sync_token_refuses_request_restrictions(fake: GoogleFake, client: httpx.Client) -> None:
    _, token = all_pages(client, singleEvents="true")
    assert token is not None
    for extra in ({"timeMin": iso(NOW)}, {"timeMax": iso(NOW)}, {"orderBy": "updated"}):
        response = client.get(
            f"calendars/{CAL}/events", params={"syncToken": token, "singleEvents": "true", **extra}
        )
        google_error(response, 400, "syncTokenWithRequestRestrictions")
    response = client.get(
        f"calendars/{CAL}/events",
        params={"syncToken": token, "singleEvents": "true", "showDeleted": "false"},
    )
    google_error(response, 400, "invalid")
    assert len(fake.violations) == 4
    fake.violations.clear()


def test_valid_but_unserved_requests_answer_501(fake: GoogleFake, client: httpx.Client) -> None:
    google_error(client.get("colors"), 501, "notImplemented")
    google_error(client.get(f"calendars/{CAL}/events", params={"q": "x"}), 501, "notImplemented")
    assert fake.unimplemented == ["calendar.colors.get", "calendar.events.list q"]
    assert fake.violations == []


def test_parameter_checks_follow_the_discovery_types() -> None:
    discovery = Discovery.load()
    params = discovery.method("events.list").parameters
    assert parameter_problem("true", params["singleEvents"]) is None
    assert parameter_problem("1", params["singleEvents"]) is not None
    assert parameter_problem("2500", params["maxResults"]) is None
    assert parameter_problem("-1", params["maxResults"]) is not None
    assert parameter_problem("2026-01-01T00:00:00.123+05:30", params["timeMin"]) is None
    assert parameter_problem("2026-13-01T00:00:00Z", params["timeMin"]) is not None
    assert parameter_problem("startTime", params["orderBy"]) is None


# --- authentication ------------------------------------------------------------------------------


def test_missing_and_invalid_tokens_get_401(fake: GoogleFake) -> None:
    with httpx.Client(base_url=fake.api_url + "/") as client:
        missing = client.get("users/me/calendarList")
        invalid = client.get("users/me/calendarList", headers={"Authorization": "Bearer nope"})
    google_error(missing, 401, "required")
    error = google_error(invalid, 401, "authError")
    assert error["status"] == "UNAUTHENTICATED"
    assert error["errors"][0]["location"] == "Authorization"
    assert "invalid_token" in invalid.headers["WWW-Authenticate"]
    assert fake.violations == []


def test_pluggable_token_validator() -> None:
    def validate(token: str) -> str | None:
        return "pat@example.com" if token == "minted-by-the-oauth-fake" else None

    with start_google_fake(token_validator=validate) as fake:
        fake.add_account("pat@example.com")
        fake.add_calendar("pat@example.com", "pat@example.com", "Pat", primary=True)
        with httpx.Client(base_url=fake.api_url + "/") as client:
            good = client.get(
                "users/me/calendarList",
                headers={"Authorization": "Bearer minted-by-the-oauth-fake"},
            )
            bad = client.get("users/me/calendarList", headers={"Authorization": "Bearer other"})
    assert [e["id"] for e in good.json()["items"]] == ["pat@example.com"]
    google_error(bad, 401, "authError")


def test_account_without_calendar_is_403(fake: GoogleFake) -> None:
    token = fake.add_account("mail-only@example.com", calendar_user=False)
    with httpx.Client(base_url=fake.api_url + "/") as client:
        response = client.get("users/me/calendarList", headers={"Authorization": f"Bearer {token}"})
    google_error(response, 403, "notACalendarUser")


# --- answers: the discovery schemas say what they look like --------------------------------------


def test_answers_conform_to_the_schemas(fake: GoogleFake, client: httpx.Client) -> None:
    fake.add_calendar(EMAIL, "shared@group.calendar.google.com", "Shared", access_role="reader")
    fake.put_event(
        EMAIL,
        CAL,
        event(
            "rich",
            2,
            description="notes",
            location="Room 1",
            transparency="opaque",
            visibility="private",
            colorId="3",
            attendees=[
                {"email": EMAIL, "self": True, "responseStatus": "accepted"},
                {"email": "x@example.com", "responseStatus": "needsAction", "optional": True},
            ],
            organizer={"email": "x@example.com", "displayName": "X"},
            extendedProperties={"private": {"calsyncSessionId": "s1"}, "shared": {"a": "b"}},
            reminders={"useDefault": False, "overrides": [{"method": "popup", "minutes": 10}]},
        ),
    )
    fake.put_event(
        EMAIL,
        CAL,
        {
            "id": "series",
            "summary": "series",
            "start": {"dateTime": "2026-03-02T09:00:00-05:00", "timeZone": "America/New_York"},
            "end": {"dateTime": "2026-03-02T10:00:00-05:00", "timeZone": "America/New_York"},
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"],
        },
    )
    fake.put_event(EMAIL, CAL, event("gone", 3))
    fake.delete_event(EMAIL, CAL, "gone")
    for params in (
        {},
        {"singleEvents": "true"},
        {"singleEvents": "true", "showDeleted": "true", "orderBy": "startTime"},
        {"timeMin": iso(NOW), "timeMax": iso(NOW + timedelta(days=30))},
    ):
        list_events(client, **params)
    assert client.get("users/me/calendarList").status_code == 200
    assert client.get(f"users/me/calendarList/{CAL}").status_code == 200
    assert client.get(f"calendars/{CAL}/events/rich").status_code == 200
    assert client.get("calendars/primary/events/series_20260309T130000Z").status_code == 200
    assert fake.response_violations == []
    assert fake.violations == []


def test_schema_checker_says_no() -> None:
    discovery = Discovery.load()
    schemas = discovery.schemas
    good = {"id": "a", "start": {"dateTime": "2026-01-01T00:00:00Z"}, "attendees": []}
    assert schema_problems(good, {"$ref": "Event"}, schemas) == []
    bad_events = {
        "kind": "calendar#events",
        "items": [
            {"id": "a", "summary": 5},
            {"id": "b", "start": {"dateTime": "tomorrow"}},
            {"id": "c", "attendees": [{"email": "x", "self": "yes"}]},
            {"id": "d", "extendedProperties": {"private": {"n": 1}}},
            {"id": "e", "colour": "red"},
            {"id": "f", "start": {"date": "2026-02-30"}},
            {"id": "g", "sequence": "1"},
        ],
        "nextPageToken": 3,
    }
    problems = schema_problems(bad_events, {"$ref": "Events"}, schemas)
    assert problems == [
        "$.items[0].summary: expected a string",
        "$.items[1].start.dateTime: not an RFC 3339 date-time",
        "$.items[2].attendees[0].self: expected a boolean",
        "$.items[3].extendedProperties.private.n: expected a string",
        "$.items[4].colour: not a property of the schema",
        "$.items[5].start.date: not a date (YYYY-MM-DD)",
        "$.items[6].sequence: expected an integer",
        "$.nextPageToken: expected a string",
    ]


def test_stored_events_must_be_google_events(fake: GoogleFake) -> None:
    with pytest.raises(ValueError, match="not a property"):
        fake.put_event(EMAIL, CAL, event("x", 1, colour="red"))
    with pytest.raises(ValueError, match="date / dateTime"):
        fake.put_event(EMAIL, CAL, {"id": "y", "start": {}, "end": {}})
    with pytest.raises(ValueError, match="time zone"):
        fake.put_event(EMAIL, CAL, event("z", 1, recurrence=["RRULE:FREQ=DAILY"]))


# --- events.list semantics -----------------------------------------------------------------------


def test_paging_with_page_size(fake: GoogleFake, client: httpx.Client) -> None:
    fake.page_size = 2
    for n in range(5):
        fake.put_event(EMAIL, CAL, event(f"e{n}", n + 1))
    items, token = all_pages(client, singleEvents="true", maxResults="2500")
    assert [i["id"] for i in items] == ["e0", "e1", "e2", "e3", "e4"]
    assert token is not None
    assert len(fake.requests_for("events.list")) == 3
    first = list_events(client, maxResults="2")
    response = client.get(
        f"calendars/{CAL}/events",
        params={"pageToken": first["nextPageToken"], "singleEvents": "true"},
    )
    google_error(response, 400, "invalid")  # a page token belongs to its query
    fake.violations.clear()


def test_time_bounds_follow_google(fake: GoogleFake, client: httpx.Client) -> None:
    fake.put_event(EMAIL, CAL, event("before", 1))
    fake.put_event(EMAIL, CAL, event("overlapping", 2, hours=48))
    fake.put_event(EMAIL, CAL, event("inside", 3))
    fake.put_event(EMAIL, CAL, event("after", 6))
    fake.put_event(
        EMAIL,
        CAL,
        {
            "id": "allday",
            "start": {"date": (NOW + timedelta(days=4)).date().isoformat()},
            "end": {"date": (NOW + timedelta(days=5)).date().isoformat()},
        },
    )
    params = {"timeMin": iso(NOW + timedelta(days=3)), "timeMax": iso(NOW + timedelta(days=5))}
    ids = {i["id"] for i in list_events(client, **params)["items"]}
    assert ids == {"overlapping", "inside", "allday"}
    empty = client.get(
        f"calendars/{CAL}/events",
        params={"timeMin": params["timeMax"], "timeMax": params["timeMin"]},
    )
    google_error(empty, 400, "timeRangeEmpty")
    fake.violations.clear()


def test_single_events_expands_recurrence(fake: GoogleFake, client: httpx.Client) -> None:
    fake.put_event(
        EMAIL,
        CAL,
        {
            "id": "standup",
            "summary": "Standup",
            "start": {"dateTime": "2026-03-05T09:00:00-05:00", "timeZone": "America/New_York"},
            "end": {"dateTime": "2026-03-05T09:15:00-05:00", "timeZone": "America/New_York"},
            "recurrence": [
                "RRULE:FREQ=DAILY;COUNT=5",
                "EXDATE;TZID=America/New_York:20260306T090000",
            ],
            "attendees": [{"email": EMAIL, "self": True, "responseStatus": "accepted"}],
        },
    )
    fake.delete_event(EMAIL, CAL, "standup_20260307T140000Z")
    fake.put_event(
        EMAIL,
        CAL,
        {
            "recurringEventId": "standup",
            "originalStartTime": {
                "dateTime": "2026-03-08T09:00:00-04:00",  # DST began that night
                "timeZone": "America/New_York",
            },
            "summary": "Standup (late)",
            "start": {"dateTime": "2026-03-08T11:00:00-04:00"},
            "end": {"dateTime": "2026-03-08T11:15:00-04:00"},
        },
    )
    items = list_events(client, singleEvents="true", orderBy="startTime")["items"]
    assert [(i["id"], i["start"]["dateTime"]) for i in items] == [
        ("standup_20260305T140000Z", "2026-03-05T09:00:00-05:00"),
        ("standup_20260308T130000Z", "2026-03-08T11:00:00-04:00"),
        ("standup_20260309T130000Z", "2026-03-09T09:00:00-04:00"),
    ]
    assert all(i["recurringEventId"] == "standup" for i in items)
    assert {i["iCalUID"] for i in items} == {"standup@google.com"}
    assert items[2]["originalStartTime"]["dateTime"] == "2026-03-09T09:00:00-04:00"
    assert items[2]["end"]["dateTime"] == "2026-03-09T09:15:00-04:00"
    assert "recurrence" not in items[0]
    with_deleted = list_events(client, singleEvents="true", showDeleted="true")["items"]
    cancelled = [i["id"] for i in with_deleted if i["status"] == "cancelled"]
    assert cancelled == ["standup_20260307T140000Z"]
    masters = list_events(client)["items"]  # singleEvents=false: the series and its exceptions
    assert sorted(i["id"] for i in masters) == [
        "standup",
        "standup_20260307T140000Z",
        "standup_20260308T130000Z",
    ]
    instance = client.get(f"calendars/{CAL}/events/standup_20260309T130000Z").json()
    assert instance["summary"] == "Standup"


def test_all_day_series_instance_ids(fake: GoogleFake, client: httpx.Client) -> None:
    fake.put_event(
        EMAIL,
        CAL,
        {
            "id": "bday",
            "start": {"date": "2026-06-01"},
            "end": {"date": "2026-06-02"},
            "recurrence": ["RRULE:FREQ=YEARLY;COUNT=2"],
        },
    )
    items = list_events(client, singleEvents="true")["items"]
    assert [(i["id"], i["start"], i["end"]) for i in items] == [
        ("bday_20260601", {"date": "2026-06-01"}, {"date": "2026-06-02"}),
        ("bday_20270601", {"date": "2027-06-01"}, {"date": "2027-06-02"}),
    ]


def test_incremental_sync(fake: GoogleFake, client: httpx.Client) -> None:
    fake.put_event(EMAIL, CAL, event("keep", 1))
    fake.put_event(EMAIL, CAL, event("change", 2))
    fake.put_event(EMAIL, CAL, event("drop", 3))
    _, token = all_pages(client, singleEvents="true")
    assert token is not None
    unchanged = list_events(client, singleEvents="true", syncToken=token)
    assert unchanged["items"] == [] and unchanged["nextSyncToken"] == token

    fake.put_event(EMAIL, CAL, event("change", 2, summary="changed"))
    fake.delete_event(EMAIL, CAL, "drop")
    fake.put_event(EMAIL, CAL, event("new", 4))
    changes = list_events(client, singleEvents="true", syncToken=token)
    by_id = {i["id"]: i for i in changes["items"]}
    assert set(by_id) == {"change", "drop", "new"}
    assert by_id["change"]["summary"] == "changed"
    assert by_id["drop"]["status"] == "cancelled" and "start" not in by_id["drop"]
    assert changes["nextSyncToken"] != token

    fake.expire_sync_tokens()
    response = client.get(
        f"calendars/{CAL}/events", params={"singleEvents": "true", "syncToken": token}
    )
    error = google_error(response, 410, "fullSyncRequired")
    assert error["errors"][0]["domain"] == "calendar"
    garbage = client.get(f"calendars/{CAL}/events", params={"syncToken": "not-a-token"})
    google_error(garbage, 410, "fullSyncRequired")


def test_sync_token_with_other_single_events_is_flagged(
    fake: GoogleFake, client: httpx.Client
) -> None:
    _, token = all_pages(client, singleEvents="true")
    assert token is not None
    list_events(client, syncToken=token)
    assert "singleEvents" in fake.violations[0].problem
    fake.violations.clear()


def test_removed_calendar_is_not_found(fake: GoogleFake, client: httpx.Client) -> None:
    fake.add_calendar(EMAIL, "team@group.calendar.google.com", "Team")
    assert client.get("calendars/team%40group.calendar.google.com/events").status_code == 200
    fake.remove_calendar(EMAIL, "team@group.calendar.google.com")
    response = client.get("calendars/team%40group.calendar.google.com/events")
    google_error(response, 404, "notFound")
    assert fake.violations == []  # a missing calendar is an answer, not a bad request


# --- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "domain", "grpc"),
    [
        (401, "authError", "global", "UNAUTHENTICATED"),
        (403, "rateLimitExceeded", "usageLimits", "PERMISSION_DENIED"),
        (403, "userRateLimitExceeded", "usageLimits", "PERMISSION_DENIED"),
        (410, "fullSyncRequired", "calendar", None),
        (429, "rateLimitExceeded", "usageLimits", "RESOURCE_EXHAUSTED"),
        (500, "backendError", "global", "INTERNAL"),
        (503, "backendError", "global", "UNAVAILABLE"),
    ],
)
def test_injected_faults_use_googles_bodies(
    fake: GoogleFake,
    client: httpx.Client,
    status: int,
    reason: str,
    domain: str,
    grpc: str | None,
) -> None:
    fake.fail_next(status, reason=reason if status == 403 else None)
    error = google_error(client.get("users/me/calendarList"), status, reason)
    assert error["errors"][0]["domain"] == domain
    assert error.get("status") == grpc
    assert client.get("users/me/calendarList").status_code == 200  # only the next one


def test_fault_count_method_and_retry_after(fake: GoogleFake, client: httpx.Client) -> None:
    fake.fail_next(429, retry_after=30, count=2, method="events.list")
    assert client.get("users/me/calendarList").status_code == 200
    for _ in range(2):
        response = client.get(f"calendars/{CAL}/events")
        google_error(response, 429, "rateLimitExceeded")
        assert response.headers["Retry-After"] == "30"
    assert client.get(f"calendars/{CAL}/events").status_code == 200
    assert [r.status for r in fake.requests] == [200, 429, 429, 200]


def test_malformed_requests_are_refused_before_faults(
    fake: GoogleFake, client: httpx.Client
) -> None:
    fake.fail_next(500)
    google_error(client.get(f"calendars/{CAL}/events", params={"bogus": "1"}), 400, "badRequest")
    google_error(client.get(f"calendars/{CAL}/events"), 500, "backendError")
    fake.violations.clear()


# --- calendarList --------------------------------------------------------------------------------


def test_calendar_list_entries(fake: GoogleFake, client: httpx.Client) -> None:
    fake.page_size = 1
    fake.add_calendar(EMAIL, "fb@group.calendar.google.com", "FB", access_role="freeBusyReader")
    fake.add_calendar(EMAIL, "w@group.calendar.google.com", "W", access_role="writer")
    first = client.get("users/me/calendarList", params={"minAccessRole": "reader"}).json()
    assert first["kind"] == "calendar#calendarList" and len(first["items"]) == 1
    second = client.get(
        "users/me/calendarList",
        params={"minAccessRole": "reader", "pageToken": first["nextPageToken"]},
    ).json()
    assert "nextPageToken" not in second
    entries = first["items"] + second["items"]
    assert [(e["id"], e["accessRole"], e.get("primary", False)) for e in entries] == [
        (CAL, "owner", True),
        ("w@group.calendar.google.com", "writer", False),
    ]


# --- writes ---------------------------------------------------------------------------------------


def test_calendars_insert_get_and_delete(fake: GoogleFake, client: httpx.Client) -> None:
    response = client.post("calendars", json={"summary": "Bookings", "description": "calsync"})
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["kind"] == "calendar#calendar" and created["summary"] == "Bookings"
    assert created["timeZone"] == "America/New_York"  # the primary calendar's
    assert created["id"].endswith("@group.calendar.google.com")
    path = f"calendars/{quote(created['id'], safe='')}"
    listed = client.get("users/me/calendarList").json()["items"]
    assert [(e["id"], e["accessRole"]) for e in listed if e["id"] == created["id"]] == [
        (created["id"], "owner")
    ]
    assert client.get(path).json() == created
    assert client.delete(path).status_code == 204
    google_error(client.delete(path), 404, "notFound")
    google_error(client.get(f"{path}/events"), 404, "notFound")
    assert created["id"] not in {
        e["id"] for e in client.get("users/me/calendarList").json()["items"]
    }
    google_error(client.post("calendars", json={}), 400, "required")
    assert [v.method for v in fake.violations] == ["calendar.calendars.insert"]
    fake.violations.clear()
    assert fake.response_violations == []


def test_primary_calendar_cannot_be_deleted(fake: GoogleFake, client: httpx.Client) -> None:
    google_error(client.delete("calendars/primary"), 400, "invalid")
    assert client.get(f"calendars/{CAL}/events").status_code == 200
    fake.violations.clear()


def test_insert_with_client_ids(fake: GoogleFake, client: httpx.Client) -> None:
    path = f"calendars/{CAL}/events"
    inserted = client.post(path, json=event("abcdef0123", 1))
    assert inserted.status_code == 200, inserted.text
    body = inserted.json()
    assert (body["id"], body["status"], body["kind"]) == (
        "abcdef0123",
        "confirmed",
        "calendar#event",
    )
    assert client.get(f"{path}/abcdef0123").json() == body
    google_error(client.post(path, json=event("abcdef0123", 2)), 409, "duplicate")
    for bad in ("abc", "ABCDEF0123", "wxyz01234"):  # too short, upper case, beyond base32hex
        google_error(client.post(path, json=event(bad, 1)), 400, "invalid")
    generated = client.post(path, json={k: v for k, v in event("x", 1).items() if k != "id"})
    assert re.fullmatch(r"[a-v0-9]{5,}", generated.json()["id"])
    google_error(client.post(path, json={"summary": "no times"}), 400, "required")
    assert len(fake.violations) == 4
    fake.violations.clear()
    assert fake.response_violations == []


def test_deleted_id_stays_taken_and_update_restores(fake: GoogleFake, client: httpx.Client) -> None:
    path = f"calendars/{CAL}/events"
    client.post(path, json=event("e1e1e1", 1))
    _, token = all_pages(client, singleEvents="true")
    assert client.delete(f"{path}/e1e1e1").status_code == 204
    google_error(client.delete(f"{path}/e1e1e1"), 410, "deleted")
    assert client.get(f"{path}/e1e1e1").json()["status"] == "cancelled"
    changes = list_events(client, singleEvents="true", syncToken=str(token))
    assert [(i["id"], i["status"]) for i in changes["items"]] == [("e1e1e1", "cancelled")]
    google_error(client.post(path, json=event("e1e1e1", 1)), 409, "duplicate")
    restored = client.put(f"{path}/e1e1e1", json=event("e1e1e1", 1, summary="back"))
    assert restored.status_code == 200
    assert restored.json()["status"] == "confirmed"
    again = list_events(client, singleEvents="true", syncToken=changes["nextSyncToken"])
    assert [(i["id"], i["summary"], i["etag"]) for i in again["items"]] == [
        ("e1e1e1", "back", restored.json()["etag"])
    ]
    google_error(client.put(f"{path}/nosuchevent", json=event("nosuchevent", 1)), 404, "notFound")
    assert fake.violations == [] and fake.response_violations == []


def test_if_match_guards_update_patch_and_delete(fake: GoogleFake, client: httpx.Client) -> None:
    path = f"calendars/{CAL}/events/e2e2e2"
    first = client.post(f"calendars/{CAL}/events", json=event("e2e2e2", 1)).json()
    second = client.put(
        path, json=event("e2e2e2", 1, summary="v2"), headers={"If-Match": first["etag"]}
    )
    assert second.status_code == 200 and second.json()["etag"] != first["etag"]
    stale = {"If-Match": first["etag"]}
    error = google_error(
        client.put(path, json=event("e2e2e2", 1), headers=stale), 412, "conditionNotMet"
    )
    assert error["status"] == "FAILED_PRECONDITION"
    google_error(client.patch(path, json={"summary": "x"}, headers=stale), 412, "conditionNotMet")
    google_error(client.delete(path, headers=stale), 412, "conditionNotMet")
    patched = client.patch(
        path, json={"location": "Room 1"}, headers={"If-Match": second.json()["etag"]}
    ).json()
    assert (patched["summary"], patched["location"]) == ("v2", "Room 1")  # merged in
    assert client.delete(path, headers={"If-Match": patched["etag"]}).status_code == 204
    assert fake.violations == [] and fake.response_violations == []


def test_writes_need_writer_access(fake: GoogleFake, client: httpx.Client) -> None:
    fake.add_calendar(EMAIL, "ro@group.calendar.google.com", "RO", access_role="reader")
    response = client.post(
        "calendars/ro%40group.calendar.google.com/events", json=event("abcde1", 1)
    )
    google_error(response, 403, "requiredAccessLevel")
    google_error(client.post("calendars/gone/events", json=event("abcde1", 1)), 404, "notFound")


def test_writes_notify_push_channels(fake: GoogleFake, client: httpx.Client) -> None:
    watch = {"id": "ch-writes", "type": "web_hook", "address": "https://127.0.0.1:9/hook"}
    assert client.post(f"calendars/{CAL}/events/watch", json=watch).status_code == 200
    client.post(f"calendars/{CAL}/events", json=event("abcde2", 1))
    client.delete(f"calendars/{CAL}/events/abcde2")
    states = [d.state for d in fake.wait_deliveries(3)]
    assert states == ["sync", "exists", "exists"]


# --- batch requests -------------------------------------------------------------------------------

Call = tuple[str, str, dict[str, Any] | None, dict[str, str]]  # method, path, JSON body, headers


def send_batch(client: httpx.Client, calls: list[Call]) -> httpx.Response:
    boundary = "batch_test_boundary"
    body = ""
    for index, (method, path, resource, headers) in enumerate(calls):
        body += f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <c{index}>\r\n\r\n"
        body += f"{method} /calendar/v3/{path} HTTP/1.1\r\n"
        body += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if resource is not None:
            body += f"Content-Type: application/json\r\n\r\n{json.dumps(resource)}\r\n"
        else:
            body += "\r\n"
    body += f"--{boundary}--\r\n"
    return client.post(
        client.base_url.copy_with(path="/batch/calendar/v3"),
        content=body.encode(),
        headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
    )


def batch_answers(response: httpx.Response) -> list[tuple[str, int, dict[str, str], Any]]:
    """(Content-ID, status, headers, JSON body or None) per part, read with the email parser."""
    assert response.status_code == 200, response.text
    head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + response.content)
    assert message.get_content_type() == "multipart/mixed"
    out = []
    for part in message.iter_parts():
        assert part.get_content_type() == "application/http"
        raw = part.get_payload(decode=True)
        assert isinstance(raw, bytes)
        status_line, _, rest = raw.partition(b"\r\n")
        inner = BytesParser(policy=HTTP).parsebytes(rest)
        text = inner.get_payload()
        body = json.loads(text) if isinstance(text, str) and text.strip() else None
        headers = {name.lower(): str(value) for name, value in inner.items()}
        out.append((str(part["Content-ID"]), int(status_line.split()[1]), headers, body))
    return out


def test_batch_serves_each_call_and_answers_in_order(
    fake: GoogleFake, client: httpx.Client
) -> None:
    fake.put_event(EMAIL, CAL, event("old0000", 1))
    events = f"calendars/{CAL}/events"
    answers = batch_answers(
        send_batch(
            client,
            [
                ("POST", events, event("fresh00", 1), {}),
                ("POST", events, event("old0000", 1), {}),
                ("PUT", f"{events}/old0000", event("old0000", 1), {"If-Match": '"stale"'}),
                ("DELETE", f"{events}/old0000", None, {}),
                ("GET", "users/me/calendarList?maxResults=5", None, {}),
            ],
        )
    )
    assert [(a[0], a[1]) for a in answers] == [
        ("<response-c0>", 200),
        ("<response-c1>", 409),
        ("<response-c2>", 412),
        ("<response-c3>", 204),
        ("<response-c4>", 200),
    ]
    assert answers[0][3]["id"] == "fresh00"
    assert answers[1][3]["error"]["errors"][0]["reason"] == "duplicate"
    assert answers[4][3]["kind"] == "calendar#calendarList"
    assert client.get(f"{events}/old0000").json()["status"] == "cancelled"
    assert [(r.method, r.status, r.batch) for r in fake.requests] == [
        ("batch", 200, None),
        ("calendar.events.insert", 200, 1),
        ("calendar.events.insert", 409, 1),
        ("calendar.events.update", 412, 1),
        ("calendar.events.delete", 204, 1),
        ("calendar.calendarList.list", 200, 1),
        ("calendar.events.get", 200, None),
    ]
    assert fake.requests_for(BATCH) == fake.requests[:1]
    assert fake.requests[5].params == {"maxResults": "5"}
    assert fake.violations == [] and fake.response_violations == []


def test_faults_hit_single_calls_of_a_batch(fake: GoogleFake, client: httpx.Client) -> None:
    fake.fail_next(403, reason="rateLimitExceeded", retry_after=7, method="events.insert", after=1)
    calls: list[Call] = [
        ("POST", f"calendars/{CAL}/events", event(f"ev{i:05d}", 1), {}) for i in range(3)
    ]
    answers = batch_answers(send_batch(client, calls))
    assert [a[1] for a in answers] == [200, 403, 200]
    assert answers[1][2]["retry-after"] == "7"
    assert answers[1][3]["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    fake.fail_next(503, method=BATCH)
    google_error(send_batch(client, calls[:1]), 503, "backendError")
    assert client.get(f"calendars/{CAL}/events/ev00001").status_code == 404


def test_each_call_of_a_batch_is_authorised(fake: GoogleFake, client: httpx.Client) -> None:
    calls: list[Call] = [
        ("GET", "users/me/calendarList", None, {"Authorization": "Bearer wrong"}),
        ("GET", "users/me/calendarList", None, {}),
    ]
    assert [a[1] for a in batch_answers(send_batch(client, calls))] == [401, 200]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{}"),
        ("multipart/mixed", b"--x\r\n\r\n--x--"),  # no boundary parameter
        (
            "multipart/mixed; boundary=x",
            b"--x\r\nContent-Type: text/plain\r\n\r\nGET / HTTP/1.1\r\n--x--",
        ),
        (
            "multipart/mixed; boundary=x",
            b"--x\r\nContent-Type: application/http\r\n\r\n"
            b"GET https://www.googleapis.com/calendar/v3/colors HTTP/1.1\r\n--x--",
        ),
        ("multipart/mixed; boundary=x", b"--x\r\nContent-Type: application/http\r\n\r\n"),
    ],
)
def test_malformed_batches_are_refused(
    fake: GoogleFake, client: httpx.Client, content_type: str, body: bytes
) -> None:
    url = client.base_url.copy_with(path="/batch/calendar/v3")
    response = client.post(url, content=body, headers={"Content-Type": content_type})
    google_error(response, 400, "invalid")
    assert [v.method for v in fake.violations] == [BATCH]
    fake.violations.clear()


def test_batches_hold_at_most_fifty_calls(fake: GoogleFake, client: httpx.Client) -> None:
    calls: list[Call] = [("GET", "users/me/calendarList", None, {})] * 51
    google_error(send_batch(client, calls), 400, "invalid")
    assert "at most 50" in fake.violations[0].problem
    fake.violations.clear()
    assert len(batch_answers(send_batch(client, calls[:50]))) == 50
