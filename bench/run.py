"""calsync List Events benchmark: ``python bench/run.py [--quick]`` (or ``make bench``).

On SQLite and on PostgreSQL (a fresh schema, dropped at the end; skipped with a message when
unreachable) it measures, side by side in one run:

1. List Events over HTTP against a real ``calsync serve --no-worker`` subprocess on 127.0.0.1
   with 1,000 SYNCED connections on 1,000 schedules and 1,000,000 stored instances: one-week
   window, ``cursorPaging.limit=100``, 10 random schedule ids per request; p50/p99 and
   requests/s next to ``GET /v1/health`` of the same server (same client, same concurrency,
   interleaved blocks). Done for the shipped code and for the variants of ``variants.py``.
2. List Events from the store vs reading the same calendars live from a local Radicale and
   expanding them (``live.py``).

It also EXPLAINs the page query under candidate indexes (``plans.py``) and breaks one List
Events call into stages in-process. Prints a table and writes ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
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
import variants  # noqa: E402
from server import Server  # noqa: E402

FAKE_PROVIDER_ID = "0f6c7f0e-1111-4222-8333-444455556666"
GOAL_P50_MS = 10.0
GOAL_RPS_RATIO = 0.40
GOAL_STORE_SPEEDUP = 50.0


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
    stage_queries: int
    calendars: int
    events_per_calendar: int
    live_repeats: int
    store_repeats: int
    verify_queries: int


FULL = Config(1000, 1000, 2000, 200, 4, 4, 200, 40, 120, 10, 200, 7, 40, 100)
QUICK = Config(100, 100, 200, 40, 4, 2, 40, 8, 40, 3, 40, 2, 10, 30)


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

    def check(response: httpx.Response) -> str | None:
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


def http_bench(
    servers: dict[str, Server], key: str, ds: gen.Dataset, cfg: Config, backend: backends.Backend
) -> dict[str, dict[str, Any]]:
    """Every server gets the same requests. Blocks are interleaved across servers and series
    (server A: events, health, providers; server B: ...; next block) so that drift in the
    machine's load hits all alike; only one server is busy at a time."""
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
    clients = {
        name: load.client(srv.base_url, cfg.concurrency, {"Authorization": key})
        for name, srv in servers.items()
    }
    samples = {name: {k: load.Samples() for k in series} for name in servers}
    seq = {name: {k: load.Samples() for k in sequential} for name in servers}
    checks = {name: _events_check() for name in servers}
    try:
        for name, http in clients.items():
            first = http.get(urls[0])
            if first.status_code != 200:
                raise RuntimeError(f"List Events -> {first.status_code}: {first.text[:300]}")
            load.run_block(http, urls[: cfg.warmup], cfg.concurrency, checks[name])
            load.run_block(http, series["health"][: cfg.warmup], cfg.concurrency)
            load.run_block(http, series["providers"][: cfg.warmup], cfg.concurrency)
        started = time.perf_counter()
        for b in range(cfg.blocks):
            for name, http in clients.items():
                srv = servers[name]
                for kind, all_urls in series.items():
                    n = len(all_urls)
                    part = all_urls[b * n // cfg.blocks : (b + 1) * n // cfg.blocks]
                    cpu0 = (srv.cpu_seconds(), backend.db_cpu_seconds())
                    got = load.run_block(
                        http, part, cfg.concurrency, checks[name] if kind == "events" else None
                    )
                    got.server_cpu_s = srv.cpu_seconds() - cpu0[0]
                    got.db_cpu_s = max(0.0, backend.db_cpu_seconds() - cpu0[1])
                    samples[name][kind].add(got)
                for kind, all_urls in sequential.items():
                    n = len(all_urls)
                    part = all_urls[b * n // cfg.blocks : (b + 1) * n // cfg.blocks]
                    seq[name][kind].add(
                        load.run_block(http, part, 1, checks[name] if kind == "events" else None)
                    )
        seconds = time.perf_counter() - started
    finally:
        for http in clients.values():
            http.close()
    out = {}
    for name in servers:
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
            "measured_with": list(servers),
            "measure_seconds": round(seconds, 1),
            "loadavg_before": round(load_before, 2),
        }
    return out


def http_bench_checked(
    servers: dict[str, Server], key: str, ds: gen.Dataset, cfg: Config, backend: backends.Backend
) -> dict[str, dict[str, Any]]:
    """``http_bench``, measured again (once) if the database restarted during it or requests
    failed: a restart makes failed requests and resets the backends' CPU counters."""
    for attempt in range(2):
        started = backend.server_started()
        result = http_bench(servers, key, ds, cfg, backend)
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


def run_backend(
    backend: backends.Backend, cfg: Config, world: live.DavWorld, live_result: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {"url": backend.url.split("?")[0]}
    started_all = time.perf_counter()
    providers = providers_file(backend.workdir / "providers.toml", world.server.base_url)
    backend.workdir.mkdir(parents=True, exist_ok=True)
    rt = backend.open(providers)
    shipped = variants.event_indexes(rt.engine)  # what the migrations create today
    out["shipped_indexes"] = shipped
    ds = gen.plan(cfg.connections, FAKE_PROVIDER_ID)
    say(f"  generating {cfg.connections} connections x {cfg.per_connection} instances ...")
    if backend.name == "sqlite":
        assert backend.sqlite_path is not None
        gen.load_sqlite(str(backend.sqlite_path), ds, cfg.per_connection)
    else:
        assert backend.schema is not None
        gen.load_postgres(backends.POSTGRES_URL, backend.schema, ds, cfg.per_connection)
    variants.add_bound_column(rt.engine)
    out["generation"] = {
        "instances": ds.instances,
        "seconds": round(ds.seconds, 1),
        **{k: round(v, 1) for k, v in (ds.detail or {}).items()},
    }
    say(f"  {ds.instances:,} instances in {ds.seconds:.1f} s {ds.detail}")
    key = backend.new_key(gen.TENANT)
    stage_queries = plans.week_queries(ds, cfg.stage_queries, "near", seed=29)

    out["stages"] = {"shipped": plans.stage_breakdown(rt, key, stage_queries, "shipped")}
    say(f"  in-process stages, shipped: {out['stages']['shipped']}")
    out["cost_model"] = {"shipped": plans.cost_model(rt, key, stage_queries, "shipped")}
    say(f"  cost model, shipped: {out['cost_model']['shipped']}")

    out["http"], out["store_vs_live"] = {}, {}
    env = backend.env(providers)

    # Phase 1, shipped schema: the shipped server alone.
    variants.apply_schema(rt.engine, "shipped", shipped)
    with Server(env, backend.workdir / "server-shipped.log") as srv:
        with httpx.Client(base_url=srv.base_url, headers={"Authorization": key}, timeout=120) as c:
            sync_s = live.connect_accounts(c, world)
        variants.backfill_bound(rt.engine)  # what sync would maintain (proposal)
        n = len(world.accounts)
        say(f"  {n} Radicale accounts connected and synced by calsync in {sync_s:.1f} s")
        say("  HTTP, shipped ...")
        out["http"].update(http_bench_checked({"shipped": srv}, key, ds, cfg, backend))
        _say_http(out["http"], ["shipped"])
        out["store_vs_live"]["shipped"] = _store(srv, key, world, cfg, live_result)
        say(f"    store vs live: {out['store_vs_live']['shipped']}")

    # Phase 2, in-process: query plans under candidate indexes (ends in the "index" schema),
    # the variants' answers against the shipped code's, one call's stages.
    say(
        "  page query plans (SQL re-run on the raw connection, median of "
        f"{cfg.plan_queries} queries per cell):"
    )
    out["page_query"] = plans.page_query_plans(rt, ds, shipped, cfg.plan_queries, say)
    out["connections_query"] = plans.connections_query_plans(rt, ds)
    say(f"  connections query: {out['connections_query']}")
    out["verify"] = plans.verify_variants(rt, ds, key, cfg.verify_queries)
    say(f"  variants answer like the shipped code: {out['verify']}")
    for v in ("index", "lean", "fast"):
        out["stages"][v] = plans.stage_breakdown(rt, key, stage_queries, v)
        say(f"  in-process stages, {v}: {out['stages'][v]}")
        out["cost_model"][v] = plans.cost_model(rt, key, stage_queries, v)
        say(f"  cost model, {v}: {out['cost_model'][v]}")

    # Phase 3, "index" schema: one server per variant, measured interleaved.
    variants.apply_schema(rt.engine, "index", shipped)
    names = [v for v in variants.VARIANTS if v != "shipped"]
    servers: dict[str, Server] = {}
    try:
        for v in names:
            log_path = backend.workdir / f"server-{v.replace('+', '-')}.log"
            servers[v] = Server(env, log_path, variant=None if v == "index" else v)
        say(f"  HTTP, {', '.join(names)} (interleaved) ...")
        out["http"].update(http_bench_checked(servers, key, ds, cfg, backend))
        _say_http(out["http"], names)
        for v in ("lean", "fast"):
            out["store_vs_live"][v] = _store(servers[v], key, world, cfg, live_result)
            say(f"    store vs live, {v}: {out['store_vs_live'][v]}")
    finally:
        for srv in servers.values():
            srv.stop()
    out["seconds"] = round(time.perf_counter() - started_all, 1)
    return out


def print_table(results: dict[str, Any]) -> None:
    live_r = results["live"]
    say("")
    say("=" * 118)
    machine = results["machine"]
    say(
        f"calsync List Events benchmark  ({results['config_name']}; {machine['cpus']} CPUs; "
        f"{results['finished_at']})"
    )
    say("=" * 118)
    for name, b in results["backends"].items():
        if "skipped" in b:
            say(f"\n[{name}] SKIPPED: {b['skipped']}")
            continue
        g = b["generation"]
        say(
            f"\n[{name}] {g['instances']:,} instances; generated in {g['seconds']} s "
            f"(rows {g.get('rows_s')} s, indexes {g.get('indexes_s')} s; "
            "not part of any measurement)"
        )
        say(
            f"  1. List Events over HTTP, {results['config']['concurrency']} concurrent keep-alive "
            "requests, vs GET /v1/health of the same server (interleaved)"
        )
        say(
            f"  {'variant':12s} {'p50 ms':>7s} {'p99 ms':>7s} {'req/s':>7s} | {'health p50':>10s} "
            f"{'p99':>6s} {'req/s':>7s} | {'ratio':>6s} | {'c=1 p50':>7s} | "
            f"{'CPU ms/req ev/hl':>17s} | p50<10 / >=40%"
        )
        for variant, h in b["http"].items():
            e, hh = h["events"], h["health"]
            cpu = (
                f"{e['server_cpu_ms_per_req'] + e['db_cpu_ms_per_req']:.2f} / "
                f"{hh['server_cpu_ms_per_req'] + hh['db_cpu_ms_per_req']:.2f}"
            )
            say(
                f"  {variant:12s} {e['p50_ms']:7.2f} {e['p99_ms']:7.2f} {e['rps']:7.1f} | "
                f"{hh['p50_ms']:10.2f} "
                f"{hh['p99_ms']:6.2f} {hh['rps']:7.1f} | {h['rps_ratio']:6.1%} | "
                f"{h['events_sequential']['p50_ms']:7.2f} | {cpu:>17s} | "
                f"{'PASS' if h['goal_p50'] else 'fail'} / "
                f"{'PASS' if h['goal_rps_ratio'] else 'fail'}"
                + (f"  errors={e['errors']}" if e["errors"] else "")
            )
        say(
            "  auth floor (GET .../providers: API-key lookup, no other work) "
            "as a share of health's req/s: "
            + ", ".join(f"{v} {h['providers_rps_ratio']:.0%}" for v, h in b["http"].items())
        )
        say("  in-process, one call (median ms):")
        for variant, st in b["stages"].items():
            parts = ", ".join(f"{k} {v}" for k, v in st.items() if v is not None)
            say(f"    {variant:8s} {parts}")
        say(
            "  in-process CPU per call = fixed + per returned event (fit at page sizes 1 and 100): "
            + "; ".join(
                f"{v} {m['fixed_ms']} ms + {m['per_event_us']} us/event"
                for v, m in b.get("cost_model", {}).items()
            )
        )
        say(f"  variants vs shipped answers: {b.get('verify')}")
        say(
            "  page query, SQL only (median ms; near = a week starting within 4 weeks, "
            "far = ~300 days ahead):"
        )
        cells: dict[str, dict[str, float]] = {}
        for row in b["page_query"]:
            cells.setdefault(row["layout"], {})[f"{row['query']}/{row['window']}"] = row[
                "sql_median_ms"
            ]
        cols = ["shipped/near", "shipped/far", "bound/near", "bound/far"]
        say(f"    {'index layout':50s} " + " ".join(f"{c:>13s}" for c in cols))
        for layout, vals in cells.items():
            say(f"    {layout:50s} " + " ".join(f"{vals.get(c, float('nan')):13.2f}" for c in cols))
        say(f"  connections query: {b.get('connections_query')}")
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
                f"[{'PASS' if st['goal_speedup'] else 'fail'} >=50x]  week instances: store "
                f"{st['store_instances']}, live {live_r['live_full_instances']}"
            )
    say(
        f"\nRadicale seeded in {live_r['seed_seconds']} s. "
        f"Total bench time {results['seconds']} s; "
        f"load average {machine['loadavg_start']} at start, {machine['loadavg_end']} at end."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: few rows, few requests")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="one database only")
    parser.add_argument(
        "--out", type=Path, help="default: bench/results.json (--quick: bench/results-quick.json)"
    )
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    out_path = args.out or BENCH / ("results-quick.json" if args.quick else "results.json")
    started = time.perf_counter()
    results: dict[str, Any] = {
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
    }
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
            # A second attempt on a fresh database if the first one fails (on a shared machine
            # other test suites restart PostgreSQL now and then); the failure is recorded.
            failures: list[str] = []
            for _attempt in range(2):
                backend = None
                try:
                    backend = (
                        backends.postgres_backend()
                        if name == "postgres"
                        else backends.sqlite_backend()
                    )
                    results["backends"][name] = run_backend(backend, cfg, world, live_result)
                    break
                except Exception as exc:  # keep going: the other database's numbers still count
                    import traceback

                    traceback.print_exc()
                    failures.append(f"{type(exc).__name__}: {str(exc)[:300]}")
                    say(f"  attempt failed: {failures[-1]}")
                    results["backends"][name] = {"skipped": "failed: " + " | ".join(failures)}
                finally:
                    if backend is not None:
                        backend.close()
                    world.schedule_ids = []
            if failures and "skipped" not in results["backends"][name]:
                results["backends"][name]["retried_after"] = failures
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
