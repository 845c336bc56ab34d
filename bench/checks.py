"""Change checks at scale (issue 13): what one worker process spends to keep N CalDAV
connections fresh when nothing changed, and how many checks per second it sustains.

``python bench/checks.py [--connections 10000] [--seconds 60] [--latency-ms 20] [--threads 16]``

A simulated CalDAV server runs in a subprocess of its own (so its CPU is not counted): it
answers the change check, a Depth 1 PROPFIND of ``/u<i>/``, with one calendar and its
``sync-token``, after ``--latency-ms``; 1 % of the calendars change per minute (their token
moves). The bench inserts N connections straight into a SQLite database (one calendar each,
synced, its cursor the server's token, next check spread over one interval), then runs
calsync's ``ChangeChecker`` in this process for ``--seconds`` with the default 30 s interval,
as the worker's tick does (every 0.2 s here). Printed: checks done and per second (goal: N / 30
for N = 10,000, i.e. >= 333/s), calsync CPU per check (process CPU over the run, all threads;
goal <= 2 ms), changed calendars seen, and RSS. There is no baseline tree to run beside it:
before this round there were no change checks (only a full poll every 300 s), so the figures
are set against the issue's goals.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO), str(REPO / "src")]

PROVIDER_ID = "3f2a1b0c-9d8e-4f7a-8b6c-5d4e3f2a1b0c"
TENANT = "bench-checks"


def _multistatus(user: int, token: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:multistatus xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
        f"<D:response><D:href>/u{user}/</D:href><D:propstat><D:prop><D:resourcetype>"
        "<D:collection/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status>"
        f"</D:propstat></D:response><D:response><D:href>/u{user}/work/</D:href><D:propstat>"
        "<D:prop><D:resourcetype><D:collection/>"
        '<C:calendar xmlns:C="urn:ietf:params:xml:ns:caldav"/></D:resourcetype>'
        f"<D:sync-token>{token}</D:sync-token><CS:getctag>{token}</CS:getctag></D:prop>"
        "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"
    ).encode()


def _serve(port_out: multiprocessing.Queue[int], users: int, latency: float) -> None:
    tokens = dict.fromkeys(range(users), 0)

    def drift() -> None:  # 1 % of the calendars per minute
        rng = random.Random(7)
        while True:
            time.sleep(60 / max(1, users // 100))
            tokens[rng.randrange(users)] += 1

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_PROPFIND(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            user = int(self.path.strip("/").split("/")[0][1:])
            time.sleep(latency)
            body = _multistatus(user, f"tok-{tokens[user]}")
            self.send_response(207)
            self.send_header("Content-Type", "application/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=drift, daemon=True).start()
    port_out.put(server.server_address[1])
    server.serve_forever()


def _seed(rt: object, base_url: str, count: int, interval: float) -> None:
    from sqlalchemy import insert

    from calsync.providers.base import Credentials
    from calsync.service.connections.accounts import seal_password
    from calsync.store.models import Connection, ConnectionCalendar

    now = datetime.now(UTC)
    rng = random.Random(3)
    secret = seal_password(rt, Credentials("bench", "bench-pw"))  # type: ignore[arg-type]
    connections, calendars = [], []
    for i in range(count):
        cid = uuid.uuid4().hex
        connections.append(
            {
                "id": cid,
                "tenant_id": TENANT,
                "provider_id": PROVIDER_ID,
                "schedule_id": str(uuid.uuid4()),
                "external_account_email": f"u{i}@example.com",
                "status": "SYNCED",
                "error_reason": "UNDEFINED",
                "sync_config": {"import": {"enabled": True}},
                "secret": secret,
                "account_state": {"calendar_home_url": f"{base_url}/u{i}/"},
                "last_synced_at": now,
                "fresh_as_of": now,
                "sync_requested_at": now - timedelta(days=1),
                "next_sync_at": now + timedelta(days=1),
                "next_check_at": now + timedelta(seconds=rng.uniform(0, interval)),
                "failure_count": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        calendars.append(
            {"connection_id": cid, "calendar_id": "work", "name": "Work", "cursor": "sync:tok-0"}
        )
    with rt.db.begin() as session:  # type: ignore[attr-defined]
        session.execute(insert(Connection), connections)
        session.execute(insert(ConnectionCalendar), calendars)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    from calsync.service.runtime import build_runtime
    from calsync.service.sync.checks import ChangeChecker
    from calsync.settings import Settings
    from calsync.store.db import upgrade

    ports: multiprocessing.Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(
        target=_serve, args=(ports, args.connections, args.latency_ms / 1000), daemon=True
    )
    server.start()
    base_url = f"http://127.0.0.1:{ports.get(timeout=30)}"
    workdir = Path(tempfile.mkdtemp(prefix="calsync-checks-"))
    providers = workdir / "providers.toml"
    providers.write_text(
        f'[[providers]]\nid = "{PROVIDER_ID}"\nname = "Simulated CalDAV"\nkind = "caldav"\n'
        f'url = "{base_url}/"\n'
    )
    settings = Settings(
        data_dir=workdir / "data",
        database_url=f"sqlite:///{workdir / 'calsync.db'}",
        providers_file=providers,
        log_level="WARNING",
    )
    rt = build_runtime(settings)
    try:
        upgrade(rt.engine)
        _seed(rt, base_url, args.connections, settings.check_interval_seconds)
        checker = ChangeChecker(rt, threads=args.threads)
        counter = rt.metrics.change_checks
        cpu0, wall0 = time.process_time(), time.monotonic()
        while time.monotonic() - wall0 < args.seconds:
            checker.run_once()
            time.sleep(0.2)
        checker.stop()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        done = {
            o: counter.labels(PROVIDER_ID, o)._value.get()
            for o in ("unchanged", "changed", "failed")
        }
        total = sum(done.values())
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{args.connections} connections, {wall:.0f} s, check interval "
            f"{settings.check_interval_seconds:g} s, server latency {args.latency_ms:g} ms, "
            f"{args.threads} check threads"
        )
        print(
            f"checks: {total:.0f} ({total / wall:.1f}/s; needed for this interval: "
            f"{args.connections / settings.check_interval_seconds:.1f}/s)  {done}"
        )
        print(f"calsync CPU per check: {cpu / max(total, 1) * 1000:.2f} ms  RSS {rss_mb:.0f} MB")
    finally:
        rt.close()
        server.terminate()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
