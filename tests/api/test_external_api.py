"""The nine methods over HTTP against the fake provider, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import pytest

from calsync.providers.registry import ICLOUD_PROVIDER_ID
from calsync.service.runtime import Runtime
from tests.conftest import EXT, FAKE_PROVIDER_ID, Api, new_key, random_guid
from tests.fakes import FakeProvider

EMAIL = "ada@example.com"
PASSWORD = "app-specific-pw"

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
DTSTART:{start}
DTEND:{end}
SUMMARY:{title}
END:VEVENT
END:VCALENDAR
"""


def ical(uid: str, start: str, end: str, title: str = "Busy") -> str:
    return EVENT.format(uid=uid, start=start, end=end, title=title)


@pytest.fixture
def account(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.add_account(EMAIL, PASSWORD)
    fake_provider.add_calendar(EMAIL, "home", "Home", primary=True)
    fake_provider.add_calendar(EMAIL, "work", "Work")
    fake_provider.put(
        EMAIL,
        "home",
        "/ada/home/1.ics",
        ical("e1", "20261202T090000Z", "20261202T100000Z", "Dentist"),
    )
    fake_provider.put(
        EMAIL,
        "work",
        "/ada/work/2.ics",
        ical("e2", "20261203T090000Z", "20261203T093000Z", "Standup"),
    )
    return fake_provider


def make_schedule(api: Api, owner: str | None = None, tz: str = "Europe/Berlin") -> str:
    schedule_id = random_guid()
    body = {"ownerUserId": owner or random_guid(), "ownerName": "Ada", "timeZone": tz}
    response = api.put(f"/v1/schedules/{schedule_id}", body)
    assert response.status_code == 200, response.text
    return schedule_id


def connect(api: Api, schedule_id: str, password: str = PASSWORD) -> dict:  # type: ignore[type-arg]
    body = {
        "scheduleId": schedule_id,
        "providerId": FAKE_PROVIDER_ID,
        "email": EMAIL,
        "password": password,
    }
    return api.post(f"{EXT}/connections:connectByCredentials", body).json()  # type: ignore[no-any-return]


def import_calendars(api: Api, connection_id: str, calendar_ids: list[str]) -> Any:
    """Update a connection's sync config to import exactly ``calendar_ids``."""
    update = {
        "connectionId": connection_id,
        "syncConfig": {
            "listEventFromCalendars": {
                "enabled": True,
                "calendars": {"calendars": [{"id": c} for c in calendar_ids]},
            }
        },
    }
    return api.patch(f"{EXT}/connections/{connection_id}/sync-config", update)


def wait_status(api: Api, connection_id: str, status: str) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        connection = api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
        if connection["status"] == status:
            return connection  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"connection never reached {status}: {connection}")


def test_list_providers_shape(api: Api) -> None:
    response = api.get(f"{EXT}/providers")
    assert response.status_code == 200
    assert response.headers["x-wix-request-id"]
    providers = {p["id"]: p for p in response.json()["providers"]}
    assert providers[ICLOUD_PROVIDER_ID]["calendarType"] == "I_CAL"
    fake = providers[FAKE_PROVIDER_ID]
    assert fake == {
        "id": FAKE_PROVIDER_ID,
        "name": "Test CalDAV",
        "calendarType": "OTHER",
        "features": {
            "connectMethods": ["CREDENTIALS"],
            "updateSyncConfig": True,
            "listEventFromCalendars": "SPECIFIC_CALENDARS",
            "syncToCalendar": "DEDICATED_CALENDAR",
        },
    }


def test_both_route_prefixes_and_encoded_colon(api: Api, account: FakeProvider) -> None:
    assert api.get("/v2/external-calendars/providers").status_code == 200
    schedule_id = make_schedule(api)
    body = {
        "scheduleId": schedule_id,
        "providerId": FAKE_PROVIDER_ID,
        "email": EMAIL,
        "password": PASSWORD,
    }
    response = api.post("/v2/external-calendars/connections%3AconnectByCredentials", body)
    assert response.status_code == 200, response.text


def test_connect_get_list_calendars_events_disconnect(api: Api, account: FakeProvider) -> None:
    owner = random_guid()
    schedule_id = make_schedule(api, owner)
    created = connect(api, schedule_id)["connection"]
    assert created["status"] in ("CONNECTED", "SYNC_IN_PROGRESS", "SYNCED")
    assert created["externalAccountEmail"] == EMAIL
    assert created["errorReason"] == "UNDEFINED"
    assert created["userId"] == owner
    assert created["syncConfig"] == {
        "listEventFromCalendars": {"enabled": True, "primaryCalendar": {}},
        "syncToCalendar": {"enabled": True, "dedicatedCalendar": {}},
    }
    assert "password" not in str(created)
    connection_id = created["id"]

    got = api.get(f"{EXT}/connections/{connection_id}", params={"connectionId": connection_id})
    assert got.status_code == 200 and got.json()["connection"]["id"] == connection_id
    listed = api.get(f"{EXT}/connections", params={"scheduleIds": schedule_id}).json()
    assert [c["id"] for c in listed["connections"]] == [connection_id]
    assert listed["failedProviderIds"] == []

    calendars = api.get(f"{EXT}/connections/{connection_id}/calendars").json()["calendars"]
    assert calendars == [{"id": "home", "name": "Home"}, {"id": "work", "name": "Work"}]

    params = {
        "from": "2026-12-01T00:00:00Z",
        "to": "2026-12-31T00:00:00Z",
        "scheduleIds": schedule_id,
        "fieldsets": "OWN_PI",
    }
    events = api.get(f"{EXT}/events", params=params).json()
    assert [(e["title"], e["start"], e["end"]) for e in events["events"]] == [
        ("Dentist", "2026-12-02T09:00:00.000Z", "2026-12-02T10:00:00.000Z")
    ]
    assert events["events"][0]["calendarName"] == "Home"
    assert events["events"][0]["scheduleOwnerId"] == owner
    assert events["events"][0]["scheduleOwnerName"] == "Ada"
    wait_status(api, connection_id, "SYNCED")

    response = import_calendars(api, connection_id, ["home", "work"])
    assert response.status_code == 200, response.text
    config = response.json()["connection"]["syncConfig"]
    assert config["listEventFromCalendars"]["calendars"]["calendars"] == [
        {"id": "home"},
        {"id": "work"},
    ]
    assert config["syncToCalendar"] == {"enabled": True, "dedicatedCalendar": {}}
    titles = [e["title"] for e in api.get(f"{EXT}/events", params=params).json()["events"]]
    assert titles == ["Dentist", "Standup"]

    no_pi = api.get(f"{EXT}/events", params={**params, "fieldsets": "NO_PI"}).json()["events"]
    assert all(
        "title" not in e and "calendarName" not in e and "scheduleOwnerName" not in e for e in no_pi
    )

    gone = api.post(
        f"{EXT}/connections/{connection_id}/disconnect", {"connectionId": connection_id}
    )
    assert gone.status_code == 200 and gone.json()["connection"]["status"] == "DISCONNECTED"
    assert api.get(f"{EXT}/events", params=params).json()["events"] == []
    again = api.post(f"{EXT}/connections/{connection_id}/disconnect")
    assert again.status_code == 428
    assert again.json()["details"]["applicationError"]["code"] == "CONNECTION_ALREADY_DISCONNECTED"
    calendars_after = api.get(f"{EXT}/connections/{connection_id}/calendars")
    assert calendars_after.status_code == 428
    assert calendars_after.json()["details"]["applicationError"]["code"] == (
        "CONNECTION_NOT_CONNECTED"
    )
    patch_after = import_calendars(api, connection_id, ["home", "work"])
    assert patch_after.status_code == 428


def test_wrong_password_is_bad_credentials_and_stores_nothing(
    api: Api, account: FakeProvider
) -> None:
    schedule_id = make_schedule(api)
    body = {
        "scheduleId": schedule_id,
        "providerId": FAKE_PROVIDER_ID,
        "email": EMAIL,
        "password": "wrong",
    }
    response = api.post(f"{EXT}/connections:connectByCredentials", body)
    assert response.status_code == 401
    assert response.json()["details"]["applicationError"]["code"] == "BAD_CREDENTIALS"
    assert api.get(f"{EXT}/connections").json()["connections"] == []


def test_unreachable_server_is_503_and_stores_nothing(api: Api, account: FakeProvider) -> None:
    account.unreachable = True
    schedule_id = make_schedule(api)
    response = api.post(
        f"{EXT}/connections:connectByCredentials",
        {
            "scheduleId": schedule_id,
            "providerId": FAKE_PROVIDER_ID,
            "email": EMAIL,
            "password": PASSWORD,
        },
    )
    assert response.status_code == 503
    error = response.json()["details"]["applicationError"]
    assert error["code"] == "EXTERNAL_PROVIDER_UNAVAILABLE"
    assert error["data"]["failedProviderIds"] == [FAKE_PROVIDER_ID]
    assert api.get(f"{EXT}/connections").json()["connections"] == []


def test_reconnecting_same_account_updates_in_place(api: Api, account: FakeProvider) -> None:
    schedule_id = make_schedule(api)
    first = connect(api, schedule_id)["connection"]["id"]
    account.accounts[EMAIL].password = "rotated"
    second = connect(api, schedule_id, password="rotated")["connection"]["id"]
    assert first == second
    assert len(api.get(f"{EXT}/connections").json()["connections"]) == 1


def test_connect_by_oauth_on_credentials_provider_is_428(api: Api) -> None:
    schedule_id = make_schedule(api)
    response = api.post(
        f"{EXT}/connections:connectByOAuth",
        {
            "scheduleId": schedule_id,
            "providerId": FAKE_PROVIDER_ID,
            "redirectUrl": "https://platform.example/cb",
        },
    )
    assert response.status_code == 428
    assert response.json()["details"]["applicationError"]["code"] == "NOT_SUPPORTED_BY_PROVIDER"


def test_unknown_ids_are_404(api: Api) -> None:
    schedule_id = make_schedule(api)
    assert api.get(f"{EXT}/connections/nope").status_code == 404
    body = {"scheduleId": schedule_id, "providerId": random_guid(), "email": EMAIL, "password": "x"}
    response = api.post(f"{EXT}/connections:connectByCredentials", body)
    assert response.status_code == 404
    assert response.json()["details"]["applicationError"]["code"] == "NOT_FOUND"
    body["providerId"], body["scheduleId"] = FAKE_PROVIDER_ID, random_guid()
    assert api.post(f"{EXT}/connections:connectByCredentials", body).status_code == 404


def test_authentication(api: Api, runtime: Runtime) -> None:
    assert api.client.get(f"{EXT}/providers").status_code == 401
    bad = api.client.get(f"{EXT}/providers", headers={"Authorization": "csk_nope"})
    assert bad.status_code == 401
    assert bad.json()["details"]["applicationError"]["code"] == "UNAUTHENTICATED"
    bearer = api.client.get(f"{EXT}/providers", headers={"Authorization": f"Bearer {api.key}"})
    assert bearer.status_code == 200
    same_site = api.client.get(
        f"{EXT}/providers", headers={"Authorization": api.key, "wix-site-id": "site-one"}
    )
    assert same_site.status_code == 200
    other_site = api.client.get(
        f"{EXT}/providers", headers={"Authorization": api.key, "wix-site-id": "site-two"}
    )
    assert other_site.status_code == 403


def test_tenants_are_isolated(api: Api, runtime: Runtime, account: FakeProvider) -> None:
    schedule_id = make_schedule(api)
    connection_id = connect(api, schedule_id)["connection"]["id"]
    other = new_key(runtime, tenant="site-two")
    assert api.get(f"{EXT}/connections/{connection_id}", key=other).status_code == 404
    assert api.get(f"{EXT}/connections", key=other).json()["connections"] == []
    assert api.get(f"{EXT}/connections/{connection_id}/calendars", key=other).status_code == 404
    assert api.post(f"{EXT}/connections/{connection_id}/disconnect", key=other).status_code == 404
    update = {"syncConfig": {"listEventFromCalendars": {"enabled": False}}}
    assert (
        api.patch(f"{EXT}/connections/{connection_id}/sync-config", update, key=other).status_code
        == 404
    )
    params = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-31T00:00:00Z"}
    assert api.get(f"{EXT}/events", params=params, key=other).json()["events"] == []
    body = {
        "scheduleId": schedule_id,
        "providerId": FAKE_PROVIDER_ID,
        "email": EMAIL,
        "password": PASSWORD,
    }
    assert api.post(f"{EXT}/connections:connectByCredentials", body, key=other).status_code == 404
    assert api.get(f"/v1/schedules/{schedule_id}", key=other).status_code == 404
    assert api.get(f"{EXT}/connections/{connection_id}").json()["connection"]["status"] != (
        "DISCONNECTED"
    )


def test_user_identity_acts_only_on_own_schedules(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    owner = random_guid()
    mine = make_schedule(api, owner)
    theirs = make_schedule(api)
    user_key = new_key(runtime, user_id=owner)
    body = {"providerId": FAKE_PROVIDER_ID, "email": EMAIL, "password": PASSWORD}
    denied = api.post(
        f"{EXT}/connections:connectByCredentials", {**body, "scheduleId": theirs}, key=user_key
    )
    assert denied.status_code == 403
    assert denied.json()["details"]["applicationError"]["code"] == "PERMISSION_DENIED"
    own = api.post(
        f"{EXT}/connections:connectByCredentials", {**body, "scheduleId": mine}, key=user_key
    )
    assert own.status_code == 200
    foreign_id = connect(api, theirs)["connection"]["id"]
    assert api.get(f"{EXT}/connections/{foreign_id}", key=user_key).status_code == 403
    listed = api.get(f"{EXT}/connections", key=user_key).json()["connections"]
    assert [c["scheduleId"] for c in listed] == [mine]
    assert api.post(f"{EXT}/connections/{foreign_id}/disconnect", key=user_key).status_code == 403
    assert api.put(f"/v1/schedules/{mine}", {"ownerUserId": owner}, key=user_key).status_code == (
        403
    )


def test_owner_change_and_schedule_delete_disconnect(api: Api, account: FakeProvider) -> None:
    owner = random_guid()
    schedule_id = make_schedule(api, owner)
    first = connect(api, schedule_id)["connection"]["id"]
    same_owner = {"ownerUserId": owner, "ownerName": "Ada L.", "timeZone": "Europe/Berlin"}
    assert api.put(f"/v1/schedules/{schedule_id}", same_owner).status_code == 200
    assert api.get(f"{EXT}/connections/{first}").json()["connection"]["status"] != "DISCONNECTED"
    new_owner = {**same_owner, "ownerUserId": random_guid()}
    assert api.put(f"/v1/schedules/{schedule_id}", new_owner).status_code == 200
    assert api.get(f"{EXT}/connections/{first}").json()["connection"]["status"] == "DISCONNECTED"
    second = connect(api, schedule_id)["connection"]["id"]
    assert second != first
    assert api.delete(f"/v1/schedules/{schedule_id}").status_code == 200
    assert api.get(f"{EXT}/connections/{second}").json()["connection"]["status"] == "DISCONNECTED"
    assert api.get(f"/v1/schedules/{schedule_id}").status_code == 404


def test_sync_config_validation(api: Api, account: FakeProvider) -> None:
    schedule_id = make_schedule(api)
    connection_id = connect(api, schedule_id)["connection"]["id"]
    path = f"{EXT}/connections/{connection_id}/sync-config"

    def violations(body: object) -> list[tuple[str, str]]:
        response = api.patch(path, body)
        assert response.status_code == 400, response.text
        found = response.json()["details"]["validationError"]["fieldViolations"]
        return [(v["field"], v["violatedRule"]) for v in found]

    both = {
        "syncConfig": {
            "listEventFromCalendars": {
                "enabled": True,
                "primaryCalendar": {},
                "calendars": {"calendars": []},
            }
        }
    }
    assert violations(both) == [("syncConfig.listEventFromCalendars", "ONEOF")]
    unknown = {
        "syncConfig": {
            "listEventFromCalendars": {
                "enabled": True,
                "calendars": {"calendars": [{"id": "home"}, {"id": "nope"}]},
            }
        }
    }
    assert violations(unknown) == [
        ("syncConfig.listEventFromCalendars.calendars.calendars[1].id", "OTHER")
    ]
    assert (
        violations(
            {
                "syncConfig": {
                    "listEventFromCalendars": {"enabled": True, "calendars": {"calendars": []}}
                }
            }
        )[0][1]
        == "MIN_SIZE"
    )
    assert violations({})[0] == ("syncConfig", "REQUIRED_FIELD")
    assert violations({"connectionId": "other", "syncConfig": {}})[0] == ("connectionId", "OTHER")
    assert violations({"syncConfig": {}, "fieldMask": "bogus.path"})[0][0] == "fieldMask"
    primary_export = {"syncConfig": {"syncToCalendar": {"enabled": True, "primaryCalendar": {}}}}
    response = api.patch(path, primary_export)
    assert response.status_code == 428
    assert response.json()["details"]["applicationError"]["code"] == "NOT_SUPPORTED_BY_PROVIDER"
    unchanged = api.get(f"{EXT}/connections/{connection_id}").json()["connection"]["syncConfig"]
    assert unchanged["listEventFromCalendars"] == {"enabled": True, "primaryCalendar": {}}


def test_field_mask_updates_only_named_paths(api: Api, account: FakeProvider) -> None:
    schedule_id = make_schedule(api)
    connection_id = connect(api, schedule_id)["connection"]["id"]
    body = {
        "syncConfig": {
            "listEventFromCalendars": {
                "enabled": False,
                "calendars": {"calendars": [{"id": "work"}]},
            },
            "syncToCalendar": {"enabled": False},
        },
        "fieldMask": "syncConfig.listEventFromCalendars.enabled",
    }
    response = api.patch(f"{EXT}/connections/{connection_id}/sync-config", body)
    assert response.status_code == 200, response.text
    config = response.json()["connection"]["syncConfig"]
    assert config["listEventFromCalendars"] == {"enabled": False, "primaryCalendar": {}}
    assert config["syncToCalendar"] == {"enabled": True, "dedicatedCalendar": {}}


def test_token_revoked_after_password_change(api: Api, account: FakeProvider) -> None:
    schedule_id = make_schedule(api)
    connection_id = connect(api, schedule_id)["connection"]["id"]
    wait_status(api, connection_id, "SYNCED")
    account.accounts[EMAIL].password = "changed-elsewhere"
    response = api.get(f"{EXT}/connections/{connection_id}/calendars")
    assert response.status_code == 428
    connection = api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
    assert (connection["status"], connection["errorReason"]) == ("ERROR", "TOKEN_REVOKED")
    params = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-31T00:00:00Z"}
    failed = api.get(f"{EXT}/events", params=params)
    assert failed.status_code == 503
    assert failed.json()["details"]["applicationError"]["data"]["failedProviderIds"] == [
        FAKE_PROVIDER_ID
    ]
    # Connecting the same account again with the new password repairs it in place.
    repaired = connect(api, schedule_id, password="changed-elsewhere")["connection"]
    assert (repaired["id"], repaired["errorReason"]) == (connection_id, "UNDEFINED")
    assert repaired["status"] != "ERROR"
    assert api.get(f"{EXT}/events", params=params).status_code == 200
    assert api.post(f"{EXT}/connections/{connection_id}/disconnect").status_code == 200


def test_health_needs_no_key(api: Api) -> None:
    response = api.client.get("/v1/health")
    assert response.status_code == 200
    from calsync import __version__

    assert response.json() == {"status": "ok", "database": "ok", "version": __version__}
    metrics = api.client.get("/metrics").text
    assert f'calsync_build_info{{version="{__version__}"}} 1.0' in metrics


def test_unknown_route_and_method_use_envelope(api: Api) -> None:
    missing = api.get("/bookings/v2/external-calendars/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["details"]["applicationError"]["code"] == "NOT_FOUND"
    wrong = api.client.delete(f"{EXT}/providers", headers=api.headers())
    assert wrong.status_code == 405
    assert wrong.headers["x-wix-request-id"]
