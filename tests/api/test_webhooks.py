"""/v1/webhooks end to end: a local receiver verifies every message with the standardwebhooks
library, as a platform would; the worker's outbox delivers busy_times.changed,
connection.status_changed and webhook.test, retries, gives up, is redelivered, rotates
secrets, and refuses bad input in the API's envelope. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from calsync.api.app import create_app
from calsync.domain import webhooks as rules
from calsync.service.runtime import Runtime
from calsync.service.sync.run import sync_connection
from calsync.store import webhooks as stored
from calsync.tz import utcnow
from tests.api.test_external_api import ical, make_schedule, wait_status
from tests.api.webhook_receiver import Receiver, running_receiver, verify
from tests.conftest import EXT, FAKE_PROVIDER_ID, TENANT, Api, new_key
from tests.fakes import FakeProvider

HOOKS = "/v1/webhooks"
EMAIL = "ada@example.com"
PASSWORD = "pw"


@pytest.fixture
def hook_rt(make_runtime: Callable[..., Runtime], fake_provider: FakeProvider) -> Runtime:
    return make_runtime(
        adapter_factory=lambda _config: fake_provider,
        webhook_allow_private=True,
        worker_tick_seconds=0.2,
    )


@pytest.fixture
def hapi(hook_rt: Runtime) -> Iterator[Api]:
    with TestClient(create_app(hook_rt)) as client:
        yield Api(client, new_key(hook_rt))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry schedule in tenths of a second, same length (eight attempts)."""
    waits = tuple(timedelta(seconds=0.1) for _ in rules.RETRY_WAITS)
    monkeypatch.setattr(rules, "RETRY_WAITS", waits)


def _create(api: Api, url: str, **extra: Any) -> tuple[str, str]:
    response = api.post(HOOKS, {"url": url, **extra})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["secret"].startswith("whsec_")
    return body["webhook"]["id"], body["secret"]


def _account(fake: FakeProvider, events: int = 1) -> None:
    fake.add_account(EMAIL, PASSWORD)
    fake.add_calendar(EMAIL, "home", "Home", primary=True)
    for i in range(events):
        day = 4 + i % 20
        body = ical(f"e{i}", f"202701{day:02d}T090000Z", f"202701{day:02d}T100000Z")
        fake.put(EMAIL, "home", f"/ada/{i}.ics", body)


def _connect(api: Api, schedule_id: str) -> str:
    body = {
        "scheduleId": schedule_id,
        "providerId": FAKE_PROVIDER_ID,
        "email": EMAIL,
        "password": PASSWORD,
    }
    response = api.post(f"{EXT}/connections:connectByCredentials", body)
    assert response.status_code == 200, response.text
    connection_id: str = response.json()["connection"]["id"]
    wait_status(api, connection_id, "SYNCED")
    return connection_id


def _deliveries(api: Api, webhook_id: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"{HOOKS}/{webhook_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _violations(response: Any) -> set[str]:
    assert response.status_code == 400, response.text
    return {v["field"] for v in response.json()["details"]["validationError"]["fieldViolations"]}


def test_create_list_get_update_delete_and_the_secret_is_shown_once(
    hapi: Api, receiver: Receiver
) -> None:
    webhook_id, secret = _create(
        hapi, receiver.url, eventTypes=["busy_times.changed"], description="staff sync"
    )
    listed = hapi.get(HOOKS).json()["webhooks"]
    assert [w["id"] for w in listed] == [webhook_id]
    got = hapi.get(f"{HOOKS}/{webhook_id}").json()["webhook"]
    assert got["eventTypes"] == ["busy_times.changed"] and got["enabled"] is True
    assert got["disabledReason"] is None and got["createdAt"].endswith("Z")
    assert secret not in str(listed) and secret not in str(got)
    changed = hapi.patch(f"{HOOKS}/{webhook_id}", {"eventTypes": [], "enabled": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["webhook"]["eventTypes"] == []
    assert changed.json()["webhook"]["enabled"] is False
    assert hapi.delete(f"{HOOKS}/{webhook_id}").json() == {}
    assert hapi.get(f"{HOOKS}/{webhook_id}").status_code == 404
    assert hapi.delete(f"{HOOKS}/{webhook_id}").status_code == 404


def test_the_secret_is_encrypted_at_rest(hapi: Api, hook_rt: Runtime, receiver: Receiver) -> None:
    webhook_id, secret = _create(hapi, receiver.url)
    with hook_rt.store.reading() as tx:
        record = stored.get(tx, TENANT, webhook_id)
    assert record is not None
    assert secret.encode() not in record.secret
    assert hook_rt.secrets.decrypt(record.secret) == secret


def test_a_test_message_is_signed_by_the_standard_webhooks_scheme(
    hapi: Api, receiver: Receiver
) -> None:
    webhook_id, secret = _create(hapi, receiver.url)
    response = hapi.post(f"{HOOKS}/{webhook_id}:test")
    assert response.status_code == 200, response.text
    delivery_id = response.json()["deliveryId"]
    [item] = receiver.wait_for("webhook.test")
    assert item.id == delivery_id
    assert verify(secret, item)["data"] == {"webhookId": webhook_id}
    assert item.headers["content-type"] == "application/json"
    with pytest.raises(Exception, match="signature"):
        verify("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY", item)
    [logged] = _deliveries(hapi, webhook_id)["deliveries"]
    assert logged["id"] == delivery_id
    assert logged["status"] in ("PENDING", "DELIVERED")  # the log may lag the receiver


def test_an_import_announces_its_change_once_per_schedule_with_a_covering_window(
    hapi: Api, hook_rt: Runtime, receiver: Receiver, fake_provider: FakeProvider
) -> None:
    _, secret = _create(hapi, receiver.url)
    _account(fake_provider, events=200)
    schedule_id = make_schedule(hapi, tz="UTC")
    connection_id = _connect(hapi, schedule_id)
    [changed] = receiver.wait_for("busy_times.changed")
    data = verify(secret, changed)["data"]
    assert data["scheduleId"] == schedule_id and data["connectionId"] == connection_id
    assert data["from"] == "2027-01-04T09:00:00.000Z"
    assert data["to"] == "2027-01-23T10:00:00.000Z"
    [status] = receiver.wait_for("connection.status_changed")
    assert verify(secret, status)["data"] == {
        "connectionId": connection_id,
        "scheduleId": schedule_id,
        "status": "SYNCED",
        "errorReason": "UNDEFINED",
        "previousStatus": "CONNECTED",
    }

    # Nothing changed: nothing is sent (and SYNC_IN_PROGRESS is never announced). Nor for an
    # object written again with the same busy times (only its title differs).
    sync_connection(hook_rt, connection_id)
    renamed = ical("e1", "20270105T090000Z", "20270105T100000Z", title="Renamed")
    fake_provider.put(EMAIL, "home", "/ada/1.ics", renamed)
    sync_connection(hook_rt, connection_id)
    # One event moves from Jan 4 to Feb 2: the window covers its old and its new times.
    moved = ical("e0", "20270202T150000Z", "20270202T160000Z")
    fake_provider.put(EMAIL, "home", "/ada/0.ics", moved)
    sync_connection(hook_rt, connection_id)
    both = receiver.wait_for("busy_times.changed", count=2)
    assert len(both) == 2
    data = verify(secret, both[1])["data"]
    assert (data["from"], data["to"]) == ("2027-01-04T09:00:00.000Z", "2027-02-02T16:00:00.000Z")
    assert len(receiver.of_type("connection.status_changed")) == 1


def test_event_types_filter_what_a_webhook_gets(
    hapi: Api, receiver: Receiver, fake_provider: FakeProvider
) -> None:
    _create(hapi, receiver.url, eventTypes=["connection.status_changed"])
    _account(fake_provider)
    _connect(hapi, make_schedule(hapi, tz="UTC"))
    receiver.wait_for("connection.status_changed")
    assert receiver.of_type("busy_times.changed") == []


def test_a_failing_receiver_is_retried_then_given_up_and_redelivered_with_the_same_id(
    hapi: Api, receiver: Receiver, fast_retries: None
) -> None:
    receiver.answers = [500, "reset", 410]
    receiver.default = 503
    webhook_id, secret = _create(hapi, receiver.url)
    delivery_id = hapi.post(f"{HOOKS}/{webhook_id}:test").json()["deliveryId"]
    receiver.wait_for("webhook.test", count=len(rules.RETRY_WAITS) + 1)
    log = _wait_delivery(hapi, webhook_id, "GAVE_UP")
    assert log["attempts"] == 8 and log["lastStatusCode"] == 503
    assert log["lastError"] == "the receiver answered HTTP 503"
    assert log["nextAttemptAt"] is None
    assert {r.id for r in receiver.received} == {delivery_id}

    receiver.default = 200
    again = hapi.post(f"{HOOKS}/{webhook_id}/deliveries/{delivery_id}:redeliver")
    assert again.status_code == 200, again.text
    items = receiver.wait_for("webhook.test", count=len(rules.RETRY_WAITS) + 2)
    assert items[-1].id == delivery_id and verify(secret, items[-1])
    assert _wait_delivery(hapi, webhook_id, "DELIVERED")["attempts"] == 9


def _wait_delivery(api: Api, webhook_id: str, status: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        [log] = _deliveries(api, webhook_id)["deliveries"]
        if log["status"] == status:
            return log  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"delivery never reached {status}: {log}")


def test_redirects_are_not_followed(hapi: Api, receiver: Receiver, fast_retries: None) -> None:
    with running_receiver() as elsewhere:
        receiver.default, receiver.location = 307, elsewhere.url
        webhook_id, _ = _create(hapi, receiver.url)
        hapi.post(f"{HOOKS}/{webhook_id}:test")
        log = _wait_delivery(hapi, webhook_id, "GAVE_UP")
        assert log["lastStatusCode"] == 307
        assert elsewhere.received == []


def test_after_a_rotation_both_secrets_verify_for_a_day(hapi: Api, receiver: Receiver) -> None:
    webhook_id, old = _create(hapi, receiver.url)
    response = hapi.post(f"{HOOKS}/{webhook_id}:rotateSecret")
    assert response.status_code == 200, response.text
    new = response.json()["secret"]
    assert new != old and new.startswith("whsec_")
    hapi.post(f"{HOOKS}/{webhook_id}:test")
    [item] = receiver.wait_for("webhook.test")
    assert len(item.headers["webhook-signature"].split(" ")) == 2
    assert verify(old, item) == verify(new, item)


def test_five_days_of_failures_disable_a_webhook_until_it_is_enabled(
    hapi: Api, hook_rt: Runtime, receiver: Receiver
) -> None:
    receiver.default = 500
    webhook_id, _ = _create(hapi, receiver.url)
    with hook_rt.store.transaction() as tx:
        since = utcnow() - timedelta(days=5, minutes=1)
        stored.change(tx, TENANT, webhook_id, utcnow(), failing_since=since)
    hapi.post(f"{HOOKS}/{webhook_id}:test")
    receiver.wait_for("webhook.test")
    webhook = _wait_disabled(hapi, webhook_id)
    assert "failed for 5 days" in webhook["disabledReason"]
    refused = hapi.post(f"{HOOKS}/{webhook_id}:test")
    assert refused.status_code == 428
    assert refused.json()["details"]["applicationError"]["code"] == "WEBHOOK_DISABLED"
    enabled = hapi.patch(f"{HOOKS}/{webhook_id}", {"enabled": True}).json()["webhook"]
    assert enabled["enabled"] is True and enabled["disabledReason"] is None


def _wait_disabled(api: Api, webhook_id: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        webhook: dict[str, Any] = api.get(f"{HOOKS}/{webhook_id}").json()["webhook"]
        if not webhook["enabled"]:
            return webhook
        time.sleep(0.05)
    raise AssertionError("the webhook was never disabled")


def test_a_hanging_receiver_does_not_hold_up_another(hapi: Api, receiver: Receiver) -> None:
    receiver.delay = 8.0  # answers long after the other receiver got its message
    with running_receiver() as quick:
        slow_id, _ = _create(hapi, receiver.url)
        quick_id, _ = _create(hapi, quick.url)
        hapi.post(f"{HOOKS}/{slow_id}:test")
        receiver.wait_for("webhook.test")  # the slow one holds its request open now
        hapi.post(f"{HOOKS}/{quick_id}:test")
        quick.wait_for("webhook.test", timeout=5.0)
        assert _deliveries(hapi, slow_id)["deliveries"][0]["status"] == "PENDING"


def test_deliveries_page_newest_first(hapi: Api, receiver: Receiver) -> None:
    webhook_id, _ = _create(hapi, receiver.url)
    ids = [hapi.post(f"{HOOKS}/{webhook_id}:test").json()["deliveryId"] for _ in range(5)]
    first = _deliveries(hapi, webhook_id, limit=2)
    second = _deliveries(hapi, webhook_id, limit=2, cursor=first["nextCursor"])
    third = _deliveries(hapi, webhook_id, limit=2, cursor=second["nextCursor"])
    got = [d["id"] for page in (first, second, third) for d in page["deliveries"]]
    assert sorted(got) == sorted(ids) and len(got) == 5
    assert third["nextCursor"] is None
    assert _violations(hapi.get(f"{HOOKS}/{webhook_id}/deliveries?cursor=abc")) == {"cursor"}
    assert _violations(hapi.get(f"{HOOKS}/{webhook_id}/deliveries?limit=0")) == {"limit"}
    assert _violations(hapi.get(f"{HOOKS}/{webhook_id}/deliveries?limit=101")) == {"limit"}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"url"}),
        ({"url": "ftp://example.com/x"}, {"url"}),
        ({"url": "https://user:pw@example.com/x"}, {"url"}),
        ({"url": "https://example.com/x", "eventTypes": ["busy.changed"]}, {"eventTypes[0]"}),
        ({"url": "https://example.com/x", "eventTypes": "busy_times.changed"}, {"eventTypes"}),
        ({"url": "https://example.com/x", "secret": "mine"}, {"secret"}),
        ({"url": "https://example.com/x", "description": "x" * 501}, {"description"}),
    ],
)
def test_bad_webhooks_are_refused_and_nothing_is_stored(
    hapi: Api, body: dict[str, Any], fields: set[str]
) -> None:
    assert _violations(hapi.post(HOOKS, body)) == fields
    assert hapi.get(HOOKS).json()["webhooks"] == []


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # not https
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest",
    ],
)
def test_only_public_https_urls_unless_the_operator_allows_private(
    make_runtime: Callable[..., Runtime], url: str
) -> None:
    rt = make_runtime()
    with TestClient(create_app(rt, worker=False)) as client:
        api = Api(client, new_key(rt))
        response = api.post(HOOKS, {"url": url})
        assert _violations(response) == {"url"}
        assert "http" in response.json()["message"] or "address" in response.json()["message"]


def test_a_tenant_sees_only_its_own_webhooks_and_users_may_not_manage_them(
    hapi: Api, hook_rt: Runtime, receiver: Receiver
) -> None:
    webhook_id, _ = _create(hapi, receiver.url)
    other = new_key(hook_rt, tenant="other-tenant")
    assert hapi.get(HOOKS, key=other).json()["webhooks"] == []
    for call in (
        hapi.get(f"{HOOKS}/{webhook_id}", key=other),
        hapi.patch(f"{HOOKS}/{webhook_id}", {"enabled": False}, key=other),
        hapi.post(f"{HOOKS}/{webhook_id}:test", key=other),
        hapi.post(f"{HOOKS}/{webhook_id}:rotateSecret", key=other),
        hapi.get(f"{HOOKS}/{webhook_id}/deliveries", key=other),
        hapi.delete(f"{HOOKS}/{webhook_id}", key=other),
    ):
        assert call.status_code == 404, call.text
    user = new_key(hook_rt, user_id="6f1c8a52-1f5e-4a11-9c1e-2b7d9c3e4f50")
    assert hapi.get(HOOKS, key=user).status_code == 403
    assert hapi.get(f"{HOOKS}/{webhook_id}").status_code == 200
