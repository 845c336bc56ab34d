"""Bad input gets 400 with field violations in the error envelope, and changes nothing."""

from __future__ import annotations

import pytest

from tests.api.test_external_api import EMAIL, PASSWORD, connect, make_schedule
from tests.conftest import EXT, FAKE_PROVIDER_ID, Api, random_guid
from tests.fakes import FakeProvider

GOOD = {"providerId": FAKE_PROVIDER_ID, "email": EMAIL, "password": PASSWORD}


@pytest.fixture
def account(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.add_account(EMAIL, PASSWORD)
    fake_provider.add_calendar(EMAIL, "home", "Home", primary=True)
    return fake_provider


def violations(response) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 400, response.text
    details = response.json()["details"]
    assert set(details) == {"validationError"}
    assert response.json()["message"].startswith("INVALID_ARGUMENT")
    return [(v["field"], v["violatedRule"]) for v in details["validationError"]["fieldViolations"]]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"scheduleId": "abc"}, [("scheduleId", "FORMAT")]),
        ({"providerId": "{not-a-guid}"}, [("providerId", "FORMAT")]),
        ({"email": "not-an-email"}, [("email", "FORMAT")]),
        ({"email": "a b@example.com"}, [("email", "FORMAT")]),
        ({"email": None}, [("email", "REQUIRED_FIELD")]),
        ({"password": ""}, [("password", "REQUIRED_FIELD")]),
        ({"password": 12345}, [("password", "FORMAT")]),
        ({"password": "x" * 2000}, [("password", "MAX")]),
        ({"scheduleId": 7, "email": "@"}, [("scheduleId", "FORMAT"), ("email", "FORMAT")]),
    ],
)
def test_connect_by_credentials_rejects(
    api: Api,
    account: FakeProvider,
    change: dict,
    expected: list,  # type: ignore[type-arg]
) -> None:
    schedule_id = make_schedule(api)
    body = {**GOOD, "scheduleId": schedule_id, **change}
    assert violations(api.post(f"{EXT}/connections:connectByCredentials", body)) == expected
    assert api.get(f"{EXT}/connections").json()["connections"] == []
    assert "verify" not in account.calls


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b""])
def test_body_must_be_a_json_object(api: Api, raw: bytes) -> None:
    response = api.client.post(
        f"{EXT}/connections:connectByCredentials",
        content=raw,
        headers={**api.headers(), "content-type": "application/json"},
    )
    assert violations(response)[0][0] == ""


@pytest.mark.parametrize(
    ("redirect", "rule"),
    [
        ("ftp://example.com/x", "FORMAT"),
        ("/relative", "FORMAT"),
        ("https://", "FORMAT"),
        (None, "REQUIRED_FIELD"),
    ],
)
def test_connect_by_oauth_rejects_bad_redirect(api: Api, redirect: str | None, rule: str) -> None:
    body = {
        "scheduleId": make_schedule(api),
        "providerId": FAKE_PROVIDER_ID,
        "redirectUrl": redirect,
    }
    assert violations(api.post(f"{EXT}/connections:connectByOAuth", body)) == [
        ("redirectUrl", rule)
    ]


def test_bad_sync_config_changes_nothing(api: Api, account: FakeProvider) -> None:
    connection_id = connect(api, make_schedule(api))["connection"]["id"]
    before = api.get(f"{EXT}/connections/{connection_id}").json()["connection"]["syncConfig"]
    path = f"{EXT}/connections/{connection_id}/sync-config"
    bad_bodies = [
        {"syncConfig": "yes"},
        {"syncConfig": {"listEventFromCalendars": {"enabled": "true"}}},
        {"syncConfig": {"listEventFromCalendars": {"enabled": True, "calendars": {}}}},
        {"syncConfig": {"listEventFromCalendars": {"calendars": {"calendars": [{"name": "x"}]}}}},
        {"syncConfig": {"syncToCalendar": {"primaryCalendar": {}, "dedicatedCalendar": {}}}},
        {"syncConfig": {"syncToCalendar": {"includeBufferTime": "no"}}},
        {"syncConfig": {}, "fieldMask": 5},
    ]
    for body in bad_bodies:
        assert violations(api.patch(path, body)), body
    after = api.get(f"{EXT}/connections/{connection_id}").json()["connection"]["syncConfig"]
    assert after == before


def test_list_connections_validates_schedule_ids(api: Api) -> None:
    response = api.get(f"{EXT}/connections", params={"scheduleIds": [random_guid(), "x"]})
    assert violations(response) == [("scheduleIds[1]", "FORMAT")]
    many = api.get(f"{EXT}/connections", params={"scheduleIds": [random_guid()] * 101})
    assert violations(many) == [("scheduleIds", "MAX_SIZE")]


def test_schedule_input_is_validated(api: Api) -> None:
    assert violations(api.put("/v1/schedules/not-a-guid", {"timeZone": "UTC"}))[0] == (
        "scheduleId",
        "FORMAT",
    )
    schedule_id = random_guid()
    assert violations(api.put(f"/v1/schedules/{schedule_id}", {"timeZone": "Mars/Olympus"})) == [
        ("timeZone", "FORMAT")
    ]
    assert violations(api.put(f"/v1/schedules/{schedule_id}", {"ownerUserId": "bob"})) == [
        ("ownerUserId", "FORMAT")
    ]
    assert api.get(f"/v1/schedules/{schedule_id}").status_code == 404


def test_disconnect_body_echo_must_match(api: Api, account: FakeProvider) -> None:
    connection_id = connect(api, make_schedule(api))["connection"]["id"]
    response = api.post(f"{EXT}/connections/{connection_id}/disconnect", {"connectionId": "other"})
    assert violations(response) == [("connectionId", "OTHER")]
    status = api.get(f"{EXT}/connections/{connection_id}").json()["connection"]["status"]
    assert status != "DISCONNECTED"
