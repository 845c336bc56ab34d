"""Benchmark 1 (List Events over HTTP against health) for two source trees, on SQLite: the
A/B behind the fifth round's changes (bench/RESULTS.md).

``python bench/http_ab.py [--baseline REV] [--processes N] [--blocks N]``

Builds the benchmark's SQLite data once (1,000 connections x 1,000 instances), starts
``calsync serve`` of the baseline revision's ``src`` (with the working tree's migrations, as
``run.py`` does) and of the working tree on it, and measures both with ``run.http_bench`` (the
full run's interleaved blocks, lean client, 4 in flight) at a smaller request count. Prints
req/s, p50, the server's CPU per call and the ratio to health for each.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO), str(REPO / "src")]

import backends  # noqa: E402
import gen  # noqa: E402
from run import FAKE_PROVIDER_ID, FULL, baseline_src, http_bench, providers_file  # noqa: E402
from server import Server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--blocks", type=int, default=6)
    args = parser.parse_args()
    cfg = dataclasses.replace(FULL, requests=400 * args.blocks, blocks=args.blocks, sequential=0)

    workdir = Path(tempfile.mkdtemp(prefix="calsync-http-ab-"))
    backend = backends.Backend(
        "sqlite",
        f"sqlite:///{workdir / 'data' / 'calsync.db'}",
        workdir,
        sqlite_path=workdir / "data" / "calsync.db",
    )
    trees = {"baseline": baseline_src(args.baseline), "shipped": REPO / "src"}
    servers: dict[str, Server] = {}
    try:
        providers = providers_file(workdir / "providers.toml", "http://127.0.0.1:9/")
        backend.open(providers)
        ds = gen.plan(cfg.connections, FAKE_PROVIDER_ID)
        assert backend.sqlite_path is not None
        gen.load_sqlite(str(backend.sqlite_path), ds, cfg.per_connection)
        gen.backfill_bound(backend.url)
        key = backend.new_key(gen.TENANT)
        env = backend.env(providers)
        for name, src in trees.items():
            log = workdir / f"server-{name}.log"
            servers[name] = Server(env, log, src, processes=args.processes)
        results = http_bench(servers, key, ds, cfg, backend, ["lean"])
        for name, r in results.items():
            ev, he = r["events"], r["health"]
            errors = ev["errors"] + he["errors"]
            print(
                f"{name:9s} List Events {ev['rps']:7.1f} req/s, p50 {ev['p50_ms']:5.2f} ms, "
                f"CPU {ev['server_cpu_ms_per_req']:.2f} ms | health {he['rps']:7.1f} req/s, "
                f"CPU {he['server_cpu_ms_per_req']:.2f} ms | ratio {r['rps_ratio']:.1%}"
                + (f" | errors {errors}" if errors else "")
            )
    finally:
        for srv in servers.values():
            srv.stop()
        backend.close()
        shutil.rmtree(trees["baseline"].parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
