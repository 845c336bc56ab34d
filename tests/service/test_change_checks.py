"""The worker's change checks (``service.sync.checks``) against a provider whose check is
scripted: nothing new advances freshAsOf without a sync, a change makes the connection due,
failures back off alone and lose nothing, a Retry-After holds the provider's checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from calsync.api.app import create_app
from calsync.domain.lifecycle import NOTIFICATION_COALESCE
from calsync.providers.base import AccountRef, ProviderUnreachable, RateLimitedByProvider
from calsync.service.runtime import Runtime
from calsync.service.sync.checks import ChangeChecker
from calsync.service.sync.run import sync_connection
from calsync.store.db import transaction
from calsync.store.models import Connection
from tests.api.test_external_api import EMAIL, PASSWORD, connect, ical, make_schedule
from tests.conftest import EXT, Api, new_key
from tests.fakes import FakeProvider

WINDOW = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-31T00:00:00Z", "fieldsets": "OWN_PI"}


@dataclass
class ScriptedCheck:
    """A change check answering from a script: a set of changed calendars, or an error."""

    answers: list[set[str] | Exception] = field(default_factory=list)
    asked: list[dict[str, str | None]] = field(default_factory=list)

    def changed_calendars(self, account: AccountRef, cursors: Mapping[str, str | None]) -> set[str]:
        self.asked.append(dict(cursors))
        answer = self.answers.pop(0) if self.answers else set()
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class World:
    rt: Runtime
    api: Api
    check: ScriptedCheck
    provider: FakeProvider
    checker: ChangeChecker
    connection_id: str


@pytest.fixture
def world(make_runtime: Callable[..., Runtime], fake_provider: FakeProvider) -> Iterator[World]:
    fake_provider.add_account(EMAIL, PASSWORD)
    fake_provider.add_calendar(EMAIL, "home", "Home", primary=True)
    fake_provider.put(
        EMAIL, "home", "/a.ics", ical("a", "20261203T090000Z", "20261203T100000Z", "Stored")
    )
    check = ScriptedCheck()
    fake_provider.change_check = check  # type: ignore[attr-defined]
    rt = make_runtime(adapter_factory=lambda _config: fake_provider, check_interval_seconds=30)
    with TestClient(create_app(rt, worker=False)) as client:
        api = Api(client, new_key(rt))
        connection_id = connect(api, make_schedule(api))["connection"]["id"]
        assert api.get(f"{EXT}/events", params=WINDOW).status_code == 200  # the first sync
        sync_connection(rt, connection_id, export=True)  # what the worker would do next
        checker = ChangeChecker(rt, threads=1)
        yield World(rt, api, check, fake_provider, checker, connection_id)
        checker.stop()


def _row(world: World) -> Connection:
    with world.rt.db() as session:
        row = session.scalars(select(Connection).where(Connection.id == world.connection_id)).one()
        session.expunge(row)
        return row


def _make_check_due(world: World) -> None:
    with transaction(world.rt.db) as session:
        session.execute(
            update(Connection)
            .where(Connection.id == world.connection_id)
            .values(next_check_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def _run_check(world: World) -> int:
    """Start the due checks, wait for them, and record what they found."""
    started = world.checker.run_once()
    world.checker._pool.submit(lambda: None).result()  # one thread: queued after the checks
    world.checker.flush()
    return started


def _outcomes(world: World) -> dict[str, float]:
    counter = world.rt.metrics.change_checks
    return {
        outcome: counter.labels(p, outcome)._value.get()
        for p in [_row(world).provider_id]
        for outcome in ("unchanged", "changed", "failed")
    }


def test_nothing_new_makes_the_store_fresh_without_a_sync(world: World) -> None:
    before = _row(world)
    assert _run_check(world) == 1  # never checked: due at once
    after = _row(world)
    assert world.check.asked and set(world.check.asked[0]) == {"home"}
    assert after.last_synced_at == before.last_synced_at  # no sync ran
    assert after.fresh_as_of is not None and after.fresh_as_of > before.last_synced_at
    # The next check is one interval away, jittered within [0.8, 1] of it.
    assert after.next_check_at is not None
    ahead = (after.next_check_at - after.fresh_as_of).total_seconds()
    assert 0.8 * 30 - 1 <= ahead <= 30 + 1
    assert _run_check(world) == 0  # not due again yet
    assert _outcomes(world)["unchanged"] == 1
    report = world.api.get(f"/v1/connections/{world.connection_id}/sync").json()["sync"]
    assert report["keptFresh"]["method"] == "CHANGE_CHECK"
    assert report["keptFresh"]["intervalSeconds"] == 30
    assert report["freshAsOf"] > report["lastSuccessfulSync"]


def test_a_change_makes_the_connection_due_at_once(world: World) -> None:
    world.check.answers = [{"home"}]
    before = _row(world)
    assert _run_check(world) == 1
    after = _row(world)
    # Due within the notification's coalescing second: the worker takes it then.
    assert after.next_sync_at <= datetime.now(UTC) + NOTIFICATION_COALESCE
    assert after.fresh_as_of == before.fresh_as_of  # not fresher: something is unread
    assert after.sync_requested_at == before.sync_requested_at  # reads do not wait for it
    assert world.rt.work_available.is_set()
    assert _outcomes(world)["changed"] == 1
    # Due for a sync, it is not checked again meanwhile.
    _make_check_due(world)
    assert _run_check(world) == 0


def test_failures_back_off_alone_and_keep_the_stored_data(world: World) -> None:
    before = _row(world)
    world.check.answers = [ProviderUnreachable("down"), ProviderUnreachable("down")]
    gaps = []
    for _ in range(2):
        _make_check_due(world)
        asked = datetime.now(UTC)
        assert _run_check(world) == 1
        row = _row(world)
        assert row.next_check_at is not None
        gaps.append((row.next_check_at - asked).total_seconds())
    assert 0.8 * 60 - 1 <= gaps[0] <= 60 + 1 and 0.8 * 120 - 1 <= gaps[1] <= 120 + 1
    after = _row(world)
    assert after.fresh_as_of == before.fresh_as_of and after.next_sync_at == before.next_sync_at
    assert _outcomes(world)["failed"] == 2
    response = world.api.get(f"{EXT}/events", params=WINDOW)
    assert [e["title"] for e in response.json()["events"]] == ["Stored"]
    # A good answer ends the backoff.
    _make_check_due(world)
    asked = datetime.now(UTC)
    _run_check(world)
    row = _row(world)
    assert row.next_check_at is not None and (row.next_check_at - asked).total_seconds() <= 31


def test_a_retry_after_holds_every_check_of_the_provider(world: World) -> None:
    world.check.answers = [RateLimitedByProvider("slow down", retry_after=3600)]
    assert _run_check(world) == 1
    _make_check_due(world)
    assert _run_check(world) == 0  # held: nothing asked
    assert len(world.check.asked) == 1


def test_checks_off_means_no_checks(world: World) -> None:
    world.rt.settings.check_interval_seconds = 0
    assert _run_check(world) == 0 and world.check.asked == []
    report = world.api.get(f"/v1/connections/{world.connection_id}/sync").json()["sync"]
    assert report["keptFresh"]["method"] == "POLL"
    assert report["keptFresh"]["intervalSeconds"] == world.rt.settings.poll_interval_seconds
