"""Benchmarks 3 and 4 of issue 4: the sync engine.

3. **Incremental vs full** (``incremental``): a local Radicale holds one calendar of 2,000
   events; calsync connects it and imports it (the import throughput: events/s and instances/s
   of that first full read). Then 1 % of the events (20) are changed in Radicale and the
   connection is synced again (incremental: RFC 6578 sync-collection), several times; and the
   same calendar is read in full again (the calendar's sync cursor cleared, as on a new day).
   Wall time and CPU (this process, which runs calsync's sync in-process, plus Radicale's) of
   each; the ratio full / incremental is the goal's (>= 20x).
4. **Scale-out** (``scale_out``, PostgreSQL only): 500 connections against a local fake
   provider (``tests.fakes.FakeProvider`` with a fixed delay per read, like a remote server),
   synced from scratch by 2 and then 4 worker processes, each a
   ``calsync.service.sync.worker.Worker``
   in its own OS process with its own engine and lease owner. Connections synced per second;
   every provider read is logged with its process and time span, and two reads of one account
   that overlap in time, or a connection read more than once, count as double claims.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _p in (str(BENCH), str(REPO), str(REPO / "src")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import backends  # noqa: E402
import httpx  # noqa: E402
import live  # noqa: E402
from server import process_cpu_seconds  # noqa: E402
from sqlalchemy import delete, func, select, update  # noqa: E402
from tests.peers.dav_servers import (  # noqa: E402
    make_calendar,
    put_event,
    start_radicale,
    start_xandikos,
)

from calsync.domain import Identity, IdentityType, Permission  # noqa: E402
from calsync.service.connections import manage as connections  # noqa: E402
from calsync.service.connections.connect import connect_by_credentials  # noqa: E402
from calsync.service.platform import schedules  # noqa: E402
from calsync.service.runtime import Runtime, build_runtime  # noqa: E402
from calsync.service.sync.run import sync_connection  # noqa: E402
from calsync.settings import Settings  # noqa: E402
from calsync.store.db import transaction, upgrade  # noqa: E402
from calsync.store.models import (  # noqa: E402
    Connection,
    ConnectionCalendar,
    EventInstance,
    ImportedObject,
)

TENANT = "bench-sync"
ADMIN = Identity(
    tenant_id=TENANT,
    type=IdentityType.APP,
    permissions=frozenset(Permission),
    app_id=str(uuid.UUID(int=1)),
)
GOAL_INCREMENTAL = 20.0


def _schedule(rt: Runtime, schedule_id: str) -> None:
    schedules.put_schedule(
        rt,
        identity=ADMIN,
        schedule_id=schedule_id,
        owner_user_id=None,
        owner_name="",
        time_zone="Europe/Berlin",
    )


def _timed(fn: Any, radicale_pid: int) -> tuple[float, float, float, float]:
    """(wall ms, CPU ms of this thread + Radicale, of this thread, of Radicale) of ``fn()``."""
    cpu0, ext0 = time.thread_time(), process_cpu_seconds(radicale_pid)
    started = time.perf_counter()
    fn()
    wall = (time.perf_counter() - started) * 1000
    own = (time.thread_time() - cpu0) * 1000
    server = (process_cpu_seconds(radicale_pid) - ext0) * 1000
    return wall, own + server, own, server


def incremental(
    backend: backends.Backend, events: int = 2000, repeats: int = 5, dav: str = "radicale"
) -> dict[str, Any]:
    """Benchmark 3 on ``backend`` (a fresh database) against ``dav`` (Radicale or Xandikos):
    see the module doc."""
    root = Path(tempfile.mkdtemp(prefix="calsync-bench-sync-"))
    user, password = "sync@example.com", "sync-pw"
    start = start_radicale if dav == "radicale" else start_xandikos
    server = start(root / dav, {user: password})
    try:
        url = make_calendar(server, user, password, "big", "Big")
        text = live.calendar_text(random.Random(5), events, datetime.now(UTC), "big")
        if dav == "radicale":  # Radicale takes a whole calendar in one PUT of the collection
            with httpx.Client(auth=(user, password), timeout=120) as client:
                client.put(url, content=text.encode(), headers={"Content-Type": "text/calendar"})
        else:
            for name, body in _objects(text):
                put_event(url, user, password, name, body)
        providers = backend.workdir / "providers-sync.toml"
        backend.workdir.mkdir(parents=True, exist_ok=True)
        providers.write_text(
            f'[[providers]]\nid = "{live.PROVIDER_ID}"\nname = "Radicale"\nkind = "caldav"\n'
            f'calendar_type = "OTHER"\nurl = "{server.base_url}"\n'
        )
        rt = build_runtime(
            Settings(
                data_dir=backend.data_dir,
                database_url=backend.url,
                providers_file=providers,
                provider_timeout_seconds=300,  # Radicale answers 2,000 events slowly
                log_level="WARNING",
            )
        )
        try:
            upgrade(rt.engine)
            return _incremental(rt, server, url, user, password, events, repeats)
        finally:
            rt.close()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _objects(text: str) -> list[tuple[str, str]]:
    """The calendar as one object per UID (a series with its override), for servers that take
    objects one by one."""
    head, _, _ = text.partition("BEGIN:VEVENT")
    body = text[len(head) : text.rindex("END:VCALENDAR")]
    groups: dict[str, list[str]] = {}
    for block in body.split("BEGIN:VEVENT")[1:]:
        found = re.search(r"^UID:(.*?)\r?$", block, re.M)
        assert found is not None
        groups.setdefault(found.group(1), []).append("BEGIN:VEVENT" + block)
    return [
        (f"{uid.split('@')[0]}.ics", head + "".join(blocks) + "END:VCALENDAR\r\n")
        for uid, blocks in groups.items()
    ]


def _incremental(
    rt: Runtime, server: Any, url: str, user: str, password: str, events: int, repeats: int
) -> dict[str, Any]:
    pid = server._process.pid if server._process else 0
    schedule_id = str(uuid.uuid4())
    _schedule(rt, schedule_id)
    view = connect_by_credentials(
        rt,
        identity=ADMIN,
        schedule_id=schedule_id,
        provider_id=live.PROVIDER_ID,
        email=user,
        password=password,
    )
    cid = view.id
    # Import the benchmark's calendar only (Xandikos also makes a default, primary, calendar).
    [big] = [
        c.id
        for c in connections.list_calendars(rt, identity=ADMIN, connection_id=cid)
        if c.id.rstrip("/").rsplit("/", 1)[-1]
        == "big"  # Radicale's whole-calendar PUT drops the name
    ]
    with transaction(rt.db) as session:
        row = session.get(Connection, cid)
        assert row is not None
        config = row.sync_config
        row.sync_config = {**config, "import": {**config["import"], "calendars": [big]}}

    def sync() -> None:
        with transaction(rt.db) as session:  # due now, as a worker or a push makes it
            session.execute(
                update(Connection)
                .where(Connection.id == cid)
                .values(sync_requested_at=datetime.now(UTC) + timedelta(seconds=1))
            )
        sync_connection(rt, cid)

    first_wall, first_cpu, _, _ = _timed(sync, pid)
    with rt.db() as session:
        resources = list(
            session.execute(
                select(ImportedObject.key, ImportedObject.ical).where(
                    ImportedObject.connection_id == cid
                )
            )
        )
        instances = session.scalar(
            select(func.count())
            .select_from(EventInstance)
            .where(EventInstance.connection_id == cid)
        )
    changed = max(1, len(resources) // 100)
    rng = random.Random(9)
    inc: list[tuple[float, float, float, float]] = []
    full: list[tuple[float, float, float, float]] = []
    for round_ in range(repeats):
        for key, ical in rng.sample(resources, changed):
            body = ical.replace("SUMMARY:", f"SUMMARY:r{round_} ", 1)
            put_event(url, user, password, key.rstrip("/").rsplit("/", 1)[-1], body)
        inc.append(_timed(sync, pid))
    for _ in range(max(2, repeats // 2)):
        with transaction(rt.db) as session:
            session.execute(
                update(ConnectionCalendar)
                .where(ConnectionCalendar.connection_id == cid)
                .values(cursor=None, horizon_day=None)
            )
        full.append(_timed(sync, pid))
    inc_wall, inc_cpu, inc_own, inc_server = (
        statistics.median(t[i] for t in inc) for i in range(4)
    )
    full_wall, full_cpu, full_own, full_server = (
        statistics.median(t[i] for t in full) for i in range(4)
    )
    return {
        "dav_server": server.kind,
        "events": len(resources),
        "instances": instances,
        "changed_per_round": changed,
        "import_ms": round(first_wall, 1),
        "import_cpu_ms": round(first_cpu, 1),
        "import_events_per_s": round(len(resources) / (first_wall / 1000), 1),
        "import_instances_per_s": round((instances or 0) / (first_wall / 1000), 1),
        "incremental_ms": round(inc_wall, 1),
        "incremental_cpu_ms": round(inc_cpu, 1),
        "full_ms": round(full_wall, 1),
        "full_cpu_ms": round(full_cpu, 1),
        # CPU split: calsync's own (the syncing thread) and the Radicale server's
        "inc_calsync_cpu_ms": round(inc_own, 1),
        "inc_server_cpu_ms": round(inc_server, 1),
        "full_calsync_cpu_ms": round(full_own, 1),
        "full_server_cpu_ms": round(full_server, 1),
        "ratio_wall": round(full_wall / inc_wall, 1),
        "ratio_cpu": round(full_cpu / inc_cpu, 1),
        "ratio_calsync_cpu": round(full_own / inc_own, 1),
        "goal_ratio": full_wall / inc_wall >= GOAL_INCREMENTAL,
    }


# --- scale-out ------------------------------------------------------------------------------


def _accounts(count: int) -> list[tuple[str, str]]:
    return [(f"user{n}@example.com", f"pw-{n}") for n in range(count)]


def _fake(count: int, delay: float, log: Any = None) -> Any:
    """The same accounts in every process: one calendar of 20 one-off events each."""
    from tests.api.test_external_api import ical
    from tests.fakes import FakeProvider

    class Recording(FakeProvider):
        def read_changes(self, account: Any, calendar_id: str, cursor: Any, known: Any) -> Any:
            started = time.time()
            time.sleep(delay)  # a remote provider's latency
            try:
                return super().read_changes(account, calendar_id, cursor, known)
            finally:
                if log is not None:
                    log.put((account.email, os.getpid(), started, time.time()))

    fake = Recording()
    for n, (email, password) in enumerate(_accounts(count)):
        fake.add_account(email, password)
        fake.add_calendar(email, "cal", "Cal", primary=True)
        for e in range(20):
            day = 5 + e
            fake.put(
                email,
                "cal",
                f"/{n}/{e}.ics",
                ical(f"u{n}-{e}", f"202701{day:02d}T100000Z", f"202701{day:02d}T110000Z"),
            )
    return fake


def _settings(url: str, data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=url,
        providers_file=data_dir / "providers.toml",
        worker_threads=4,
        worker_tick_seconds=0.05,
        log_level="WARNING",
    )


def _worker_process(url: str, data_dir: str, count: int, delay: float, log: Any, stop: Any) -> None:
    from calsync.service.sync.worker import Worker

    fake = _fake(count, delay, log)
    rt = build_runtime(_settings(url, Path(data_dir)), adapter_factory=lambda _c: fake)
    worker = Worker(rt)
    worker.start()
    try:
        stop.wait()
    finally:
        worker.stop()
        rt.close()


def scale_out(
    backend: backends.Backend, connections: int = 500, workers: tuple[int, ...] = (2, 4)
) -> dict[str, Any]:
    """Benchmark 4 on a fresh PostgreSQL ``backend``: see the module doc."""
    delay = 0.02
    backend.data_dir.mkdir(parents=True, exist_ok=True)
    (backend.data_dir / "providers.toml").write_text(
        f'[[providers]]\nid = "{live.PROVIDER_ID}"\nname = "Fake"\nkind = "caldav"\n'
        'calendar_type = "OTHER"\nurl = "http://127.0.0.1:9/"\n'
    )
    fake = _fake(connections, 0.0)
    rt = build_runtime(_settings(backend.url, backend.data_dir), adapter_factory=lambda _c: fake)
    out: dict[str, Any] = {"connections": connections, "provider_delay_ms": delay * 1000}
    try:
        upgrade(rt.engine)
        started = time.perf_counter()
        for email, password in _accounts(connections):
            schedule_id = str(uuid.uuid4())
            _schedule(rt, schedule_id)
            connect_by_credentials(
                rt,
                identity=ADMIN,
                schedule_id=schedule_id,
                provider_id=live.PROVIDER_ID,
                email=email,
                password=password,
            )
        out["seed_s"] = round(time.perf_counter() - started, 1)
        ctx = multiprocessing.get_context("spawn")
        for n in workers:
            out[f"workers_{n}"] = _one_scale_run(rt, backend, ctx, n, connections, delay)
    finally:
        rt.close()
    return out


def _reset(rt: Runtime) -> None:
    with transaction(rt.db) as session:
        for model in (EventInstance, ImportedObject):
            session.execute(delete(model))
        session.execute(update(ConnectionCalendar).values(cursor=None, horizon_day=None))
        now = datetime.now(UTC)
        session.execute(
            update(Connection).values(
                status="CONNECTED",
                last_synced_at=None,
                sync_requested_at=now,
                next_sync_at=now,
                lease_owner=None,
                lease_expires_at=None,
                failure_count=0,
            )
        )


def _synced(rt: Runtime) -> int:
    with rt.db() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Connection)
                .where(Connection.last_synced_at.is_not(None))
            )
            or 0
        )


def _one_scale_run(
    rt: Runtime, backend: backends.Backend, ctx: Any, n: int, connections: int, delay: float
) -> dict[str, Any]:
    _reset(rt)
    log, stop = ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(
            target=_worker_process,
            args=(backend.url, str(backend.data_dir), connections, delay, log, stop),
        )
        for _ in range(n)
    ]
    for p in procs:
        p.start()
    reads: list[tuple[str, int, float, float]] = []
    started = None
    deadline = time.monotonic() + 600
    try:
        while _synced(rt) < connections and time.monotonic() < deadline:
            while not log.empty():
                reads.append(log.get())
                started = started or reads[0][2]
            time.sleep(0.05)
        finished = time.time()
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=60)
        while not log.empty():
            reads.append(log.get())
    started = min((r[2] for r in reads), default=finished)
    seconds = finished - started
    by_account: dict[str, list[tuple[int, float, float]]] = {}
    for email, pid, t0, t1 in reads:
        by_account.setdefault(email, []).append((pid, t0, t1))
    overlaps = 0
    for spans in by_account.values():
        spans.sort(key=lambda s: s[1])
        overlaps += sum(1 for a, b in itertools.pairwise(spans) if b[1] < a[2])
    return {
        "workers": n,
        "synced": _synced(rt),
        "seconds": round(seconds, 2),
        "connections_per_s": round(connections / seconds, 1) if seconds > 0 else 0.0,
        "reads": len(reads),
        "accounts_read_more_than_once": sum(1 for s in by_account.values() if len(s) > 1),
        "overlapping_reads": overlaps,
        "processes_that_synced": len({r[1] for r in reads}),
    }
