"""In-process analysis of the List Events page query: the SQL calsync sends (recorded as
``store.raw_rows`` expands it), its plan (EXPLAIN QUERY PLAN on SQLite, EXPLAIN (ANALYZE,
BUFFERS) on PostgreSQL) and its median time re-run on the raw DBAPI connection, for near
windows (a week within 4 weeks) and far ones (~300 days ahead)."""

from __future__ import annotations

import random
import re
import statistics
import time
from datetime import timedelta
from typing import Any

import gen
from sqlalchemy import Engine

from calsync.service.events import cursor as cursors
from calsync.service.runtime import Runtime
from calsync.store import raw_rows
from calsync.store.instances import page

DAY_MS = 86_400_000
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


def _page_sql(rt: Runtime, query: cursors.EventQuery) -> tuple[str, Any]:
    """The page SQL and parameters List Events sends (on the DBAPI cursor, so no engine
    event sees it: ``page.fetch_tuples`` is wrapped while the page is read)."""
    seen: list[tuple[str, Any]] = []
    real = page.fetch_tuples

    def recording(db: Any, statement: Any, params: dict[str, Any]) -> list[Any]:
        seen.append(raw_rows.expand(db.dialect, statement, params))
        return real(db, statement, params)

    with page.reading(rt.engine) as reads:
        connections = page.contributors(reads, gen.TENANT, query.schedule_ids, query.user_ids)
        page.fetch_tuples = recording  # type: ignore[assignment]
        try:
            ids = [c.id for c in connections]
            page.page_rows(reads, ids, from_ms=query.from_ms, to_ms=query.to_ms, count=101)
        finally:
            page.fetch_tuples = real  # type: ignore[assignment]
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
    if dialect == "sqlite":
        return "; ".join(lines)
    keep = []
    for line in lines:
        s = re.sub(r"\s*\(actual [^)]*\)", "", line.strip().removeprefix("->").strip())
        if "Scan" in s or s.startswith(("BitmapAnd", "BitmapOr", "Sort", "Limit", "InitPlan")):
            keep.append(s)
        elif s.startswith(("Index Cond", "Rows Removed", "Execution Time")):
            keep.append(s if len(s) < 90 else s[:87] + "...")
    return " | ".join(keep)


def page_query_plans(rt: Runtime, ds: gen.Dataset, per_cell: int) -> list[dict[str, Any]]:
    rows = []
    for window in WINDOWS:
        statements = [_page_sql(rt, q) for q in week_queries(ds, per_cell, window, seed=17)]
        median_ms, n = time_raw(rt.engine, statements)
        plan = explain(rt.engine, *statements[0])
        rows.append(
            {
                "window": window,
                "sql_median_ms": round(median_ms, 3),
                "rows": n,
                "plan": _plan_summary(plan, rt.engine.dialect.name),
            }
        )
    return rows
