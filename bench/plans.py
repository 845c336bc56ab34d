"""In-process analysis: the List Events page query's plan and SQL time under candidate indexes
and query shapes, and where a List Events call spends its time (auth, connections, page,
render, JSON), for the shipped code and the ``lean`` variant.

SQL is captured from calsync itself (``before_cursor_execute``), then EXPLAINed and re-run on
the raw DBAPI connection, so the plans are those of the statements calsync really sends.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import gen
import variants
from sqlalchemy import Engine, event

from calsync.api import wire
from calsync.service import cursor as cursors
from calsync.service import events
from calsync.service.auth import authenticate
from calsync.service.runtime import Runtime
from calsync.store.db import transaction

DAY_MS = 86_400_000
CONNECTION_START = "ix_event_instances_connection_start"


def layouts(shipped: dict[str, str]) -> dict[str, dict[str, str]]:
    """Index sets tried for the page query, relative to what the migrations create."""
    out = {"as migrated (shipped)": dict(shipped)}
    if CONNECTION_START in shipped:
        out["as migrated - (connection_id, start_ms)"] = {
            k: v for k, v in shipped.items() if k != CONNECTION_START
        }
    else:
        out["as migrated + (connection_id, start_ms)"] = {
            **shipped,
            "ix_bench_conn_start": (
                "CREATE INDEX ix_bench_conn_start ON event_instances (connection_id, start_ms)"
            ),
        }
    out["as migrated + (connection_id, start_ms, end_ms)"] = {
        **shipped,
        variants.NEW_INDEX: variants.NEW_INDEX_DDL,
    }
    out["proposal: (conn, start, end), unused ones dropped"] = variants.recommended_indexes(shipped)
    return out


WINDOWS = {"near": (0, 28), "far": (280, 308)}  # week start: days from today, uniform


def week_queries(
    ds: gen.Dataset, count: int, window: str, seed: int, *, schedules: int = 10
) -> list[cursors.EventQuery]:
    rng = random.Random(seed)
    lo, hi = WINDOWS[window]
    day0 = ds.now.replace(hour=0, minute=0, second=0)
    out = []
    for _ in range(count):
        start = int((day0 + timedelta(days=rng.randrange(lo, hi))).timestamp() * 1000)
        out.append(
            cursors.EventQuery(
                from_ms=start,
                to_ms=start + 7 * DAY_MS,
                schedule_ids=tuple(rng.sample(ds.schedule_ids, schedules)),
                own_pi=True,
            )
        )
    return out


@contextmanager
def capture(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def before(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _page_sql(rt: Runtime, query: cursors.EventQuery, bound: bool) -> tuple[str, Any]:
    """The page statement calsync (shipped, or with the bound) sends for ``query``."""
    with transaction(rt.sessions) as session:
        connection_ids = [c.id for c in events._contributing(session, gen.TENANT, query)]
        with capture(rt.engine) as seen:
            if bound:
                variants.page_with_bound(session, connection_ids, query, 100)
            else:
                events._page(session, connection_ids, query, 100)
    return seen[-1]


def explain(engine: Engine, statement: str, params: Any) -> list[str]:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + statement, params)
            return [str(r[3]) for r in cur.fetchall()]
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, params)
        return [str(r[0]) for r in cur.fetchall()]
    finally:
        raw.close()


def time_raw(engine: Engine, statements: list[tuple[str, Any]]) -> tuple[float, int]:
    """Median ms to execute and fetch each statement once (after one untimed pass)."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        times, rows = [], 0
        for timed in (False, True):
            for statement, params in statements:
                started = time.perf_counter()
                cur.execute(statement, params)
                rows = len(cur.fetchall())
                if timed:
                    times.append((time.perf_counter() - started) * 1000)
        raw.rollback()
        return statistics.median(times), rows
    finally:
        raw.close()


def _plan_summary(lines: list[str], dialect: str) -> str:
    """SQLite: the EXPLAIN QUERY PLAN lines; PostgreSQL: scan nodes, index conditions (cut),
    rows removed and the execution time."""
    if dialect == "sqlite":
        return "; ".join(lines)
    keep = []
    for line in lines:
        s = re.sub(r"\s*\(actual [^)]*\)", "", line.strip().removeprefix("->").strip())
        if "Scan" in s or s.startswith(("BitmapAnd", "BitmapOr", "Sort", "Limit")):
            keep.append(s)
        elif s.startswith(("Index Cond", "Rows Removed", "Execution Time")):
            keep.append(s if len(s) < 90 else s[:87] + "...")
    return " | ".join(keep)


def page_query_plans(
    rt: Runtime,
    ds: gen.Dataset,
    shipped: dict[str, str],
    per_cell: int,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Plan and median SQL time of the page query for each index layout x query shape x
    window. The database is left with the last layout (the proposal)."""
    engine = rt.engine
    dialect = engine.dialect.name
    variants.set_indexes(engine, shipped)
    queries = {w: week_queries(ds, per_cell, w, seed=17) for w in WINDOWS}
    captured = {
        (w, bound): [_page_sql(rt, q, bound) for q in qs]
        for w, qs in queries.items()
        for bound in (False, True)
    }
    rows: list[dict[str, Any]] = []
    for layout, target in layouts(shipped).items():
        started = time.perf_counter()
        variants.set_indexes(engine, target)
        build_s = time.perf_counter() - started
        for (window, bound), statements in captured.items():
            median_ms, n = time_raw(engine, statements)
            plan = explain(engine, *statements[0])
            rows.append(
                {
                    "layout": layout,
                    "indexes": sorted(target),
                    "query": "bound" if bound else "shipped",
                    "window": window,
                    "sql_median_ms": round(median_ms, 3),
                    "rows": n,
                    "index_build_s": round(build_s, 1),
                    "plan": _plan_summary(plan, dialect),
                    "plan_full": plan,
                }
            )
            log(
                f"    {layout:50s} {('bound' if bound else 'shipped'):7s} {window:4s} "
                f"{median_ms:8.2f} ms  {_plan_summary(plan, dialect)[:150]}"
            )
    return rows


def connections_query_plans(rt: Runtime, ds: gen.Dataset) -> dict[str, Any]:
    """The contributing-connections query: shipped (ORDER BY in SQL) vs lean (sorted in Python)."""
    query = week_queries(ds, 1, "near", seed=3)[0]
    out = {}
    for name, fn in (
        ("shipped", events._contributing),
        ("lean", variants.contributing_lean),
    ):
        with transaction(rt.sessions) as session, capture(rt.engine) as seen:
            fn(session, gen.TENANT, query)
        statement, params = seen[-1]
        out[name] = {
            "plan": _plan_summary(explain(rt.engine, statement, params), rt.engine.dialect.name),
            "sql_median_ms": round(time_raw(rt.engine, [(statement, params)] * 20)[0], 3),
        }
    return out


def stage_breakdown(
    rt: Runtime, key: str, queries: list[cursors.EventQuery], variant: str
) -> dict[str, float | None]:
    """Median ms of one List Events call in this process (no HTTP): the key lookup, the
    service call, building and encoding the JSON body, their sum (wall) and the CPU time of
    this thread for it (``total_cpu``: on SQLite that includes the database work, on
    PostgreSQL not); and, for the variants that keep the shipped structure, the service
    call's parts (connections query, page query, render)."""
    undo = variants.install(variant)
    from calsync.api import calls  # the patched names

    try:
        with rt.sessions() as session:
            identity = authenticate(session, key, None)
        stages: dict[str, list[float]] = {
            k: [] for k in ("auth", "list_events", "json", "total", "total_cpu")
        }
        for index, query in enumerate(queries):
            c0 = time.thread_time()
            t0 = time.perf_counter()
            with rt.sessions() as session:
                calls.authenticate(session, key, None)
            t1 = time.perf_counter()
            page = events.list_events(rt, identity=identity, query=query, limit=100)
            t2 = time.perf_counter()
            body = wire.events_page(page)
            json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            t3 = time.perf_counter()
            c3 = time.thread_time()
            if index >= 20:  # warm-up
                for name, a, b in (
                    ("auth", t0, t1),
                    ("list_events", t1, t2),
                    ("json", t2, t3),
                    ("total", t0, t3),
                    ("total_cpu", c0, c3),
                ):
                    stages[name].append((b - a) * 1000)
        parts: dict[str, list[float]] = {"connections": [], "page": [], "render": []}
        if variant != "fast":
            for index, query in enumerate(queries):
                t0 = time.perf_counter()
                with transaction(rt.sessions) as session:
                    connections = events._contributing(session, gen.TENANT, query)
                t1 = time.perf_counter()
                with transaction(rt.sessions) as session:
                    rows = events._page(session, [c.id for c in connections], query, 100)
                    t2 = time.perf_counter()
                    events._render(rt, session, identity, connections, rows[:100], True)
                t3 = time.perf_counter()
                if index >= 20:
                    for name, a, b in (
                        ("connections", t0, t1),
                        ("page", t1, t2),
                        ("render", t2, t3),
                    ):
                        parts[name].append((b - a) * 1000)
        out: dict[str, float | None] = {
            k: round(statistics.median(v), 3) for k, v in stages.items()
        }
        out.update({k: round(statistics.median(v), 3) if v else None for k, v in parts.items()})
        return out
    finally:
        undo()


def verify_variants(rt: Runtime, ds: gen.Dataset, key: str, count: int) -> dict[str, str]:
    """Every patched variant must answer exactly like the shipped code: ``count`` random
    queries (1, 10 or 50 schedules; a day, a week or a month anywhere in the horizon; with and
    without OWN_PI and allDay; page sizes 5 and 100, following up to 3 cursors), plus two
    stale connections (their sync fails: failedProviderIds, partialFailure) in some."""
    from sqlalchemy import update

    from calsync.errors import ProviderUnavailable
    from calsync.store.models import Connection

    rng = random.Random(41)
    day0 = ds.now.replace(hour=0, minute=0, second=0)
    stale = ds.schedule_ids[:2]
    queries = []
    for n in range(count):
        start = int(
            (day0 + timedelta(days=rng.randrange(-100, 400), hours=rng.randrange(24))).timestamp()
            * 1000
        )
        schedules = rng.sample(ds.schedule_ids, rng.choice((1, 10, 50)))
        if n % 10 == 0:
            schedules = [*schedules[:8], *stale]
        queries.append(
            (
                cursors.EventQuery(
                    from_ms=start,
                    to_ms=start + rng.choice((1, 7, 30)) * DAY_MS,
                    schedule_ids=tuple(schedules),
                    own_pi=rng.random() < 0.5,
                    all_day=rng.choice((None, None, True, False)),
                    partial_failure=n % 20 == 0,
                ),
                rng.choice((5, 100)),
            )
        )
    with rt.sessions() as session:
        identity = authenticate(session, key, None)
    with transaction(rt.sessions) as session:
        saved = {
            c.id: (c.status, c.error_reason, c.failure_count, c.last_synced_at, c.sync_requested_at)
            for c in session.query(Connection).filter(Connection.schedule_id.in_(stale))
        }
        session.execute(
            update(Connection)
            .where(Connection.schedule_id.in_(stale))
            .values(sync_requested_at=ds.now + timedelta(days=1))
        )

    def answers() -> list[Any]:
        out: list[Any] = []
        for query, limit in queries:
            try:
                page = events.list_events(rt, identity=identity, query=query, limit=limit)
            except ProviderUnavailable as exc:
                out.append(("unavailable", exc.data))
                continue
            pages = []
            for _ in range(4):
                body = wire.events_page(page)
                body["pagingMetadata"].pop("cursors")
                pages.append(body)
                if not page.next_cursor:
                    break
                follow = cursors.decode(rt.cursor_key, gen.TENANT, page.next_cursor)
                page = events.list_events(rt, identity=identity, query=follow, limit=100)
            out.append(pages)
        return out

    try:
        expected = answers()
        result = {}
        for variant in variants.VARIANTS:
            if variant in ("shipped", "index"):
                continue
            undo = variants.install(variant)
            try:
                got = answers()
            finally:
                undo()
            differ = sum(1 for a, b in zip(expected, got, strict=True) if a != b)
            result[variant] = (
                f"identical on {len(queries)} queries" if not differ else f"{differ} DIFFER"
            )
        return result
    finally:
        with transaction(rt.sessions) as session:
            for cid, (status, reason, failures, synced, requested) in saved.items():
                session.execute(
                    update(Connection)
                    .where(Connection.id == cid)
                    .values(
                        status=status,
                        error_reason=reason,
                        failure_count=failures,
                        last_synced_at=synced,
                        sync_requested_at=requested,
                    )
                )


def cost_model(
    rt: Runtime, key: str, queries: list[cursors.EventQuery], variant: str
) -> dict[str, float | None]:
    """Thread CPU of one call (key lookup + List Events + JSON) at page sizes 1 and 100 on the
    same queries: ``fixed_ms`` (per call) and ``per_event_us`` (per returned event) by a
    two-point fit (None when the pages differ by fewer than 30 events, as in --quick). On
    PostgreSQL the database's own CPU is not included."""
    undo = variants.install(variant)
    from calsync.api import calls

    try:
        with rt.sessions() as session:
            identity = authenticate(session, key, None)
        medians = {}
        for limit in (1, 100):
            cpu, sizes = [], []
            for index, query in enumerate(queries):
                c0 = time.thread_time()
                with rt.sessions() as session:
                    calls.authenticate(session, key, None)
                page = events.list_events(rt, identity=identity, query=query, limit=limit)
                json.dumps(wire.events_page(page), ensure_ascii=False, separators=(",", ":"))
                if index >= 20:
                    cpu.append((time.thread_time() - c0) * 1000)
                    sizes.append(len(page.events))
            medians[limit] = (statistics.median(cpu), statistics.fmean(sizes))
        (c1, n1), (c100, n100) = medians[1], medians[100]
        fit = n100 - n1 >= 30
        per_event = (c100 - c1) / (n100 - n1) if fit else 0.0
        return {
            "cpu_ms_limit1": round(c1, 3),
            "cpu_ms_limit100": round(c100, 3),
            "events_limit100": round(n100, 1),
            "per_event_us": round(per_event * 1000, 1) if fit else None,
            "fixed_ms": round(c1 - per_event * n1, 3) if fit else None,
        }
    finally:
        undo()
