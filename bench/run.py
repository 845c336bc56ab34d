"""calsync benchmarks of issue 4: ``python bench/run.py [--quick]`` (or ``make bench``).

On PostgreSQL and SQLite (fresh databases, dropped at the end; PostgreSQL skipped with a
message when unreachable) it measures, side by side in one run:

1. List Events over HTTP against real ``calsync serve --no-worker`` subprocesses on 127.0.0.1
   with 1,000 SYNCED connections on 1,000 schedules and 1,000,000 stored instances: one-week
   window, ``cursorPaging.limit=100``, 10 random schedule ids per request; p50/p99 and
   requests/s next to ``GET /v1/health`` of the same server (same client, same concurrency,
   interleaved blocks). The working tree ("shipped") and a baseline revision's source
   (``--baseline``, default: the commit before the List Events fast path) run side by side.
2. List Events from the store vs reading the same calendars live from a local Radicale and
   expanding them (``live.py``).
3. Incremental sync of a 2,000-event CalDAV calendar with 1 % changed vs a full re-read, and
   the import throughput of the first full read (``syncbench.py``).
4. Scale-out: 2 and 4 worker processes on PostgreSQL syncing 500 connections against a local
   fake, connections synced per second and double claims (``syncbench.py``).

It also EXPLAINs the page query (``plans.py``). Prints a table and writes
``bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO), str(REPO / "src")]

import backends  # noqa: E402
import gen  # noqa: E402
import httpx  # noqa: E402
import live  # noqa: E402
import load  # noqa: E402
import plans  # noqa: E402
import syncbench  # noqa: E402
from server import Server  # noqa: E402

FAKE_PROVIDER_ID = "0f6c7f0e-1111-4222-8333-444455556666"
GOAL_P50_MS = 10.0
GOAL_RPS_RATIO = 0.40
GOAL_STORE_SPEEDUP = 50.0
# The code before the List Events fast path (key cache, column selects, two statements, bound).
BASELINE = "c1f55e7"


@dataclass(frozen=True)
class Config:
    connections: int
    per_connection: int
    requests: int  # per series (events, health) after warm-up
    warmup: int
    concurrency: int
    blocks: int  # interleaved blocks per series
    sequential: int  # extra requests at concurrency 1
    plan_queries: int  # per cell of the query-plan table
    calendars: int
    events_per_calendar: int
    live_repeats: int
    store_repeats: int


FULL = Config(1000, 1000, 2000, 200, 4, 4, 200, 40, 10, 200, 7, 40)
QUICK = Config(100, 100, 200, 40, 4, 2, 40, 8, 3, 40, 2, 10)


def say(message: str) -> None:
    print(message, flush=True)


def providers_file(path: Path, radicale_url: str) -> Path:
    entries = [
        (FAKE_PROVIDER_ID, "Bench CalDAV (never contacted)", "http://127.0.0.1:9/"),
        (live.PROVIDER_ID, "Bench Radicale", radicale_url),
    ]
    lines = []
    for pid, name, url in entries:
        lines += [
            "[[providers]]",
            f'id = "{pid}"',
            f'name = "{name}"',
            'kind = "caldav"',
            'calendar_type = "OTHER"',
            f'url = "{url}"',
            "",
        ]
    path.write_text("\n".join(lines))
    return path


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_urls(ds: gen.Dataset, count: int, seed: int) -> list[str]:
    """One-week windows starting 0-27 days from today, 10 random schedules, limit 100."""
    urls = []
    for q in plans.week_queries(ds, count, "near", seed):
        params = [
            ("from", _iso(q.from_ms)),
            ("to", _iso(q.to_ms)),
            ("cursorPaging.limit", "100"),
            ("fieldsets", "OWN_PI"),
        ]
        params += [("scheduleIds", s) for s in q.schedule_ids]
        urls.append(f"{live.EXT}/events?" + httpx.QueryParams(params).__str__())
    return urls


def _events_check() -> Any:
    seen = [0]

    def check(response: Any) -> str | None:
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        seen[0] += 1
        if seen[0] % 8 == 1:  # parse a sample only: the client shares the 2 cores
            body = response.json()
            if body["failedProviderIds"]:
                return f"failedProviderIds {body['failedProviderIds']}"
            if not body["events"]:
                return "no events in the window"
        return None

    return check


def _warm_up(
    targets: dict[str, tuple[Server, load.Client]],
    urls: list[str],
    series: dict[str, list[str]],
    cfg: Config,
    checks: dict[str, Any],
) -> None:
    """One checked call, then ``cfg.warmup`` requests of each series, on every target."""
    for name, (_srv, http) in targets.items():
        first = http.get(urls[0])
        if first.status_code != 200:
            raise RuntimeError(f"List Events -> {first.status_code}: {first.text[:300]}")
        http.run_block(urls[: cfg.warmup], cfg.concurrency, checks[name])
        http.run_block(series["health"][: cfg.warmup], cfg.concurrency, None)
        http.run_block(series["providers"][: cfg.warmup], cfg.concurrency, None)


def http_bench(
    servers: dict[str, Server],
    key: str,
    ds: gen.Dataset,
    cfg: Config,
    backend: backends.Backend,
    clients: list[str],
) -> dict[str, dict[str, Any]]:
    """Every server gets the same requests, from each load client in ``clients`` (the first
    keeps the server's name, the others are named ``server@client``). Blocks are interleaved
    across targets and series (target A: events, health, providers; target B: ...; next block)
    so that drift in the machine's load hits all alike; only one server is busy at a time."""
    total = cfg.warmup + cfg.requests
    urls = event_urls(ds, total + cfg.sequential, seed=101)
    series = {
        "events": urls[cfg.warmup : total],
        "health": ["/v1/health"] * cfg.requests,
        # authenticated, almost no work: what an API-key lookup costs on top of health
        "providers": [f"{live.EXT}/providers"] * cfg.requests,
    }
    sequential = {"events": urls[total:], "health": ["/v1/health"] * cfg.sequential}
    load_before = os.getloadavg()[0]
    targets: dict[str, tuple[Server, load.Client]] = {}
    for server_name, srv in servers.items():
        for i, kind in enumerate(clients):
            name = server_name if i == 0 else f"{server_name}@{kind}"
            make = load.CLIENTS[kind]
            targets[name] = (srv, make(srv.base_url, cfg.concurrency, {"Authorization": key}))
    samples = {name: {k: load.Samples() for k in series} for name in targets}
    seq = {name: {k: load.Samples() for k in sequential} for name in targets}
    checks = {name: _events_check() for name in targets}
    try:
        _warm_up(targets, urls, series, cfg, checks)
        started = time.perf_counter()
        for b in range(cfg.blocks):
            for name, (srv, http) in targets.items():
                for kind, all_urls in series.items():
                    n = len(all_urls)
                    part = all_urls[b * n // cfg.blocks : (b + 1) * n // cfg.blocks]
                    cpu0 = (srv.cpu_seconds(), backend.db_cpu_seconds())
                    got = http.run_block(
                        part, cfg.concurrency, checks[name] if kind == "events" else None
                    )
                    got.server_cpu_s = srv.cpu_seconds() - cpu0[0]
                    got.db_cpu_s = max(0.0, backend.db_cpu_seconds() - cpu0[1])
                    samples[name][kind].add(got)
                for kind, all_urls in sequential.items():
                    n = len(all_urls)
                    part = all_urls[b * n // cfg.blocks : (b + 1) * n // cfg.blocks]
                    seq[name][kind].add(
                        http.run_block(part, 1, checks[name] if kind == "events" else None)
                    )
        seconds = time.perf_counter() - started
    finally:
        for _srv, http in targets.values():
            http.close()
    out = {}
    for name in targets:
        ev, he, pr = (samples[name][k].summary() for k in ("events", "health", "providers"))
        ratio = ev["rps"] / he["rps"] if he["rps"] else 0.0
        out[name] = {
            "events": ev,
            "health": he,
            "providers": pr,
            "rps_ratio": round(ratio, 3),
            "providers_rps_ratio": round(pr["rps"] / he["rps"], 3) if he["rps"] else 0.0,
            "events_sequential": seq[name]["events"].summary(),
            "health_sequential": seq[name]["health"].summary(),
            "errors": [e for r in samples[name].values() for e in r.error_examples],
            "goal_p50": ev["p50_ms"] < GOAL_P50_MS,
            "goal_rps_ratio": ratio >= GOAL_RPS_RATIO,
            "measured_with": list(targets),
            "client": clients[0] if "@" not in name else name.split("@", 1)[1],
            "measure_seconds": round(seconds, 1),
            "loadavg_before": round(load_before, 2),
        }
    return out


def http_bench_checked(
    servers: dict[str, Server],
    key: str,
    ds: gen.Dataset,
    cfg: Config,
    backend: backends.Backend,
    clients: list[str],
) -> dict[str, dict[str, Any]]:
    """``http_bench``, measured again (once) if the database restarted during it or requests
    failed: a restart makes failed requests and resets the backends' CPU counters."""
    for attempt in range(2):
        started = backend.server_started()
        result = http_bench(servers, key, ds, cfg, backend, clients)
        restarted = backend.server_started() != started
        failed = any(r["events"]["errors"] or r["health"]["errors"] for r in result.values())
        if not (restarted or failed) or attempt == 1:
            for r in result.values():
                r["database_restarted"] = restarted
                r["measured_again"] = attempt == 1
            return result
        say(f"    {'database restarted' if restarted else 'requests failed'}: measuring again")
    raise AssertionError("unreachable")


def _store(
    srv: Server, key: str, world: live.DavWorld, cfg: Config, live_result: dict[str, Any]
) -> dict[str, Any]:
    with httpx.Client(base_url=srv.base_url, headers={"Authorization": key}, timeout=120) as c:
        store = live.measure_store(c, world, cfg.store_repeats)
    best_live = min(live_result["live_full_ms"], live_result["live_time_range_ms"])
    store["speedup_vs_live_full"] = round(live_result["live_full_ms"] / store["store_ms"], 1)
    store["speedup_vs_live_time_range"] = round(
        live_result["live_time_range_ms"] / store["store_ms"], 1
    )
    store["goal_speedup"] = best_live / store["store_ms"] >= GOAL_STORE_SPEEDUP
    return store


def _say_http(results: dict[str, Any], names: list[str]) -> None:
    for v in names:
        r = results[v]
        say(
            f"    {v}: events {r['events']}\n      health {r['health']}\n"
            f"      providers {r['providers']}\n      ratio {r['rps_ratio']}"
        )


def baseline_src(rev: str) -> Path:
    """The ``src`` tree of revision ``rev`` (``git archive``), in a temporary directory, with
    the working tree's migrations: both servers read one database, which the shipped code
    has migrated (an older revision would refuse a schema it does not know). A migration
    that changes how fast the page reads (an index) is measured on its own, before and after
    on the same data; this compares code on one schema."""
    import subprocess
    import tarfile
    import tempfile

    target = Path(tempfile.mkdtemp(prefix="calsync-bench-baseline-"))
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, "src"],
        check=True,
        capture_output=True,
    ).stdout
    import io

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    migrations = target / "src" / "calsync" / "migrations"
    shutil.rmtree(migrations)
    shutil.copytree(REPO / "src" / "calsync" / "migrations", migrations)
    return target / "src"


def run_backend(
    backend: backends.Backend,
    cfg: Config,
    world: live.DavWorld,
    live_result: dict[str, Any],
    baseline: Path | None,
    processes: list[int],
    clients: list[str],
) -> dict[str, Any]:
    out: dict[str, Any] = {"url": backend.url.split("?")[0]}
    started_all = time.perf_counter()
    providers = providers_file(backend.workdir / "providers.toml", world.server.base_url)
    backend.workdir.mkdir(parents=True, exist_ok=True)
    rt = backend.open(providers)
    ds = gen.plan(cfg.connections, FAKE_PROVIDER_ID)
    say(f"  generating {cfg.connections} connections x {cfg.per_connection} instances ...")
    if backend.name == "sqlite":
        assert backend.sqlite_path is not None
        gen.load_sqlite(str(backend.sqlite_path), ds, cfg.per_connection)
    else:
        assert backend.schema is not None
        gen.load_postgres(backends.POSTGRES_URL, backend.schema, ds, cfg.per_connection)
    gen.backfill_bound(backend.url)
    out["generation"] = {
        "instances": ds.instances,
        "seconds": round(ds.seconds, 1),
        **{k: round(v, 1) for k, v in (ds.detail or {}).items()},
    }
    say(f"  {ds.instances:,} instances in {ds.seconds:.1f} s {ds.detail}")
    key = backend.new_key(gen.TENANT)
    out["page_query"] = plans.page_query_plans(rt, ds, cfg.plan_queries)
    say(f"  page query: {out['page_query']}")

    env = backend.env(providers)
    servers: dict[str, Server] = {}
    try:
        servers["shipped"] = Server(env, backend.workdir / "server-shipped.log")
        for n in processes[1:]:
            log = backend.workdir / f"server-shipped-{n}p.log"
            servers[f"shipped-{n}p"] = Server(env, log, processes=n)
        if baseline is not None:
            servers["baseline"] = Server(env, backend.workdir / "server-baseline.log", baseline)
            for n in processes[1:]:  # needs a baseline that has serve --processes
                log = backend.workdir / f"server-baseline-{n}p.log"
                servers[f"baseline-{n}p"] = Server(env, log, baseline, processes=n)
        with httpx.Client(
            base_url=servers["shipped"].base_url, headers={"Authorization": key}, timeout=120
        ) as c:
            sync_s = live.connect_accounts(c, world)
        gen.backfill_bound(backend.url)
        say(f"  {len(world.accounts)} Radicale accounts connected and synced in {sync_s:.1f} s")
        say(f"  HTTP, {', '.join(servers)} (interleaved) ...")
        out["http"] = http_bench_checked(servers, key, ds, cfg, backend, clients)
        _say_http(out["http"], list(out["http"]))
        out["store_vs_live"] = {}
        for name, srv in servers.items():
            out["store_vs_live"][name] = _store(srv, key, world, cfg, live_result)
            say(f"    store vs live, {name}: {out['store_vs_live'][name]}")
    finally:
        for srv in servers.values():
            srv.stop()
    out["seconds"] = round(time.perf_counter() - started_all, 1)
    return out


def _print_http(b: dict[str, Any], concurrency: int) -> None:
    """Benchmark 1's rows of one database."""
    say(
        f"  1. List Events over HTTP, {concurrency} concurrent keep-alive "
        "requests, vs GET /v1/health of the same server (interleaved)"
    )
    say(
        f"  {'code':18s} {'p50 ms':>7s} {'p99 ms':>7s} {'req/s':>7s} | {'health p50':>10s} "
        f"{'p99':>6s} {'req/s':>7s} | {'ratio':>6s} | {'c=1 p50':>7s} | "
        f"{'CPU ms/req ev/hl':>17s} | {'client':>6s} | p50<10 / >=40%"
    )
    for variant, h in b["http"].items():
        e, hh = h["events"], h["health"]
        cpu = (
            f"{e['server_cpu_ms_per_req'] + e['db_cpu_ms_per_req']:.2f} / "
            f"{hh['server_cpu_ms_per_req'] + hh['db_cpu_ms_per_req']:.2f}"
        )
        say(
            f"  {variant:18s} {e['p50_ms']:7.2f} {e['p99_ms']:7.2f} {e['rps']:7.1f} | "
            f"{hh['p50_ms']:10.2f} "
            f"{hh['p99_ms']:6.2f} {hh['rps']:7.1f} | {h['rps_ratio']:6.1%} | "
            f"{h['events_sequential']['p50_ms']:7.2f} | {cpu:>17s} | "
            f"{e.get('client_cpu_ms_per_req', 0):6.2f} | "
            f"{'PASS' if h['goal_p50'] else 'fail'} / "
            f"{'PASS' if h['goal_rps_ratio'] else 'fail'}"
            + (f"  errors={e['errors']}" if e["errors"] else "")
        )


def print_table(results: dict[str, Any]) -> None:
    live_r = results["live"]
    say("")
    say("=" * 118)
    machine = results["machine"]
    say(
        f"calsync benchmarks  ({results['config_name']}; {machine['cpus']} CPUs; "
        f"{results['finished_at']}; baseline {results.get('baseline')})"
    )
    say("=" * 118)
    for name, b in results["backends"].items():
        if "skipped" in b:
            say(f"\n[{name}] SKIPPED: {b['skipped']}")
            continue
        g = b["generation"]
        say(f"\n[{name}] {g['instances']:,} instances; generated in {g['seconds']} s")
        _print_http(b, results["config"]["concurrency"])
        say(
            "  auth floor (GET .../providers) as a share of health's req/s: "
            + ", ".join(f"{v} {h['providers_rps_ratio']:.0%}" for v, h in b["http"].items())
        )
        for row in b.get("page_query", []):
            say(f"  page query SQL ({row['window']}): {row['sql_median_ms']} ms; {row['plan']}")
        say(
            f"  2. store vs live ({live_r['calendars']} calendars x "
            f"{live_r['events_per_calendar']} events; one week):"
        )
        for variant, st in b["store_vs_live"].items():
            say(
                f"    {variant:8s} store {st['store_ms']:.2f} ms "
                f"vs live {live_r['live_full_ms']:.1f} ms "
                f"(time-range REPORT {live_r['live_time_range_ms']:.1f} ms): "
                f"{st['speedup_vs_live_full']}x / {st['speedup_vs_live_time_range']}x  "
                f"[{'PASS' if st['goal_speedup'] else 'fail'} >=50x]"
            )
        for inc in (b.get("incremental"), b.get("incremental_xandikos")):
            if not inc or "failed" in inc:
                continue
            say(
                f"  3. {inc.get('dav_server', 'radicale')}: sync of {inc['events']} events "
                f"({inc['instances']} instances): import "
                f"{inc['import_ms']} ms = {inc['import_events_per_s']} events/s; incremental "
                f"({inc['changed_per_round']} changed) {inc['incremental_ms']} ms vs full "
                f"{inc['full_ms']} ms: {inc['ratio_wall']}x wall, {inc['ratio_cpu']}x CPU "
                f"[{'PASS' if inc['goal_ratio'] else 'fail'} >=20x]"
            )
        so = b.get("scale_out")
        if so:
            for k, r in so.items():
                if k.startswith("workers_"):
                    say(
                        f"  4. {r['workers']} workers: {r['synced']}/{so['connections']} synced in "
                        f"{r['seconds']} s = {r['connections_per_s']} connections/s; "
                        f"overlapping reads {r['overlapping_reads']}, accounts read twice "
                        f"{r['accounts_read_more_than_once']}, processes "
                        f"{r['processes_that_synced']}"
                    )
    say(
        f"\nRadicale seeded in {live_r['seed_seconds']} s. "
        f"Total bench time {results['seconds']} s; "
        f"load average {machine['loadavg_start']} at start, {machine['loadavg_end']} at end."
    )


def run_sync_benches(name: str, out: dict[str, Any], cfg: Config) -> None:
    """Benchmarks 3 (both databases) and 4 (PostgreSQL), each on a fresh database."""
    events, connections = (2000, 500) if cfg is FULL else (400, 60)
    steps: list[tuple[str, Any]] = [
        ("incremental", lambda b: syncbench.incremental(b, events)),
        ("incremental_xandikos", lambda b: syncbench.incremental(b, events, dav="xandikos")),
    ]
    if name == "postgres":
        steps.append(("scale_out", lambda b: syncbench.scale_out(b, connections)))
    for key, step in steps:
        backend = backends.postgres_backend() if name == "postgres" else backends.sqlite_backend()
        try:
            say(f"  {key} ...")
            out[key] = step(backend)
            say(f"    {out[key]}")
        except Exception as exc:  # the other numbers still count
            out[key] = {"failed": f"{type(exc).__name__}: {str(exc)[:300]}"}
            say(f"    failed: {out[key]['failed']}")
        finally:
            backend.close()


def _results_header(args: argparse.Namespace, cfg: Config, baseline: Path | None) -> dict[str, Any]:
    """What the run is: its configuration, the machine, the goals, the command."""
    return {
        "config_name": "quick" if args.quick else "full",
        "config": asdict(cfg),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_start": round(os.getloadavg()[0], 2),
        },
        "goals": {
            "p50_ms": GOAL_P50_MS,
            "rps_ratio": GOAL_RPS_RATIO,
            "store_speedup": GOAL_STORE_SPEEDUP,
        },
        "backends": {},
        "baseline": None if baseline is None else args.baseline,
        "command": " ".join(["python", "bench/run.py", *sys.argv[1:]]),
    }


def _attempts(
    name: str,
    args: argparse.Namespace,
    cfg: Config,
    world: live.DavWorld,
    live_result: dict[str, Any],
    baseline: Path | None,
    extra_processes: list[int],
    clients: list[str],
) -> dict[str, Any]:
    """One database's benchmarks 1 and 2."""
    result: dict[str, Any] = {}
    # A second attempt on a fresh database if the first one fails (on a shared machine
    # other test suites restart PostgreSQL now and then); the failure is recorded.
    failures: list[str] = []
    for _attempt in range(2):
        backend = None
        try:
            backend = (
                backends.postgres_backend() if name == "postgres" else backends.sqlite_backend()
            )
            result = (
                {}
                if args.sync_only
                else run_backend(
                    backend, cfg, world, live_result, baseline, extra_processes, clients
                )
            )
            break
        except Exception as exc:  # keep going: the other database's numbers still count
            import traceback

            traceback.print_exc()
            failures.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            say(f"  attempt failed: {failures[-1]}")
            result = {"skipped": "failed: " + " | ".join(failures)}
        finally:
            if backend is not None:
                backend.close()
            world.schedule_ids = []
    if failures and "skipped" not in result:
        result["retried_after"] = failures
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: few rows, few requests")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="one database only")
    parser.add_argument(
        "--out", type=Path, help="default: bench/results.json (--quick: bench/results-quick.json)"
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE,
        help=f"revision measured beside the working tree (default {BASELINE}; 'none': skip)",
    )
    parser.add_argument(
        "--skip-sync", action="store_true", help="skip benchmarks 3 and 4 (sync engine)"
    )
    parser.add_argument(
        "--sync-only", action="store_true", help="only benchmarks 3 and 4 (sync engine)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        action="append",
        default=[],
        help="also measure the working tree (and the baseline, which must have the option) "
        "served by N processes (serve --processes N); repeatable",
    )
    parser.add_argument(
        "--client",
        choices=["lean", "httpx", "both"],
        default="lean",
        help="load client of benchmark 1: lean (asyncio, raw HTTP/1.1; default), httpx (the "
        "threaded client of the first rounds), or both side by side",
    )
    args = parser.parse_args()
    clients = ["lean", "httpx"] if args.client == "both" else [args.client]
    extra_processes = [1, *sorted(set(args.processes) - {1})]
    baseline = None if args.baseline == "none" or args.sync_only else baseline_src(args.baseline)
    cfg = QUICK if args.quick else FULL
    out_path = args.out or BENCH / ("results-quick.json" if args.quick else "results.json")
    started = time.perf_counter()
    results = _results_header(args, cfg, baseline)
    if os.getloadavg()[0] > 0.7:
        say(f"warning: load average {os.getloadavg()[0]:.2f} before the run; numbers will be noisy")
    say(f"starting Radicale with {cfg.calendars} calendars x {cfg.events_per_calendar} events ...")
    world = live.start_world(cfg.calendars, cfg.events_per_calendar)
    try:
        live_result = live.measure_live(world, cfg.live_repeats)
        live_result.update(
            calendars=cfg.calendars,
            events_per_calendar=cfg.events_per_calendar,
            seed_seconds=round(world.seed_seconds, 1),
            week_start=world.week_start.isoformat(),
        )
        results["live"] = live_result
        say(f"  live path: {live_result}")
        names = [args.only] if args.only else ["postgres", "sqlite"]
        for name in names:
            say(f"\n== {name}")
            if name == "postgres":
                problem = backends.postgres_problem()
                if problem:
                    message = f"PostgreSQL at {backends.POSTGRES_URL} is unreachable: {problem}"
                    say(f"  SKIPPED: {message}")
                    results["backends"][name] = {"skipped": message}
                    continue
            results["backends"][name] = _attempts(
                name, args, cfg, world, live_result, baseline, extra_processes, clients
            )
            if not args.skip_sync and "skipped" not in results["backends"][name]:
                run_sync_benches(name, results["backends"][name], cfg)
    finally:
        world.stop()
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)
    for b in results["backends"].values():
        for row in b.get("page_query", []):
            row.pop("plan_full", None) if len(json.dumps(row)) > 4000 else None
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    say(f"\nwrote {out_path}")
    return 0


if __name__ == "__main__":
    random.seed(0)
    sys.exit(main())
