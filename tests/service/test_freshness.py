"""Reads never wait on a provider for data the store has: stale connections are answered from
the store and refreshed behind the answer, once at a time (``service.sync.refresh``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from calsync.api.app import create_app
from calsync.service.runtime import Runtime
from calsync.store.db import transaction
from calsync.store.models import Connection
from tests.api.test_external_api import (
    EMAIL,
    PASSWORD,
    connect,
    ical,
    import_calendars,
    make_schedule,
)
from tests.conftest import EXT, Api, new_key, settle
from tests.fakes import FakeProvider

WINDOW = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-31T00:00:00Z", "fieldsets": "OWN_PI"}
HEADER = "X-Calsync-Fresh-As-Of"


@pytest.fixture
def api(runtime: Runtime) -> Iterator[Api]:
    """The API without the in-process worker: its syncs (an export right after the first
    sync, say) would move freshAsOf while a test ages the data by hand."""
    with TestClient(create_app(runtime, worker=False)) as client:
        yield Api(client, new_key(runtime))


@pytest.fixture
def calendar(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.add_account(EMAIL, PASSWORD)
    fake_provider.add_calendar(EMAIL, "home", "Home", primary=True)
    fake_provider.add_calendar(EMAIL, "work", "Work")
    fake_provider.put(
        EMAIL, "home", "/a.ics", ical("a", "20261203T090000Z", "20261203T100000Z", "Stored")
    )
    return fake_provider


def _titles(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(e["title"] for e in response.json()["events"])


def _age(rt: Runtime, connection_id: str, seconds: float) -> datetime:
    """Make the connection's data ``seconds`` old; returns its new freshAsOf."""
    moment = datetime.now(UTC) - timedelta(seconds=seconds)
    with transaction(rt.db) as session:
        session.execute(
            update(Connection)
            .where(Connection.id == connection_id)
            .values(last_synced_at=moment, fresh_as_of=moment, sync_requested_at=moment)
        )
    return moment


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Gate:
    """Holds every incremental read of the fake provider until opened: a hanging server."""

    def __init__(self, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = threading.Event()
        self.entered = 0
        real = provider.read_changes

        def held(*args: Any, **kwargs: Any) -> Any:
            self.entered += 1
            assert self.opened.wait(30), "the test never opened the gate"
            return real(*args, **kwargs)

        monkeypatch.setattr(provider, "read_changes", held)


def test_stale_data_is_answered_from_the_store_while_one_refresh_reads_the_provider(
    api: Api, runtime: Runtime, calendar: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedule = make_schedule(api)
    connection_id = connect(api, schedule)["connection"]["id"]
    assert _titles(api.get(f"{EXT}/events", params=WINDOW)) == ["Stored"]  # the first sync
    calendar.put(EMAIL, "home", "/b.ics", ical("b", "20261204T090000Z", "20261204T100000Z", "New"))
    aged = _age(runtime, connection_id, runtime.settings.freshness_seconds + 60)
    gate = Gate(calendar, monkeypatch)

    # The provider hangs: every read answers at once from the store, with the data's age.
    for _ in range(20):
        response = api.get(f"{EXT}/events", params=WINDOW)
        assert _titles(response) == ["Stored"]
        assert abs(_parse(response.headers[HEADER]) - aged) < timedelta(milliseconds=1)
    assert runtime.metrics.background_refreshes._value.get() == 1  # one refresh, 20 readers
    assert gate.entered <= 1

    gate.opened.set()
    assert settle(runtime) == 1
    response = api.get(f"{EXT}/events", params=WINDOW)
    assert _titles(response) == ["New", "Stored"]
    assert _parse(response.headers[HEADER]) > aged
    assert runtime.metrics.background_refreshes._value.get() == 1  # fresh again: no refresh


def test_a_provider_that_fails_leaves_the_stored_data_readable(
    api: Api, runtime: Runtime, calendar: FakeProvider
) -> None:
    connection_id = connect(api, make_schedule(api))["connection"]["id"]
    assert _titles(api.get(f"{EXT}/events", params=WINDOW)) == ["Stored"]
    aged = _age(runtime, connection_id, 3600)
    calendar.unreachable = True
    response = api.get(f"{EXT}/events", params=WINDOW)
    assert _titles(response) == ["Stored"] and response.json()["failedProviderIds"] == []
    settle(runtime)
    response = api.get(f"/v1/connections/{connection_id}/sync")
    assert response.status_code == 200, response.text
    report = response.json()["sync"]
    assert report["consecutiveFailures"] >= 1 and report["lastError"]  # (the worker may too)
    again = api.get(f"{EXT}/events", params=WINDOW)  # still the stored data, still its age
    assert _titles(again) == ["Stored"]
    assert abs(_parse(again.headers[HEADER]) - aged) < timedelta(milliseconds=1)


def test_a_new_calendar_selection_is_synced_before_the_answer(
    api: Api, runtime: Runtime, calendar: FakeProvider
) -> None:
    """The store cannot answer for a selection it has not read: that read waits (as a first
    sync does), within the time budget."""
    connection_id = connect(api, make_schedule(api))["connection"]["id"]
    assert _titles(api.get(f"{EXT}/events", params=WINDOW)) == ["Stored"]
    calendar.put(EMAIL, "work", "/w.ics", ical("w", "20261205T090000Z", "20261205T100000Z", "Work"))
    assert import_calendars(api, connection_id, ["home", "work"]).status_code == 200
    assert _titles(api.get(f"{EXT}/events", params=WINDOW)) == ["Stored", "Work"]
    assert runtime.metrics.background_refreshes._value.get() == 0


def test_the_header_is_the_oldest_fresh_as_of_of_the_connections_used(
    api: Api, runtime: Runtime, calendar: FakeProvider
) -> None:
    calendar.add_account("bob@example.com", "pw-b")
    calendar.add_calendar("bob@example.com", "cal", "Bob", primary=True)
    first = connect(api, make_schedule(api))["connection"]["id"]
    body = {
        "scheduleId": make_schedule(api),
        "providerId": "00000000-0000-4000-8000-000000000001",
        "email": "bob@example.com",
        "password": "pw-b",
    }
    body["providerId"] = api.get(f"{EXT}/providers").json()["providers"][0]["id"]
    second = api.post(f"{EXT}/connections:connectByCredentials", body).json()["connection"]["id"]
    assert api.get(f"{EXT}/events", params=WINDOW).status_code == 200
    runtime.settings.freshness_seconds = 86_400  # neither is stale: no refresh moves the times
    older = _age(runtime, first, 50)
    _age(runtime, second, 10)
    response = api.get(f"{EXT}/events", params=WINDOW)
    assert abs(_parse(response.headers[HEADER]) - older) < timedelta(milliseconds=1)
    assert response.status_code == 200 and runtime.metrics.background_refreshes._value.get() == 0


def test_a_successful_sync_leaves_a_log_line(
    api: Api, calendar: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="calsync")
    connection_id = connect(api, make_schedule(api))["connection"]["id"]
    assert _titles(api.get(f"{EXT}/events", params=WINDOW)) == ["Stored"]
    lines = [r for r in caplog.records if r.getMessage() == "sync succeeded"]
    assert lines and all(getattr(r, "connection_id", None) == connection_id for r in lines)
    assert all(getattr(r, "seconds", -1) >= 0 for r in lines)
    assert PASSWORD not in caplog.text


def test_one_tenant_cannot_hold_every_refresh_thread(
    api: Api, runtime: Runtime, calendar: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red-team finding 8: one tenant's slow servers starved the others. A tenant gets at
    most PER_TENANT_REFRESHES refreshes at once; another tenant's still start."""
    from calsync.service.sync.refresh import PER_TENANT_REFRESHES
    from tests.conftest import new_key

    mine = [connect(api, make_schedule(api))["connection"]["id"] for _ in range(3)]
    other = Api(api.client, new_key(runtime, tenant="another-site"))
    theirs = connect(other, make_schedule(other))["connection"]["id"]
    for a in (api, other):
        assert a.get(f"{EXT}/events", params=WINDOW).status_code == 200  # first syncs
    for connection_id in [*mine, theirs]:
        _age(runtime, connection_id, 3600)
    gate = Gate(calendar, monkeypatch)
    assert _titles(api.get(f"{EXT}/events", params=WINDOW)) == ["Stored"] * 3
    assert runtime.metrics.background_refreshes._value.get() == PER_TENANT_REFRESHES
    assert _titles(other.get(f"{EXT}/events", params=WINDOW)) == ["Stored"]
    assert runtime.metrics.background_refreshes._value.get() == PER_TENANT_REFRESHES + 1
    gate.opened.set()
    settle(runtime)
