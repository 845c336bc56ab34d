"""The Microsoft Graph fake itself: formats, refusals, paging, delta rounds and faults."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.peers.graph_fake import EXPORT_PROPERTY_ID, GraphFake, start_graph_fake

ADA = "ada@example.com"
TOKEN = "tok-ada"
START = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)  # a Monday
WINDOW = {"startDateTime": "2030-03-01T00:00:00Z", "endDateTime": "2030-04-01T00:00:00Z"}


@pytest.fixture
def fake() -> Iterator[GraphFake]:
    with start_graph_fake() as server:
        server.add_account(ADA, "ada@contoso.onmicrosoft.com", token=TOKEN)
        yield server


@pytest.fixture
def client(fake: GraphFake) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=fake.api_url + "/", headers=headers, timeout=5.0) as http:
        yield http


def _error(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    assert {"code", "message", "innerError"} <= set(body["error"])
    return str(body["error"]["code"])


def _series(fake: GraphFake, calendar_id: str, count: int = 4) -> dict[str, Any]:
    return fake.put_event(
        ADA,
        calendar_id,
        subject="weekly",
        start=START,
        end=START + timedelta(hours=1),
        recurrence={
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "thursday"]},
            "range": {"type": "numbered", "numberOfOccurrences": count, "startDate": "2030-03-04"},
        },
    )


def test_me_and_calendars(fake: GraphFake, client: httpx.Client) -> None:
    me = client.get("me").json()
    assert (me["mail"], me["userPrincipalName"]) == (ADA, "ada@contoso.onmicrosoft.com")
    fake.add_calendar(ADA, "Work", can_edit=False)
    listing = client.get("me/calendars").json()
    assert [(c["name"], c["isDefaultCalendar"], c["canEdit"]) for c in listing["value"]] == [
        ("Calendar", True, True),
        ("Work", False, False),
    ]
    default = client.get("me/calendar").json()
    assert default["id"] == fake.default_calendar(ADA).id
    selected = client.get("me/calendars", params={"$select": "name"}).json()["value"]
    assert set(selected[0]) == {"id", "name"}


def test_calendars_page_with_next_links(fake: GraphFake, client: httpx.Client) -> None:
    for n in range(4):
        fake.add_calendar(ADA, f"c{n}")
    page = client.get("me/calendars", headers={"Prefer": "odata.maxpagesize=2"}).json()
    names = [c["name"] for c in page["value"]]
    while "@odata.nextLink" in page:
        assert page["@odata.nextLink"].startswith(fake.api_url + "/me/calendars?")
        page = client.get(page["@odata.nextLink"]).json()
        names += [c["name"] for c in page["value"]]
    assert names == ["Calendar", "c0", "c1", "c2", "c3"]


def test_authentication(fake: GraphFake) -> None:
    with httpx.Client(base_url=fake.api_url + "/", timeout=5.0) as http:
        missing = http.get("me")
        assert missing.status_code == 401 and _error(missing) == "InvalidAuthenticationToken"
        wrong = http.get("me", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    fake.token_validator = lambda token: ADA if token.startswith("jwt.") else None
    with httpx.Client(base_url=fake.api_url + "/", timeout=5.0) as http:
        assert http.get("me", headers={"Authorization": "Bearer jwt.abc"}).status_code == 200
        assert http.get("me", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401


def test_mailbox_without_rest_access(fake: GraphFake) -> None:
    fake.add_account("old@example.com", token="tok-old", mailbox_enabled=False)
    headers = {"Authorization": "Bearer tok-old"}
    with httpx.Client(base_url=fake.api_url + "/", headers=headers, timeout=5.0) as http:
        assert http.get("me").status_code == 200
        response = http.get("me/calendars")
        assert response.status_code == 404
        assert _error(response) == "MailboxNotEnabledForRESTAPI"


def test_calendar_view_needs_a_window(fake: GraphFake, client: httpx.Client) -> None:
    calendar = fake.default_calendar(ADA)
    for path in (
        f"me/calendars/{calendar.id}/calendarView",
        f"me/calendars/{calendar.id}/calendarView/delta",
    ):
        response = client.get(path, params={"startDateTime": WINDOW["startDateTime"]})
        assert response.status_code == 400
        assert _error(response) == "ErrorInvalidParameter"
    bad = client.get(
        f"me/calendars/{calendar.id}/calendarView",
        params={"startDateTime": "soon", "endDateTime": "later"},
    )
    assert bad.status_code == 400


def test_delta_refuses_select_and_expand(fake: GraphFake, client: httpx.Client) -> None:
    calendar = fake.default_calendar(ADA)
    for extra in ({"$select": "subject"}, {"$expand": "singleValueExtendedProperties"}):
        response = client.get(
            f"me/calendars/{calendar.id}/calendarView/delta", params={**WINDOW, **extra}
        )
        assert response.status_code == 400


def test_unknown_calendar_and_unknown_property(fake: GraphFake, client: httpx.Client) -> None:
    response = client.get("me/calendars/nope/calendarView", params=WINDOW)
    assert response.status_code == 404 and _error(response) == "ErrorItemNotFound"
    calendar = fake.default_calendar(ADA)
    response = client.get(
        f"me/calendars/{calendar.id}/calendarView", params={**WINDOW, "$select": "colour"}
    )
    assert response.status_code == 400


def test_calendar_view_expands_series(fake: GraphFake, client: httpx.Client) -> None:
    calendar = fake.default_calendar(ADA)
    master = _series(fake, calendar.id, count=5)
    fake.modify_occurrence(
        ADA,
        calendar.id,
        master["id"],
        date(2030, 3, 7),
        start=START + timedelta(days=3, hours=5),
        end=START + timedelta(days=3, hours=6),
    )
    fake.delete_occurrence(ADA, calendar.id, master["id"], date(2030, 3, 11))
    fake.cancel_occurrence(ADA, calendar.id, master["id"], date(2030, 3, 14))
    view = client.get(f"me/calendars/{calendar.id}/calendarView", params=WINDOW).json()["value"]
    assert [(e["type"], e["start"]["dateTime"], e["isCancelled"]) for e in view] == [
        ("occurrence", "2030-03-04T09:00:00.0000000", False),
        ("exception", "2030-03-07T14:00:00.0000000", False),
        ("exception", "2030-03-14T09:00:00.0000000", True),
        ("occurrence", "2030-03-18T09:00:00.0000000", False),
    ]
    assert all(e["seriesMasterId"] == master["id"] for e in view)
    assert len({e["iCalUId"] for e in view}) == 4
    assert all(e["start"]["timeZone"] == "UTC" for e in view)
    one = client.get(f"me/events/{view[0]['id']}").json()
    assert one["type"] == "occurrence" and one["subject"] == "weekly"
    gone = client.get(f"me/events/{fake.occurrence_id(master['id'], date(2030, 3, 11))}")
    assert gone.status_code == 404


def test_daily_series_with_end_date(fake: GraphFake) -> None:
    calendar = fake.default_calendar(ADA)
    fake.put_event(
        ADA,
        calendar.id,
        subject="daily",
        start=START,
        end=START + timedelta(minutes=30),
        recurrence={
            "pattern": {"type": "daily", "interval": 3},
            "range": {"type": "endDate", "startDate": "2030-03-04", "endDate": "2030-03-13"},
        },
    )
    found = fake.instances(ADA, calendar.id, START - timedelta(days=1), START + timedelta(days=60))
    assert [i["start"]["dateTime"][:10] for i in found] == [
        "2030-03-04",
        "2030-03-07",
        "2030-03-10",
        "2030-03-13",
    ]


def test_time_zone_preference_and_extended_properties(
    fake: GraphFake, client: httpx.Client
) -> None:
    calendar = fake.default_calendar(ADA)
    fake.put_event(ADA, calendar.id, subject="t", start=START, end=START, export_tag="s-1")
    fake.put_event(ADA, calendar.id, subject="d", start=date(2030, 3, 5), end=date(2030, 3, 6))
    url = f"me/calendars/{calendar.id}/calendarView"
    headers = {"Prefer": 'outlook.timezone="Europe/Berlin"'}
    view = client.get(url, params=WINDOW, headers=headers)
    assert 'outlook.timezone="Europe/Berlin"' in view.headers["Preference-Applied"]
    timed, all_day = view.json()["value"]
    assert timed["start"] == {
        "dateTime": "2030-03-04T10:00:00.0000000",
        "timeZone": "Europe/Berlin",
    }
    assert all_day["start"]["dateTime"] == "2030-03-05T00:00:00.0000000"  # all-day: not shifted
    assert "singleValueExtendedProperties" not in timed
    expand = f"singleValueExtendedProperties($filter=id eq '{EXPORT_PROPERTY_ID}')"
    expanded = client.get(url, params={**WINDOW, "$expand": expand}).json()["value"]
    assert expanded[0]["singleValueExtendedProperties"] == [
        {"id": EXPORT_PROPERTY_ID, "value": "s-1"}
    ]
    assert "singleValueExtendedProperties" not in expanded[1]  # no match: property left out


def _delta_round(
    client: httpx.Client, url: str, params: dict[str, str] | None, size: int = 2
) -> tuple[list[dict[str, Any]], str, int]:
    rows: list[dict[str, Any]] = []
    pages = 0
    headers = {"Prefer": f'outlook.timezone="UTC", odata.maxpagesize={size}'}
    while True:
        page = client.get(url, params=params, headers=headers).json()
        pages += 1
        rows += page["value"]
        assert not ("@odata.nextLink" in page and "@odata.deltaLink" in page)
        if "@odata.deltaLink" in page:
            return rows, page["@odata.deltaLink"], pages
        url, params = page["@odata.nextLink"], None


def test_delta_rounds(fake: GraphFake, client: httpx.Client) -> None:
    calendar = fake.default_calendar(ADA)
    events = [
        fake.put_event(
            ADA,
            calendar.id,
            subject=f"e{n}",
            start=START + timedelta(days=n),
            end=START + timedelta(days=n, hours=1),
        )
        for n in range(5)
    ]
    url = f"me/calendars/{calendar.id}/calendarView/delta"
    rows, delta_link, pages = _delta_round(client, url, WINDOW)
    assert pages == 3 and len(rows) == 5
    assert "$deltatoken" in delta_link

    unchanged, delta_link, pages = _delta_round(client, delta_link, None)
    assert (unchanged, pages) == ([], 1)

    fake.update_event(ADA, calendar.id, events[1]["id"], subject="changed")
    fake.delete_event(ADA, calendar.id, events[2]["id"])
    fake.update_event(  # moved out of the window: removed from this view
        ADA,
        calendar.id,
        events[3]["id"],
        start=START + timedelta(days=90),
        end=START + timedelta(days=90, hours=1),
    )
    changes, delta_link, _ = _delta_round(client, delta_link, None)
    assert [(r["id"], r.get("subject"), r.get("@removed")) for r in changes] == [
        (events[1]["id"], "changed", None),
        (events[2]["id"], None, {"reason": "deleted"}),
        (events[3]["id"], None, {"reason": "deleted"}),
    ]

    fake.expire_delta_tokens()
    expired = client.get(delta_link)
    assert expired.status_code == 410 and _error(expired) == "syncStateNotFound"


def test_delta_with_partial_occurrences(fake: GraphFake, client: httpx.Client) -> None:
    fake.partial_occurrences_in_delta = True
    calendar = fake.default_calendar(ADA)
    _series(fake, calendar.id, count=2)
    rows, _, _ = _delta_round(client, f"me/calendars/{calendar.id}/calendarView/delta", WINDOW)
    assert [set(r) for r in rows] == [
        {"@odata.type", "@odata.etag", "id", "type", "seriesMasterId", "start", "end"}
    ] * 2


def test_delta_of_a_removed_calendar(fake: GraphFake, client: httpx.Client) -> None:
    calendar = fake.add_calendar(ADA, "Temp")
    url = f"me/calendars/{calendar.id}/calendarView/delta"
    _, delta_link, _ = _delta_round(client, url, WINDOW)
    fake.remove_calendar(ADA, calendar.id)
    response = client.get(delta_link)
    assert response.status_code == 404 and _error(response) == "ErrorItemNotFound"


def test_fault_injection(fake: GraphFake, client: httpx.Client) -> None:
    fake.fail_next(429, retry_after=5, count=2)
    for _ in range(2):
        response = client.get("me")
        assert response.status_code == 429 and response.headers["Retry-After"] == "5"
        assert _error(response) == "ApplicationThrottled"
    assert client.get("me").status_code == 200
    fake.fail_next(503, path_contains="/calendars")
    assert client.get("me").status_code == 200  # not matching: untouched
    response = client.get("me/calendars")
    assert response.status_code == 503 and _error(response) == "ServiceUnavailable"
    fake.fail_next(403, code="ErrorAccessDenied")
    assert client.get("me/calendars").status_code == 403
    assert [r.status for r in fake.requests] == [429, 429, 200, 200, 503, 403]


def test_mailbox_concurrency_limit(fake: GraphFake) -> None:
    fake.response_delay = 0.4
    statuses: list[int] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def call() -> None:
        with httpx.Client(headers=headers, timeout=5.0) as http:
            statuses.append(http.get(fake.api_url + "/me").status_code)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) == 4 and statuses.count(429) == 2


def test_stop_closes_the_port() -> None:
    fake = start_graph_fake()
    url = fake.api_url
    fake.stop()
    with httpx.Client(timeout=2.0) as http, pytest.raises(httpx.ConnectError):
        http.get(url + "/me")


# --- writes ------------------------------------------------------------------------------------


def _event_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": "Class",
        "start": {"dateTime": "2030-03-05T10:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2030-03-05T11:00:00", "timeZone": "Europe/Berlin"},
    }
    body.update(fields)
    return body


def test_create_and_delete_calendars(fake: GraphFake, client: httpx.Client) -> None:
    created = client.post("me/calendars", json={"name": "Bookings"})
    assert created.status_code == 201
    calendar = created.json()
    assert (calendar["name"], calendar["isDefaultCalendar"]) == ("Bookings", False)
    assert calendar["id"] in fake.account(ADA).calendars
    duplicate = client.post("me/calendars", json={"name": "bookings"})
    assert duplicate.status_code == 409 and _error(duplicate) == "ErrorFolderExists"
    assert client.post("me/calendars", json={"name": ""}).status_code == 400
    assert client.post("me/calendars", json={"name": "x", "owner2": 1}).status_code == 400
    default = client.delete(f"me/calendars/{fake.default_calendar(ADA).id}")
    assert default.status_code == 400 and _error(default) == "ErrorDeleteDistinguishedFolder"
    assert client.delete(f"me/calendars/{calendar['id']}").status_code == 204
    assert client.get(f"me/calendars/{calendar['id']}").status_code == 404
    assert client.delete(f"me/calendars/{calendar['id']}").status_code == 404


def test_event_writes_show_in_delta(fake: GraphFake, client: httpx.Client) -> None:
    calendar = fake.add_calendar(ADA, "Bookings")
    url = f"me/calendars/{calendar.id}/calendarView/delta"
    _, delta_link, _ = _delta_round(client, url, WINDOW)
    prop = [{"id": EXPORT_PROPERTY_ID, "value": "s-1"}]
    body = _event_body(transactionId="t-1", singleValueExtendedProperties=prop)
    created = client.post(f"me/calendars/{calendar.id}/events", json=body)
    assert created.status_code == 201
    event = created.json()
    assert event["@odata.etag"] == f'W/"{event["changeKey"]}"'
    assert "singleValueExtendedProperties" not in event  # only with $expand
    again = client.post(f"me/calendars/{calendar.id}/events", json=body)
    assert again.status_code == 201 and again.json()["id"] == event["id"]
    assert len(calendar.events) == 1
    rows, delta_link, _ = _delta_round(client, delta_link, None)
    assert [(r["id"], r["@odata.etag"]) for r in rows] == [(event["id"], event["@odata.etag"])]

    stale = client.patch(
        f"me/events/{event['id']}", json={"subject": "x"}, headers={"If-Match": 'W/"old"'}
    )
    assert stale.status_code == 412 and _error(stale) == "PreconditionFailed"
    patched = client.patch(
        f"me/calendars/{calendar.id}/events/{event['id']}",
        json={
            "subject": "Renamed",
            "singleValueExtendedProperties": [{"id": "String x", "value": "v"}],
        },
        headers={"If-Match": event["@odata.etag"]},
    )
    assert patched.status_code == 200
    changed = patched.json()
    assert changed["subject"] == "Renamed" and changed["@odata.etag"] != event["@odata.etag"]
    stored = calendar.events[event["id"]]
    assert len(stored["singleValueExtendedProperties"]) == 2 and stored["transactionId"] == "t-1"
    rows, delta_link, _ = _delta_round(client, delta_link, None)
    assert [(r["subject"], r["@odata.etag"]) for r in rows] == [("Renamed", changed["@odata.etag"])]

    deleted = client.delete(
        f"me/events/{event['id']}", headers={"If-Match": changed["@odata.etag"]}
    )
    assert deleted.status_code == 204
    assert client.delete(f"me/events/{event['id']}").status_code == 404
    assert client.patch(f"me/events/{event['id']}", json={"subject": "y"}).status_code == 404
    rows, _, _ = _delta_round(client, delta_link, None)
    assert rows == [
        {
            "@odata.type": "#microsoft.graph.event",
            "id": event["id"],
            "@removed": {"reason": "deleted"},
        }
    ]
    recreated = client.post(f"me/calendars/{calendar.id}/events", json=body)
    assert recreated.json()["id"] != event["id"]  # the transaction's event is gone


def test_default_calendar_event_paths(fake: GraphFake, client: httpx.Client) -> None:
    created = client.post("me/events", json=_event_body())
    assert created.status_code == 201
    default = fake.default_calendar(ADA)
    assert list(default.events) == [created.json()["id"]]
    assert client.post("me/calendar/events", json=_event_body()).status_code == 201
    assert len(client.get("me/events").json()["value"]) == 2
    other = fake.add_calendar(ADA, "Other")
    wrong = client.get(f"me/calendars/{other.id}/events/{created.json()['id']}")
    assert wrong.status_code == 404
    assert client.post("me/calendars/AAMknone/events", json=_event_body()).status_code == 404


def test_event_writes_are_checked(fake: GraphFake, client: httpx.Client) -> None:
    path = f"me/calendars/{fake.default_calendar(ADA).id}/events"
    cases = [
        (_event_body(colour="red"), "RequestBodyRead"),
        (_event_body(id="mine"), "ErrorInvalidPropertySet"),
        (
            _event_body(start={"dateTime": "2030-03-05T10:00:00", "timeZone": "Nowhere/Land"}),
            "TimeZoneNotSupportedException",
        ),
        (_event_body(isAllDay=True), "ErrorPropertyValidationFailure"),
        (
            _event_body(end={"dateTime": "2030-03-05T08:00:00", "timeZone": "UTC"}),
            "ErrorInvalidRequest",
        ),
        ({"subject": "no times"}, "ErrorInvalidRequest"),
    ]
    for body, code in cases:
        response = client.post(path, json=body)
        assert response.status_code == 400 and _error(response) == code, body
    assert not fake.default_calendar(ADA).events


def test_filter_on_an_extended_property(fake: GraphFake, client: httpx.Client) -> None:
    calendar = fake.default_calendar(ADA)
    for n in range(3):
        fake.put_event(
            ADA, calendar.id, subject=f"e{n}", start=START, end=START, export_tag=f"T{n}"
        )
    wanted = (
        f"singleValueExtendedProperties/Any(ep: ep/id eq '{EXPORT_PROPERTY_ID}'"
        " and ep/value eq 't1')"  # values compare case-insensitively
    )
    found = client.get(f"me/calendars/{calendar.id}/events", params={"$filter": wanted})
    assert [e["subject"] for e in found.json()["value"]] == ["e1"]
    other = client.get(f"me/calendars/{calendar.id}/events", params={"$filter": "subject eq 'e1'"})
    assert other.status_code == 400


def test_batch(fake: GraphFake, client: httpx.Client) -> None:
    path = f"/me/calendars/{fake.default_calendar(ADA).id}/events"
    json_headers = {"Content-Type": "application/json"}
    requests = [
        {
            "id": str(n),
            "method": "POST",
            "url": path,
            "headers": json_headers,
            "body": _event_body(),
        }
        for n in range(1, 4)
    ] + [{"id": "4", "method": "GET", "url": "/me/events/AAMknone"}]
    fake.fail_next(429, retry_after=9, path_contains="/events", method="POST", after=1)
    response = client.post("$batch", json={"requests": requests})
    assert response.status_code == 200
    answers = response.json()["responses"]
    assert [a["id"] for a in answers] == ["4", "3", "2", "1"]  # correlate by id
    status = {a["id"]: a["status"] for a in answers}
    assert status == {"1": 201, "2": 429, "3": 201, "4": 404}
    throttled = next(a for a in answers if a["id"] == "2")
    assert throttled["headers"]["retry-after"] == "9"
    assert throttled["body"]["error"]["code"] == "ApplicationThrottled"
    assert len(fake.default_calendar(ADA).events) == 2
    inner = [r for r in fake.requests if r.batch_id is not None]
    assert [(r.batch_id, r.method, r.status) for r in inner] == [
        ("1", "POST", 201),
        ("2", "POST", 429),
        ("3", "POST", 201),
        ("4", "GET", 404),
    ]
    too_many = [{"id": str(n), "method": "GET", "url": "/me"} for n in range(21)]
    assert client.post("$batch", json={"requests": too_many}).status_code == 400
    no_type = [{"id": "1", "method": "POST", "url": path, "body": _event_body()}]
    assert client.post("$batch", json={"requests": no_type}).status_code == 400
    twice = [{"id": "a", "method": "GET", "url": "/me"}, {"id": "A", "method": "GET", "url": "/me"}]
    assert client.post("$batch", json={"requests": twice}).status_code == 400


def test_a_lost_response(fake: GraphFake, client: httpx.Client) -> None:
    fake.fail_next(504, method="POST", applied=True)
    assert client.get("me").status_code == 200  # another method: untouched
    response = client.post("me/events", json=_event_body())
    assert response.status_code == 504 and _error(response) == "GatewayTimeout"
    assert len(fake.default_calendar(ADA).events) == 1  # carried out all the same
