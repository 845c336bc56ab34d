"""Faults lose nothing: a provider failing half-way through paging, a worker killed with SIGKILL
in the middle of a sync, PostgreSQL restarting under a running worker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from calsync.domain import Identity, IdentityType, Permission
from calsync.providers.microsoft.adapter import GraphCalendarProvider
from calsync.providers.microsoft.convert import EXPORT_PROPERTY_ID
from calsync.providers.registry import MICROSOFT_PROVIDER_ID, ProviderConfig
from calsync.service.platform import sessions
from calsync.service.runtime import Runtime
from calsync.service.sync.run import SyncFailed, sync_connection
from calsync.store.models import Connection, EventInstance, ExportedEvent
from tests.accounts import connect_oauth
from tests.conftest import random_guid
from tests.peers.graph_fake import GraphFake, start_graph_fake

ADMIN = Identity(
    tenant_id="site-one",
    type=IdentityType.APP,
    permissions=frozenset(Permission),
    app_id=random_guid(),
)
BASE = datetime(2027, 3, 1, 9, tzinfo=UTC)


class FailAfter(httpx.HTTPTransport):
    """Lets ``allowed`` requests through, then fails every request until reset."""

    def __init__(self) -> None:
        super().__init__()
        self.allowed: int | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.allowed is not None:
            if self.allowed <= 0:
                raise httpx.ConnectError("injected failure", request=request)
            self.allowed -= 1
        return super().handle_request(request)


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphFake]:
    fake = start_graph_fake(default_page_size=2)
    yield fake
    fake.stop()


def provider_toml(graph: GraphFake) -> str:
    return "\n".join(
        [
            "[[providers]]",
            f'id = "{MICROSOFT_PROVIDER_ID}"',
            'kind = "microsoft"',
            'client_id = "cid"',
            'client_secret = "secret"',
            f'api_url = "{graph.api_url}"',
            "",
        ]
    )


@dataclass
class Mailbox:
    email: str
    token: str
    calendar_id: str
    connection_id: str


def add_mailbox(rt: Runtime, graph: GraphFake, events: int) -> Mailbox:
    email = f"{random_guid()[:8]}@example.com"
    token = f"tok-{random_guid()}"
    graph.add_account(email, token=token)
    calendar_id = graph.default_calendar(email).id
    for n in range(events):
        graph.put_event(
            email,
            calendar_id,
            subject=f"E{n}",
            start=BASE + timedelta(hours=n),
            end=BASE + timedelta(hours=n, minutes=30),
        )
    connection_id = connect_oauth(rt, ADMIN, MICROSOFT_PROVIDER_ID, email, token)
    return Mailbox(email, token, calendar_id, connection_id)


def instance_titles(rt: Runtime, connection_id: str) -> list[str]:
    with rt.db() as session:
        return sorted(
            session.scalars(
                select(EventInstance.title).where(EventInstance.connection_id == connection_id)
            )
        )


def test_failure_half_way_through_paging_keeps_old_data(
    make_runtime: Callable[..., Runtime], graph: GraphFake
) -> None:
    transport = FailAfter()

    def adapters(config: ProviderConfig) -> GraphCalendarProvider:
        return GraphCalendarProvider(
            str(config.options["api_url"]), transport=transport, page_size=2
        )

    rt = make_runtime(extra_toml=provider_toml(graph), adapter_factory=adapters)
    box = add_mailbox(rt, graph, events=3)
    sync_connection(rt, box.connection_id)
    assert instance_titles(rt, box.connection_id) == ["E0", "E1", "E2"]
    for n in range(3, 8):
        graph.put_event(
            box.email,
            box.calendar_id,
            subject=f"E{n}",
            start=BASE + timedelta(hours=n),
            end=BASE + timedelta(hours=n, minutes=30),
        )
    transport.allowed = 2  # the incremental read needs more pages than that
    with pytest.raises(SyncFailed):
        sync_connection(rt, box.connection_id)
    assert instance_titles(rt, box.connection_id) == ["E0", "E1", "E2"]  # old data, no mix
    transport.allowed = None
    sync_connection(rt, box.connection_id)
    assert instance_titles(rt, box.connection_id) == [f"E{n}" for n in range(8)]
    transport.close()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "calsync.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=handle,
        )


def worker_env(rt: Runtime, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CALSYNC_DATA_DIR": str(rt.settings.data_dir),
        "CALSYNC_DATABASE_URL": rt.settings.resolved_database_url(),
        "CALSYNC_PROVIDERS_FILE": str(rt.settings.providers_file),
        "CALSYNC_WORKER_TICK_SECONDS": "0.1",
        **extra,
    }


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_worker_killed_mid_sync_loses_nothing(
    make_runtime: Callable[..., Runtime], graph: GraphFake, tmp_path: Path
) -> None:
    rt = make_runtime(extra_toml=provider_toml(graph))
    box = add_mailbox(rt, graph, events=12)  # 6+ pages of 2
    env = worker_env(rt, tmp_path, CALSYNC_LEASE_SECONDS="2")
    log = tmp_path / "worker.log"
    graph.response_delay = 0.3
    try:
        worker = start_worker(env, log)
        wait_for(
            lambda: any(r.token == box.token for r in graph.requests),
            30,
            "the worker to start reading",
        )
        time.sleep(0.5)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        half = instance_titles(rt, box.connection_id)
        assert half in ([], [f"E{n}" for n in range(12)]), half  # never a partial calendar
        with rt.db() as session:
            row = session.get(Connection, box.connection_id)
            assert row is not None and row.lease_owner is not None  # the dead worker's lease
    finally:
        graph.response_delay = 0.0
    survivor = start_worker(env, log)
    try:
        wait_for(
            lambda: instance_titles(rt, box.connection_id) == sorted(f"E{n}" for n in range(12)),
            60,
            "the next worker to finish the job",
        )
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(30)
    with rt.db() as session:
        keys = session.execute(
            select(EventInstance.instance_key, func.count())
            .where(EventInstance.connection_id == box.connection_id)
            .group_by(EventInstance.instance_key)
        ).all()
        assert all(count == 1 for _, count in keys) and len(keys) == 12


def _restart_postgres() -> None:
    clusters = sorted(os.listdir("/etc/postgresql"))
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "restart"],
        check=True,
        timeout=120,
        capture_output=True,
    )


def test_worker_survives_postgres_restart(
    make_runtime: Callable[..., Runtime], graph: GraphFake, tmp_path: Path, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("restarts PostgreSQL: runs on the PostgreSQL variant only")
    if shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        pytest.skip("needs pg_ctlcluster and root to restart the local PostgreSQL")
    rt = make_runtime(extra_toml=provider_toml(graph), poll_interval_seconds=0.5)
    box = add_mailbox(rt, graph, events=2)
    worker = start_worker(
        worker_env(rt, tmp_path, CALSYNC_POLL_INTERVAL_SECONDS="0.5"), tmp_path / "worker.log"
    )
    try:
        wait_for(lambda: len(instance_titles(rt, box.connection_id)) == 2, 30, "first sync")
        graph.response_delay = 0.3  # syncs run back to back: one is mid-way at the restart
        time.sleep(1.0)
        try:
            _restart_postgres()
        finally:
            graph.response_delay = 0.0
        rt.engine.dispose()
        graph.put_event(
            box.email,
            box.calendar_id,
            subject="After restart",
            start=BASE + timedelta(days=1),
            end=BASE + timedelta(days=1, hours=1),
        )
        wait_for(
            lambda: "After restart" in instance_titles(rt, box.connection_id),
            60,
            "a sync after the restart",
        )
        assert worker.poll() is None, "the worker died with the database"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)


def exported_events(graph: GraphFake, email: str, calendar_id: str) -> list[dict[str, Any]]:
    calendar = graph.account(email).calendars[calendar_id]
    return [
        e
        for e in calendar.events.values()
        if any(
            p.get("id", "").casefold() == EXPORT_PROPERTY_ID.casefold()
            for p in e.get("singleValueExtendedProperties") or []
        )
    ]


def test_worker_killed_between_export_write_and_commit_never_duplicates(
    make_runtime: Callable[..., Runtime], graph: GraphFake, tmp_path: Path
) -> None:
    """Graph assigns event ids, so this is the hardest case: the worker is SIGKILLed while
    Graph holds the answer of a $batch of creates it has already carried out."""
    rt = make_runtime(extra_toml=provider_toml(graph))
    box = add_mailbox(rt, graph, events=0)
    with rt.db() as session:
        schedule_id = session.get(Connection, box.connection_id).schedule_id  # type: ignore[union-attr]
    for n in range(30):
        sessions.put_session(
            rt,
            identity=ADMIN,
            schedule_id=schedule_id,
            session_id=f"s-{n:02d}",
            data=sessions.SessionInput(
                title=f"Session {n}",
                status="CONFIRMED",
                start=BASE + timedelta(hours=n),
                end=BASE + timedelta(hours=n, minutes=45),
            ),
        )
    env = worker_env(rt, tmp_path, CALSYNC_LEASE_SECONDS="2")
    log = tmp_path / "worker.log"
    graph.answer_delay_after_write = 30.0
    worker = start_worker(env, log)
    try:
        wait_for(
            lambda: len(exported_events(graph, box.email, box.calendar_id)) > 0,
            30,
            "the worker to write the first batch",
        )
        time.sleep(0.3)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        graph.answer_delay_after_write = 0.0
    written = len(exported_events(graph, box.email, box.calendar_id))
    with rt.db() as session:
        unconfirmed = session.scalar(
            select(func.count())
            .select_from(ExportedEvent)
            .where(ExportedEvent.external_id.is_(None))
        )
    assert written > 0 and unconfirmed == written  # written out there, not recorded here
    survivor = start_worker(env, log)
    try:
        wait_for(
            lambda: (
                len(exported_events(graph, box.email, box.calendar_id)) == 30
                and _all_recorded(rt, 30)
            ),
            60,
            "the next worker to finish the export",
        )
    finally:
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(30)
    subjects = sorted(e["subject"] for e in exported_events(graph, box.email, box.calendar_id))
    assert subjects == sorted(f"Session {n}" for n in range(30))  # exactly one per session


def _all_recorded(rt: Runtime, count: int) -> bool:
    with rt.db() as session:
        recorded = session.scalar(
            select(func.count())
            .select_from(ExportedEvent)
            .where(ExportedEvent.external_id.is_not(None))
        )
    return recorded == count
