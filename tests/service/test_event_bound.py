"""List Events starts its index range at ``from - connections.max_instance_ms``: the bound must
never drop an event that overlaps the window, however long, and it must follow new instances."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import insert, select, update

from calsync.service.runtime import Runtime
from calsync.store.db import transaction
from calsync.store.models import Connection, EventInstance
from tests.api.test_external_api import EMAIL, PASSWORD, connect, ical, make_schedule
from tests.conftest import EXT, Api, new_key, settle
from tests.fakes import FakeProvider

DAY_MS = 86_400_000
WEEK = {"from": "2026-12-10T00:00:00Z", "to": "2026-12-17T00:00:00Z", "fieldsets": "OWN_PI"}


@pytest.fixture
def calendar(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.add_account(EMAIL, PASSWORD)
    fake_provider.add_calendar(EMAIL, "home", "Home", primary=True)
    fake_provider.put(
        EMAIL, "home", "/short.ics", ical("s", "20261211T090000Z", "20261211T100000Z", "Short")
    )
    return fake_provider


def _bound(rt: Runtime, connection_id: str) -> int | None:
    with rt.db() as session:
        return session.scalar(
            select(Connection.max_instance_ms).where(Connection.id == connection_id)
        )


def _titles(api: Api, params: dict[str, str]) -> list[str]:
    response = api.get(f"{EXT}/events", params=params)
    assert response.status_code == 200, response.text
    return [e["title"] for e in response.json()["events"]]


def test_a_long_event_starting_before_the_window_is_listed(
    make_runtime: Callable[..., Runtime], calendar: FakeProvider
) -> None:
    from fastapi.testclient import TestClient

    from calsync.api.app import create_app

    rt = make_runtime(adapter_factory=lambda _config: calendar, freshness_seconds=0)
    with TestClient(create_app(rt, worker=False)) as client:
        api = Api(client, new_key(rt))
        connection_id = connect(api, make_schedule(api))["connection"]["id"]
        assert _titles(api, WEEK) == ["Short"]
        assert _bound(rt, connection_id) == 3_600_000
        # A 3-day event from the 8th to the 11th overlaps the week of the 10th: a bound still
        # computed from the 1-hour event would start the range on the 10th and miss it.
        calendar.put(
            EMAIL, "home", "/long.ics", ical("l", "20261208T120000Z", "20261211T120000Z", "Long")
        )
        _titles(api, WEEK)  # stale: answered from the store, refreshed in the background
        settle(rt)
        assert _titles(api, WEEK) == ["Long", "Short"]
        assert _bound(rt, connection_id) == 3 * DAY_MS
        # Removing it keeps the (now loose) bound: it only ever grows, which stays correct.
        calendar.delete(EMAIL, "home", "/long.ics")
        _titles(api, WEEK)
        settle(rt)
        assert _titles(api, WEEK) == ["Short"]
        assert _bound(rt, connection_id) == 3 * DAY_MS


def test_an_unknown_bound_means_no_bound(
    api: Api, runtime: Runtime, calendar: FakeProvider
) -> None:
    connection_id = connect(api, make_schedule(api))["connection"]["id"]
    assert _titles(api, WEEK) == ["Short"]
    with transaction(runtime.db) as session:
        # Instances written by something that does not keep the bound (an old release).
        row = session.scalars(
            select(EventInstance).where(EventInstance.connection_id == connection_id)
        ).first()
        assert row is not None
        session.execute(
            insert(EventInstance),
            [
                {
                    "tenant_id": row.tenant_id,
                    "schedule_id": row.schedule_id,
                    "connection_id": connection_id,
                    "provider_id": row.provider_id,
                    "calendar_id": row.calendar_id,
                    "resource_key": "/old.ics",
                    "instance_key": "old",
                    "start_ms": row.start_ms - 20 * DAY_MS,
                    "end_ms": row.start_ms + DAY_MS,
                    "all_day": False,
                    "start_date": None,
                    "end_date": None,
                    "title": "Old and long",
                }
            ],
        )
        session.execute(
            update(Connection).where(Connection.id == connection_id).values(max_instance_ms=None)
        )
    assert _titles(api, WEEK) == ["Old and long", "Short"]
