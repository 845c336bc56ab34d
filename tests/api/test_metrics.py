"""GET /metrics: requests by route template, sync outcomes and provider errors, and the queue
as the database shows it at scrape time; bounded labels, no secrets, one registry per runtime."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from calsync.api.app import create_app
from calsync.service.runtime import Runtime
from calsync.service.sync.run import SyncFailed, sync_connection
from calsync.store.db import transaction
from calsync.store.models import Connection, utcnow
from tests.api.test_external_api import EMAIL, PASSWORD, account, connect, make_schedule
from tests.conftest import EXT, FAKE_PROVIDER_ID, Api, new_key
from tests.fakes import FakeProvider

__all__ = ["account"]  # the fixture, imported so that these tests can use it
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def quiet_api(runtime: Runtime) -> Iterator[Api]:
    """An API without a background worker, so only the test starts syncs."""
    with TestClient(create_app(runtime, worker=False)) as client:
        yield Api(client, new_key(runtime))


def scrape(api: Api) -> tuple[str, Samples]:
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return response.text, samples


def value(samples: Samples, metric: str, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


def test_requests_are_counted_by_route_template_and_status(quiet_api: Api) -> None:
    for connection_id in ("first-id", "second-id", "third-id"):
        assert quiet_api.get(f"{EXT}/connections/{connection_id}").status_code == 404
    quiet_api.get(f"/v2/external-calendars/connections/{'x' * 40}/calendars")
    quiet_api.get("/no/such/path/abc123")
    quiet_api.client.get("/v1/health")
    text, samples = scrape(quiet_api)

    requests = "calsync_http_requests_total"
    template = f"{EXT}/connections/{{connection_id}}"
    assert value(samples, requests, method="GET", route=template, status="404") == 3
    calendars = "/v2/external-calendars/connections/{connection_id}/calendars"
    assert value(samples, requests, method="GET", route=calendars, status="404") == 1
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1
    assert value(samples, requests, method="GET", route="/v1/health", status="200") == 1
    durations = "calsync_http_request_duration_seconds_count"
    assert value(samples, durations, method="GET", route=template) == 3
    for raw in ("first-id", "x" * 40, "abc123"):
        assert raw not in text


def test_sync_runs_by_provider_and_outcome_and_provider_errors_by_code(
    quiet_api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    connection_id = connect(quiet_api, make_schedule(quiet_api))["connection"]["id"]
    sync_connection(runtime, connection_id)
    account.unreachable = True
    with pytest.raises(SyncFailed):
        sync_connection(runtime, connection_id)
    account.unreachable = False
    account.accounts[EMAIL].password = "changed"  # the server now refuses the stored password
    with pytest.raises(SyncFailed):
        sync_connection(runtime, connection_id)
    text, samples = scrape(quiet_api)

    runs = "calsync_sync_runs_total"
    provider = FAKE_PROVIDER_ID
    assert value(samples, runs, provider=provider, outcome="success") == 1
    assert value(samples, runs, provider=provider, outcome="transient_failure") == 1
    assert value(samples, runs, provider=provider, outcome="revoked") == 1
    errors = "calsync_provider_errors_total"
    assert value(samples, errors, provider=provider, code="provider_unreachable") == 1
    assert value(samples, errors, provider=provider, code="auth_rejected") == 1
    info = "calsync_provider_info"
    assert value(samples, info, provider=provider, name="Test CalDAV", kind="caldav") == 1
    for secret in (PASSWORD, quiet_api.key, EMAIL, connection_id):
        assert secret not in text


def test_sync_lag_and_queue_depth_are_read_from_the_database_at_scrape(
    quiet_api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    _, samples = scrape(quiet_api)
    assert value(samples, "calsync_sync_lag_seconds") == 0
    assert value(samples, "calsync_sync_queue_depth") == 0
    assert value(samples, "calsync_database_up") == 1

    schedule_id = make_schedule(quiet_api)
    ids = [connect(quiet_api, schedule_id)["connection"]["id"]]
    account.add_account("grace@example.com", "pw-2")
    body = {"scheduleId": schedule_id, "providerId": FAKE_PROVIDER_ID}
    second = {**body, "email": "grace@example.com", "password": "pw-2"}
    ids.append(
        quiet_api.post(f"{EXT}/connections:connectByCredentials", second).json()["connection"]["id"]
    )
    _, samples = scrape(quiet_api)
    assert value(samples, "calsync_sync_queue_depth") == 2  # both are due at once
    assert value(samples, "calsync_connections", status="CONNECTED") == 2

    for connection_id in ids:
        sync_connection(runtime, connection_id, export=True)  # the worker's run
    hours_ago = utcnow() - timedelta(hours=3)
    with transaction(runtime.db) as session:
        session.execute(
            update(Connection).where(Connection.id == ids[0]).values(last_synced_at=hours_ago)
        )
    _, samples = scrape(quiet_api)
    assert value(samples, "calsync_sync_queue_depth") == 0
    assert value(samples, "calsync_connections", status="SYNCED") == 2
    lag = value(samples, "calsync_sync_lag_seconds")
    assert 3 * 3600 <= lag < 3 * 3600 + 60

    # A disconnected connection no longer holds the lag up; a due one is queued.
    assert quiet_api.post(f"{EXT}/connections/{ids[0]}/disconnect", {}).status_code == 200
    with transaction(runtime.db) as session:
        session.execute(
            update(Connection).where(Connection.id == ids[1]).values(next_sync_at=hours_ago)
        )
    _, samples = scrape(quiet_api)
    assert value(samples, "calsync_sync_lag_seconds") < 60
    assert value(samples, "calsync_sync_queue_depth") == 1
    assert value(samples, "calsync_connections", status="DISCONNECTED") == 1


def test_each_runtime_has_a_registry_of_its_own(
    make_runtime: Callable[..., Runtime], fake_provider: FakeProvider
) -> None:
    first = make_runtime(adapter_factory=lambda _config: fake_provider)
    second = make_runtime(adapter_factory=lambda _config: fake_provider)
    with (
        TestClient(create_app(first, worker=False)) as one,
        TestClient(create_app(second, worker=False)) as two,
    ):
        for _ in range(3):
            one.get("/v1/health")
        two.get("/v1/health")
        _, first_samples = scrape(Api(one, ""))
        _, second_samples = scrape(Api(two, ""))
    requests = "calsync_http_requests_total"
    health = {"method": "GET", "route": "/v1/health", "status": "200"}
    assert value(first_samples, requests, **health) == 3
    assert value(second_samples, requests, **health) == 1


def test_an_unreachable_database_is_reported_not_fatal(quiet_api: Api, runtime: Runtime) -> None:
    quiet_api.client.get("/v1/health")
    original = runtime.db.kw["bind"]
    runtime.db.configure(bind=_broken_engine())
    try:
        _, samples = scrape(quiet_api)
    finally:
        runtime.db.configure(bind=original)
    assert value(samples, "calsync_database_up") == 0
    requests = "calsync_http_requests_total"
    assert value(samples, requests, method="GET", route="/v1/health", status="200") == 1


def _broken_engine():  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    return create_engine("sqlite:////nonexistent-dir/calsync.db")


def test_metrics_token_when_set_is_required_and_never_leaks(
    make_runtime: Callable[..., Runtime],
) -> None:
    token = "scrape-token-7f3a"
    rt = make_runtime(metrics_token=token)
    with TestClient(create_app(rt, worker=False)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["details"]["applicationError"]["code"] == "UNAUTHENTICATED"
            assert token not in refused.text
        allowed = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200 and "calsync_database_up" in allowed.text
        assert token not in allowed.text
    assert token not in repr(rt.settings)
