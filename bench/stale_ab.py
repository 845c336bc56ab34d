"""List Events on stale vs fresh data, for two source trees, side by side in one run (issue 13).

``python bench/stale_ab.py [--baseline REV] [--calendars 10] [--events 200] [--requests 200]``

A local Radicale holds ``calendars`` accounts of ``events`` events each (``live.start_world``).
Each tree (``baseline``: ``git archive`` of REV; ``shipped``: the working tree) gets its own
SQLite database, connected to every account through its API and synced. Then each tree runs two
``calsync serve --no-worker`` processes on its database: **fresh**
(``CALSYNC_FRESHNESS_SECONDS=3600``: no read finds the data stale) and **stale**
(``CALSYNC_FRESHNESS_SECONDS=0``: every read finds it stale). The same one-week List Events of
all schedules (10 ``scheduleIds``, ``OWN_PI``, limit 100) is sent one at a time, in interleaved
blocks across the four servers, so machine drift hits all alike. Printed: p50 / p90 per server
and the stale/fresh ratio per tree (goal, issue 13: shipped stale p50 <= 2x fresh p50).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO), str(REPO / "src")]

import backends  # noqa: E402
import httpx  # noqa: E402
import live  # noqa: E402
from run import baseline_src, providers_file  # noqa: E402
from server import Server  # noqa: E402

TENANT = "bench-stale"
BLOCKS = 4


def _tree_backend(workdir: Path, name: str) -> backends.Backend:
    path = workdir / name / "data" / "calsync.db"
    path.parent.mkdir(parents=True)
    return backends.Backend("sqlite", f"sqlite:///{path}", workdir / name, sqlite_path=path)


def _server(backend: backends.Backend, providers: Path, src: Path, freshness: float) -> Server:
    env = {**backend.env(providers), "CALSYNC_FRESHNESS_SECONDS": str(freshness)}
    return Server(env, backend.workdir / f"server-{freshness:g}.log", src)


def _timed(http: httpx.Client, url: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = http.get(url)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or response.json()["failedProviderIds"]:
            raise RuntimeError(f"List Events -> {response.status_code}: {response.text[:300]}")
    return times


def _measure(clients: dict[str, httpx.Client], url: str, args: argparse.Namespace) -> None:
    """Interleaved blocks of the same call on every server; p50 / p90 and stale/fresh."""
    for client in clients.values():
        _timed(client, url, 10)  # warm-up (the stale servers' first refreshes start here)
    times: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(BLOCKS):
        for name, client in clients.items():
            times[name] += _timed(client, url, args.requests // BLOCKS)
    for tree in ("baseline", "shipped"):
        p50 = {}
        for label in ("fresh", "stale"):
            ordered = sorted(times[f"{tree}-{label}"])
            p50[label] = statistics.median(ordered)
            p90 = ordered[int(len(ordered) * 0.9)]
            print(f"{tree:8s} {label}: p50 {p50[label]:8.2f} ms, p90 {p90:8.2f} ms")
        print(f"{tree:8s} stale/fresh p50: {p50['stale'] / p50['fresh']:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="0eccd06")
    parser.add_argument("--calendars", type=int, default=10)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="calsync-stale-ab-"))
    world = live.start_world(args.calendars, args.events)
    trees = {"baseline": baseline_src(args.baseline), "shipped": REPO / "src"}
    servers: dict[str, Server] = {}
    clients: dict[str, httpx.Client] = {}
    opened: list[backends.Backend] = []
    try:
        providers = providers_file(workdir / "providers.toml", world.server.base_url)
        for tree, src in trees.items():
            backend = _tree_backend(workdir, tree)
            opened.append(backend)
            backend.open(providers)
            key = backend.new_key(TENANT)
            headers = {"Authorization": key}
            for label, freshness in (("fresh", 3600.0), ("stale", 0.0)):
                name = f"{tree}-{label}"
                servers[name] = _server(backend, providers, src, freshness)
                clients[name] = httpx.Client(
                    base_url=servers[name].base_url, headers=headers, timeout=120
                )
            seconds = live.connect_accounts(clients[f"{tree}-fresh"], world)
            print(f"{tree}: {args.calendars} accounts connected and synced in {seconds:.1f} s")
        _measure(clients, live.events_url(world.schedule_ids, world.week_start, 100), args)
    finally:
        for client in clients.values():
            client.close()
        for srv in servers.values():
            srv.stop()
        for backend in opened:
            backend.close()
        world.stop()
        shutil.rmtree(trees["baseline"].parent, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
