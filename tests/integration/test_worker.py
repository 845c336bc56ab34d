"""The sync worker: claiming with leases, one sync per connection at a time across workers,
backoff and the error threshold, lease expiry, the horizon moving forward."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from calsync.domain import Identity, IdentityType, Permission
from calsync.domain.lifecycle import NOTIFICATION_COALESCE
from calsync.providers.base import (
    AccountRef,
    CalendarChanges,
    ProviderUnreachable,
    RateLimitedByProvider,
)
from calsync.service.connections.connect import connect_by_credentials
from calsync.service.platform import schedules
from calsync.service.runtime import Runtime
from calsync.service.sync import leases, push
from calsync.service.sync.report import sync_report
from calsync.service.sync.run import SyncFailed, sync_connection
from calsync.service.sync.worker import Worker
from calsync.store.models import Connection, ConnectionCalendar
from tests.api.test_external_api import ical
from tests.conftest import FAKE_PROVIDER_ID, random_guid
from tests.fakes import FakeProvider

ADMIN = Identity(
    tenant_id="site-one",
    type=IdentityType.APP,
    permissions=frozenset(Permission),
    app_id=random_guid(),
)


class SlowFake(FakeProvider):
    """Counts concurrent reads per account and can fail on demand."""

    def __init__(self, delay: float = 0.05) -> None:
        super().__init__()
        self.delay = delay
        self.active: dict[str, int] = {}
        self.max_active: dict[str, int] = {}
        self.failure: Exception | None = None
        self._guard = threading.Lock()

    def read_changes(
        self, account: AccountRef, calendar_id: str, cursor: str | None, known_etags: dict[str, str]
    ) -> CalendarChanges:
        with self._guard:
            self.active[account.email] = self.active.get(account.email, 0) + 1
            self.max_active[account.email] = max(
                self.max_active.get(account.email, 0), self.active[account.email]
            )
        try:
            time.sleep(self.delay)
            if self.failure is not None:
                raise self.failure
            return super().read_changes(account, calendar_id, cursor, known_etags)
        finally:
            with self._guard:
                self.active[account.email] -= 1


def seed(rt: Runtime, fake: FakeProvider, count: int) -> list[str]:
    ids = []
    for n in range(count):
        email = f"user{n}@example.com"
        fake.add_account(email, "pw")
        fake.add_calendar(email, "cal", "Cal", primary=True)
        fake.put(email, "cal", f"/{n}/a.ics", ical(f"u{n}", "20270105T100000Z", "20270105T110000Z"))
        schedule_id = random_guid()
        schedules.put_schedule(
            rt,
            identity=ADMIN,
            schedule_id=schedule_id,
            owner_user_id=None,
            owner_name="",
            time_zone="UTC",
        )
        view = connect_by_credentials(
            rt,
            identity=ADMIN,
            schedule_id=schedule_id,
            provider_id=FAKE_PROVIDER_ID,
            email=email,
            password="pw",
        )
        ids.append(view.id)
    return ids


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def statuses(rt: Runtime) -> list[str]:
    with rt.db() as session:
        return list(session.scalars(select(Connection.status)))


def test_two_workers_share_connections_without_overlap(
    make_runtime: Callable[..., Runtime],
) -> None:
    fake = SlowFake()
    first = make_runtime(
        adapter_factory=lambda _c: fake,
        worker_threads=3,
        worker_tick_seconds=0.05,
        poll_interval_seconds=0.2,
    )
    second = make_runtime(
        adapter_factory=lambda _c: fake,
        worker_threads=3,
        worker_tick_seconds=0.05,
        poll_interval_seconds=0.2,
    )
    second.instance_id = "second-worker"
    ids = seed(first, fake, 8)
    workers = [Worker(first), Worker(second)]
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: statuses(first).count("SYNCED") == len(ids))
        time.sleep(1.0)  # several poll rounds with both workers competing
    finally:
        for worker in workers:
            worker.stop()
    assert all(v == 1 for v in fake.max_active.values()), fake.max_active
    assert len(fake.max_active) == len(ids)
    with first.db() as session:
        assert session.scalars(select(Connection.lease_owner)).all() == [None] * len(ids)


def test_expired_lease_is_claimed_live_one_is_not(make_runtime: Callable[..., Runtime]) -> None:
    fake = FakeProvider()
    rt = make_runtime(adapter_factory=lambda _c: fake)
    [held, dead] = seed(rt, fake, 2)
    now = datetime.now(UTC)
    with rt.db() as session, session.begin():
        session.execute(
            update(Connection)
            .where(Connection.id == held)
            .values(lease_owner="other", lease_expires_at=now + timedelta(minutes=5))
        )
        session.execute(
            update(Connection)
            .where(Connection.id == dead)
            .values(lease_owner="killed", lease_expires_at=now - timedelta(seconds=1))
        )
    assert leases.claim_due(rt, "me", 10) == [dead]
    assert leases.claim_due(rt, "someone", 10) == []
    assert not leases.acquire(rt, held, "me")
    # A worker takes back its own leases that no job of its holds (a release that failed).
    assert leases.claim_due(rt, "other", 10, exclude={held}) == []
    assert leases.claim_due(rt, "other", 10) == [held]


def test_transient_failures_back_off_then_error_then_recover(
    make_runtime: Callable[..., Runtime],
) -> None:
    fake = SlowFake(delay=0)
    rt = make_runtime(
        adapter_factory=lambda _c: fake,
        error_threshold=3,
        retry_base_seconds=1,
        retry_max_seconds=60,
    )
    [connection_id] = seed(rt, fake, 1)
    sync_connection(rt, connection_id)
    fake.failure = RateLimitedByProvider("429", retry_after=30)
    for attempt in range(1, 4):
        with pytest.raises(SyncFailed, match="429"):
            sync_connection(rt, connection_id)
        report = sync_report(rt, identity=ADMIN, connection_id=connection_id)
        assert report.failure_count == attempt
        assert report.next_sync_at is not None
        assert report.next_sync_at >= datetime.now(UTC) + timedelta(seconds=29)
        assert report.status.value == ("ERROR" if attempt >= 3 else "SYNCED")
        assert report.error_reason.value == "UNDEFINED"
    fake.failure = ProviderUnreachable("down")
    with contextlib.suppress(SyncFailed):
        sync_connection(rt, connection_id)
    assert sync_report(rt, identity=ADMIN, connection_id=connection_id).last_error == "down"
    fake.failure = None
    sync_connection(rt, connection_id)
    report = sync_report(rt, identity=ADMIN, connection_id=connection_id)
    assert (report.status.value, report.failure_count, report.last_error) == ("SYNCED", 0, None)
    assert report.calendars[0].instances == 1


def test_new_day_reads_calendars_in_full_again(make_runtime: Callable[..., Runtime]) -> None:
    fake = FakeProvider()
    rt = make_runtime(adapter_factory=lambda _c: fake)
    [connection_id] = seed(rt, fake, 1)
    sync_connection(rt, connection_id)
    fake.calls.clear()
    sync_connection(rt, connection_id)
    assert fake.calls == ["read:cal:True"]  # incremental
    with rt.db() as session, session.begin():
        session.execute(update(ConnectionCalendar).values(horizon_day="2020-01-01"))
    fake.calls.clear()
    sync_connection(rt, connection_id)
    assert fake.calls == ["read:cal:False"]  # full read on a new day


def test_deleted_calendar_stops_being_imported_and_is_reported(
    make_runtime: Callable[..., Runtime],
) -> None:
    fake = FakeProvider()
    rt = make_runtime(adapter_factory=lambda _c: fake)
    [connection_id] = seed(rt, fake, 1)
    fake.add_calendar("user0@example.com", "work", "Work")
    fake.put(
        "user0@example.com",
        "work",
        "/w.ics",
        ical("w", "20270106T100000Z", "20270106T110000Z", "Work thing"),
    )
    from calsync.domain import ImportConfig, SyncConfig
    from calsync.service.connections.manage import update_sync_config

    update_sync_config(
        rt,
        identity=ADMIN,
        connection_id=connection_id,
        requested=SyncConfig(import_=ImportConfig(True, ("cal", "work"))),
        present={"listEventFromCalendars"},
        field_mask=None,
    )
    sync_connection(rt, connection_id)
    assert sync_report(rt, identity=ADMIN, connection_id=connection_id).calendars[1].instances == 1
    del fake.accounts["user0@example.com"].calendars["work"]
    sync_connection(rt, connection_id)
    report = sync_report(rt, identity=ADMIN, connection_id=connection_id)
    assert report.status.value == "SYNCED"
    assert report.last_error is not None and "work" in report.last_error
    assert [c.calendar_id for c in report.calendars] == ["cal"]
    with rt.db() as session:
        row = session.get(Connection, connection_id)
        assert row is not None and row.sync_config["import"]["calendars"] == ["cal"]


class CountingFake(SlowFake):
    """Counts reads, and holds one while a test looks at the connection mid-sync."""

    def __init__(self) -> None:
        super().__init__(delay=0.0)
        self.reads = 0
        self.reading = threading.Event()
        self.proceed = threading.Event()
        self.proceed.set()

    def read_changes(
        self, account: AccountRef, calendar_id: str, cursor: str | None, known_etags: dict[str, str]
    ) -> CalendarChanges:
        self.reads += 1
        self.reading.set()
        assert self.proceed.wait(10)
        return super().read_changes(account, calendar_id, cursor, known_etags)


def test_a_worker_that_waited_for_a_list_events_sync_does_not_sync_again(
    make_runtime: Callable[..., Runtime],
) -> None:
    """The in-process worker shares its lease owner with the API, so it can claim a due
    connection while List Events is syncing it. Once it gets the connection, that sync has
    done the work: a connection without export work is not read again (nor shown as
    SYNC_IN_PROGRESS right after List Events returned)."""
    fake = CountingFake()
    rt = make_runtime(adapter_factory=lambda _c: fake)
    [connection_id] = seed(rt, fake, 1)
    sync_connection(rt, connection_id, export=True)  # the first run, exports included
    push.request_sync(rt, connection_id)  # a change notification: due soon, to import
    time.sleep(NOTIFICATION_COALESCE.total_seconds())  # ... and now
    fake.reads = 0
    fake.reading.clear()
    fake.proceed.clear()
    list_events = threading.Thread(target=sync_connection, args=(rt, connection_id))
    list_events.start()
    assert fake.reading.wait(10)
    assert leases.claim_due(rt, rt.instance_id, 1) == [connection_id]  # same owner: allowed
    worker = threading.Thread(
        target=sync_connection, args=(rt, connection_id), kwargs={"export": True, "claimed": True}
    )
    worker.start()
    time.sleep(0.2)  # the worker is waiting for the connection's lock
    fake.proceed.set()
    list_events.join(10)
    worker.join(10)
    assert fake.reads == 1
    with rt.db() as session:
        row = session.get(Connection, connection_id)
        assert row is not None and row.status == "SYNCED"
        assert row.next_sync_at > datetime.now(UTC)


def _due_now(rt: Runtime, connection_id: str) -> None:
    with rt.db.begin() as session:
        session.execute(
            update(Connection)
            .where(Connection.id == connection_id)
            .values(next_sync_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def _stored_titles(rt: Runtime, connection_id: str) -> int:
    from calsync.store.models import EventInstance

    with rt.db() as session:
        return len(
            session.scalars(
                select(EventInstance.resource_key).where(
                    EventInstance.connection_id == connection_id
                )
            ).all()
        )


def test_a_long_sync_keeps_its_lease_and_no_other_worker_claims_it(
    make_runtime: Callable[..., Runtime],
) -> None:
    """Red-team finding 9: a sync outliving its lease was claimed by another worker, which
    synced it 12 more times meanwhile. The lease is renewed while the work goes on."""
    fake = CountingFake()
    rt = make_runtime(adapter_factory=lambda _c: fake, lease_seconds=0.6)
    [connection_id] = seed(rt, fake, 1)
    sync_connection(rt, connection_id, export=True)
    fake.reading.clear()
    fake.proceed.clear()
    running = threading.Thread(target=sync_connection, args=(rt, connection_id))
    running.start()
    assert fake.reading.wait(10)
    time.sleep(1.5)  # two and a half lease lengths
    _due_now(rt, connection_id)
    assert leases.claim_due(rt, "another-worker", 5) == []  # still ours: renewed
    fake.proceed.set()
    running.join(10)
    assert not running.is_alive()


def test_a_sync_whose_lease_was_lost_stops_without_writing(
    make_runtime: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process frozen past its lease (no renewal) finds another worker holding it: it writes
    nothing, records nothing, and says why."""
    fake = CountingFake()
    rt = make_runtime(adapter_factory=lambda _c: fake, lease_seconds=0.5)
    [connection_id] = seed(rt, fake, 1)
    sync_connection(rt, connection_id, export=True)
    before = _stored_titles(rt, connection_id)
    fake.put(
        "user0@example.com", "cal", "/0/b.ics", ical("new", "20270106T100000Z", "20270106T110000Z")
    )
    monkeypatch.setattr(leases, "renewed", lambda *_a: contextlib.nullcontext())
    fake.reading.clear()
    fake.proceed.clear()
    failures: list[BaseException] = []

    def frozen() -> None:
        try:
            sync_connection(rt, connection_id)
        except SyncFailed as exc:
            failures.append(exc)

    running = threading.Thread(target=frozen)
    running.start()
    assert fake.reading.wait(10)
    time.sleep(0.7)  # the lease expires
    assert leases.acquire(rt, connection_id, "another-worker")
    fake.proceed.set()
    running.join(10)
    assert failures and "another worker took it over" in str(failures[0])
    assert _stored_titles(rt, connection_id) == before  # nothing written by the lost run
    with rt.db() as session:
        row = session.get(Connection, connection_id)
        assert row is not None and row.failure_count == 0  # and nothing recorded against it
        assert row.lease_owner == "another-worker"
