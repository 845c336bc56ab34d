"""Benchmark 1 (List Events over HTTP against health) for two source trees, interleaved, on
SQLite: the A/B behind the fifth round's changes (bench/RESULTS.md).

``python bench/http_ab.py [--baseline REV] [--processes N] [--blocks N]``

Builds the benchmark's SQLite data once (1,000 connections x 1,000 instances), starts
``calsync serve`` of the baseline revision's ``src`` (with the working tree's migrations, as
``run.py`` does) and of the working tree on it, and measures them in alternating blocks with the
lean load client at 4 in flight: List Events (a week, 10 schedules, 100 per page) and health.
Prints req/s, p50, the server's CPU per call and the ratio to health for each.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO), str(REPO / "src")]

import backends  # noqa: E402
import gen  # noqa: E402
import load  # noqa: E402
from run import FAKE_PROVIDER_ID, baseline_src, event_urls, providers_file  # noqa: E402
from server import Server  # noqa: E402

CONCURRENCY = 4
EVENTS_PER_BLOCK, HEALTH_PER_BLOCK, WARMUP = 400, 800, 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=6)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="calsync-http-ab-"))
    backend = backends.Backend(
        "sqlite",
        f"sqlite:///{workdir / 'data' / 'calsync.db'}",
        workdir,
        sqlite_path=workdir / "data" / "calsync.db",
    )
    trees = {"baseline": baseline_src(args.baseline), "shipped": REPO / "src"}
    servers: dict[str, Server] = {}
    clients: dict[str, load.LeanClient] = {}
    try:
        providers = providers_file(workdir / "providers.toml", "http://127.0.0.1:9/")
        backend.open(providers)
        ds = gen.plan(1000, FAKE_PROVIDER_ID)
        assert backend.sqlite_path is not None
        gen.load_sqlite(str(backend.sqlite_path), ds, 1000)
        gen.backfill_bound(backend.url)
        key = backend.new_key(gen.TENANT)
        urls = event_urls(ds, WARMUP + 5 * EVENTS_PER_BLOCK, seed=101)
        env = backend.env(providers)
        for name, src in trees.items():
            log = workdir / f"server-{name}.log"
            servers[name] = Server(env, log, src, processes=args.processes)
            clients[name] = load.LeanClient(
                servers[name].base_url, CONCURRENCY, {"Authorization": key}
            )
        samples = {n: {"events": load.Samples(), "health": load.Samples()} for n in trees}
        for client in clients.values():
            client.run_block(urls[:WARMUP], CONCURRENCY, None)
            client.run_block(["/v1/health"] * WARMUP, CONCURRENCY, None)
        for block in range(args.blocks):
            start = WARMUP + (block % 5) * EVENTS_PER_BLOCK
            series = {
                "events": urls[start : start + EVENTS_PER_BLOCK],
                "health": ["/v1/health"] * HEALTH_PER_BLOCK,
            }
            for name, client in clients.items():
                for kind, part in series.items():
                    cpu = servers[name].cpu_seconds()
                    got = client.run_block(part, CONCURRENCY, None)
                    got.server_cpu_s = servers[name].cpu_seconds() - cpu
                    samples[name][kind].add(got)
        for name in trees:
            ev, he = (samples[name][k].summary() for k in ("events", "health"))
            errors = ev["errors"] + he["errors"]
            print(
                f"{name:9s} List Events {ev['rps']:7.1f} req/s, p50 {ev['p50_ms']:5.2f} ms, "
                f"CPU {ev['server_cpu_ms_per_req']:.2f} ms | health {he['rps']:7.1f} req/s, "
                f"CPU {he['server_cpu_ms_per_req']:.2f} ms | ratio {ev['rps'] / he['rps']:.1%}"
                + (f" | errors {errors}" if errors else "")
            )
    finally:
        for client in clients.values():
            client.close()
        for srv in servers.values():
            srv.stop()
        backend.close()
        shutil.rmtree(trees["baseline"].parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
