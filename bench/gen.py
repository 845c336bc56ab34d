"""Bulk data for the List Events benchmark: schedules, SYNCED connections, their calendars and
expanded busy instances, written straight into the tables (no sync, no ORM) for speed.

The shape (per connection, one calendar, ``per_connection`` instances spread over the stored
horizon [now - 90 d, now + 400 d)):

* 70 % one-off events: 88 % timed (15 min .. 3 h, starting 07:00-19:45 UTC on a quarter hour),
  10 % all-day (90 % one day, 10 % 2-14 days), 2 % zero-length reminders;
* 30 % instances of weekly recurring series (30 instances per series, 30 or 60 min).

The longest instance is 14 days (an all-day vacation), which bounds the "start_ms >= from - max
duration" variant the bench tries.
"""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg

TENANT = "bench-site"
PAST_DAYS, FUTURE_DAYS = 90, 400
DAY_MS = 86_400_000
MAX_DURATION_MS = 14 * DAY_MS  # the longest instance the generator makes
TIME_ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London")
TITLES = ("Standup", "1:1", "Dentist", "Lunch", "Team sync", "Customer call", "Gym", "Review")


def rng_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Dataset:
    schedule_ids: list[str]
    connection_ids: list[str]
    provider_id: str
    instances: int
    now: datetime
    seconds: float = 0.0  # generation + load + index build
    detail: dict[str, float] | None = None


def _conn_id(rng: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(40))


def plan(connections: int, provider_id: str, seed: int = 7) -> Dataset:
    rng = random.Random(seed)
    return Dataset(
        schedule_ids=[rng_uuid(rng) for _ in range(connections)],
        connection_ids=[_conn_id(rng) for _ in range(connections)],
        provider_id=provider_id,
        instances=0,
        now=datetime.now(UTC).replace(microsecond=0),
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def instance_rows(ds: Dataset, per_connection: int, seed: int = 11) -> Iterator[tuple]:  # type: ignore[type-arg]
    """(tenant, schedule, connection, provider, calendar, resource_key, instance_key, start_ms,
    end_ms, all_day, start_date, end_date, title) tuples."""
    rng = random.Random(seed)
    first_day = (ds.now - timedelta(days=PAST_DAYS)).date()
    horizon_days = PAST_DAYS + FUTURE_DAYS
    epoch = date(1970, 1, 1)
    first_ms = (first_day - epoch).days * DAY_MS
    randrange, choice, random_ = rng.randrange, rng.choice, rng.random
    durations = (15, 30, 45, 60, 60, 90, 120, 180)
    for schedule_id, connection_id in zip(ds.schedule_ids, ds.connection_ids, strict=True):
        calendar_id = f"/u/{connection_id[:12]}/calendar/"
        series = int(per_connection * 0.3) // 30
        one_off = per_connection - series * 30
        for n in range(one_off):
            uid = f"{connection_id[:8]}-{n:05d}"
            resource = f"{calendar_id}{uid}.ics"
            day = randrange(horizon_days)
            day_ms = first_ms + day * DAY_MS
            title = choice(TITLES)
            kind = random_()
            if kind < 0.10:  # all-day
                days = 1 if random_() < 0.9 else randrange(2, 15)
                start_d = first_day + timedelta(days=day)
                end_d = start_d + timedelta(days=days)
                yield (
                    TENANT,
                    schedule_id,
                    connection_id,
                    ds.provider_id,
                    calendar_id,
                    resource,
                    f"{uid}@{start_d.isoformat()}",
                    day_ms,
                    day_ms + days * DAY_MS,
                    True,
                    start_d.isoformat(),
                    end_d.isoformat(),
                    title,
                )
                continue
            start = day_ms + (7 * 60 + 15 * randrange(52)) * 60_000
            minutes = 0 if kind < 0.12 else choice(durations)
            yield (
                TENANT,
                schedule_id,
                connection_id,
                ds.provider_id,
                calendar_id,
                resource,
                f"{uid}@{start}",
                start,
                start + minutes * 60_000,
                False,
                None,
                None,
                title,
            )
        for s in range(series):
            uid = f"{connection_id[:8]}-series-{s:03d}"
            resource = f"{calendar_id}{uid}.ics"
            first = first_ms + randrange(horizon_days - 7 * 30) * DAY_MS
            start0 = first + (8 * 60 + 30 * randrange(20)) * 60_000
            minutes = choice((30, 60))
            title = choice(TITLES)
            for k in range(30):
                start = start0 + k * 7 * DAY_MS
                yield (
                    TENANT,
                    schedule_id,
                    connection_id,
                    ds.provider_id,
                    calendar_id,
                    resource,
                    f"{uid}@{start}",
                    start,
                    start + minutes * 60_000,
                    False,
                    None,
                    None,
                    title,
                )


INSTANCE_COLUMNS = (
    "tenant_id, schedule_id, connection_id, provider_id, calendar_id, resource_key, "
    "instance_key, start_ms, end_ms, all_day, start_date, end_date, title"
)


SCHEDULE_COLUMNS = "tenant_id, id, owner_user_id, owner_name, time_zone, created_at, updated_at"


def _lite(rows: list[tuple]) -> list[tuple]:  # type: ignore[type-arg]
    """Datetimes as SQLAlchemy stores them in SQLite (text with microseconds)."""
    return [
        tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v for v in row)
        for row in rows
    ]


def _schedule_rows(ds: Dataset) -> list[tuple]:  # type: ignore[type-arg]
    rng = random.Random(3)
    created = ds.now.replace(tzinfo=None) - timedelta(days=30)
    return [
        (
            TENANT,
            sid,
            rng_uuid(rng),
            f"Owner {i}",
            TIME_ZONES[i % len(TIME_ZONES)],
            created,
            created,
        )
        for i, sid in enumerate(ds.schedule_ids)
    ]


def _connection_rows(ds: Dataset) -> list[tuple]:  # type: ignore[type-arg]
    # Naive UTC, as calsync's UTCDateTime stores them. sync_requested_at < last_synced_at and
    # last_synced_at = now: nothing is stale (the bench server runs with a long freshness).
    now = ds.now.replace(tzinfo=None)
    config = (
        '{"import": {"enabled": true, "calendars": null}, "export": {"enabled": false, '
        '"target": null, "includeBufferTime": null, "appendSingleParticipantName": null}}'
    )
    rows = []
    for i, (sid, cid) in enumerate(zip(ds.schedule_ids, ds.connection_ids, strict=True)):
        created = now - timedelta(days=20, seconds=i)
        rows.append(
            (
                cid,
                TENANT,
                ds.provider_id,
                sid,
                None,
                None,
                f"user{i}@example.com",
                "SYNCED",
                "UNDEFINED",
                config,
                None,
                '{"primary_calendar_id": "/u/' + cid[:12] + '/calendar/"}',
                now,
                now - timedelta(hours=1),
                now + timedelta(hours=1),
                None,
                None,
                0,
                now,
                None,
                created,
                now,
            )
        )
    return rows


CONNECTION_COLUMNS = (
    "id, tenant_id, provider_id, schedule_id, user_id, app_id, external_account_email, status, "
    "error_reason, sync_config, secret, account_state, last_synced_at, sync_requested_at, "
    "next_sync_at, lease_owner, lease_expires_at, failure_count, last_sync_attempt_at, "
    "last_error, created_at, updated_at"
)


def _calendar_rows(ds: Dataset) -> list[tuple]:  # type: ignore[type-arg]
    now = ds.now.replace(tzinfo=None)
    today = ds.now.date().isoformat()
    return [
        (cid, f"/u/{cid[:12]}/calendar/", f"Calendar {i}", True, None, now, today)
        for i, cid in enumerate(ds.connection_ids)
    ]


CALENDAR_COLUMNS = "connection_id, calendar_id, name, is_primary, cursor, synced_at, horizon_day"


def load_sqlite(path: str, ds: Dataset, per_connection: int) -> Dataset:
    """Bulk insert into an upgraded (empty) SQLite database."""
    started = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")  # 256 MiB
    db.execute("PRAGMA temp_store=MEMORY")
    db.execute("BEGIN")
    db.executemany(
        f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
        _lite(_schedule_rows(ds)),
    )
    db.executemany(
        f"INSERT INTO connections ({CONNECTION_COLUMNS}) VALUES ({','.join('?' * 22)})",
        _lite(_connection_rows(ds)),
    )
    db.executemany(
        f"INSERT INTO connection_calendars ({CALENDAR_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
        _lite(_calendar_rows(ds)),
    )
    # Whatever secondary indexes the migrations gave event_instances: dropped for the load,
    # rebuilt from their own DDL afterwards.
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
        "AND tbl_name = 'event_instances' AND sql IS NOT NULL"
    ).fetchall()
    for name, _sql in indexes:
        db.execute(f'DROP INDEX "{name}"')
    db.execute("COMMIT")
    t_rows = time.perf_counter()
    sql = f"INSERT INTO event_instances ({INSTANCE_COLUMNS}) VALUES ({','.join('?' * 13)})"
    batch: list[tuple] = []  # type: ignore[type-arg]
    count = 0
    db.execute("BEGIN")
    for row in instance_rows(ds, per_connection):
        batch.append(row)
        if len(batch) >= 50_000:
            db.executemany(sql, batch)
            count += len(batch)
            batch.clear()
    db.executemany(sql, batch)
    count += len(batch)
    db.execute("COMMIT")
    t_index = time.perf_counter()
    for _name, sql in indexes:
        db.execute(sql)
    db.close()
    done = time.perf_counter()
    ds.instances = count
    ds.seconds = done - started
    ds.detail = {"rows_s": t_index - t_rows, "indexes_s": done - t_index}
    return ds


def load_postgres(conninfo: str, schema: str, ds: Dataset, per_connection: int) -> Dataset:
    """COPY into an upgraded (empty) PostgreSQL schema, rebuild indexes, VACUUM ANALYZE."""
    started = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as db:
        db.execute(f'SET search_path TO "{schema}"')
        db.execute("SET maintenance_work_mem = '256MB'")
        with db.transaction(), db.cursor() as cur:
            cur.executemany(
                f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s)",
                _schedule_rows(ds),
            )
            cur.executemany(
                f"INSERT INTO connections ({CONNECTION_COLUMNS}) VALUES ({','.join(['%s'] * 22)})",
                _connection_rows(ds),
            )
            cur.executemany(
                f"INSERT INTO connection_calendars ({CALENDAR_COLUMNS}) "
                "VALUES (%s,%s,%s,%s,%s,%s,%s)",
                _calendar_rows(ds),
            )
            indexes = cur.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s "
                "AND tablename = 'event_instances' AND indexname <> 'pk_event_instances'",
                (schema,),
            ).fetchall()
            for name, _ddl in indexes:
                cur.execute(f'DROP INDEX "{name}"')
        t_rows = time.perf_counter()
        count = 0
        copy_sql = f"COPY event_instances ({INSTANCE_COLUMNS}) FROM STDIN"
        with db.transaction(), db.cursor() as cur, cur.copy(copy_sql) as copy:
            for row in instance_rows(ds, per_connection):
                copy.write_row(row)
                count += 1
        t_index = time.perf_counter()
        for _name, ddl in indexes:
            db.execute(ddl)
        for table in ("schedules", "connections", "connection_calendars", "event_instances"):
            db.execute(f"VACUUM ANALYZE {table}")
    done = time.perf_counter()
    ds.instances = count
    ds.seconds = done - started
    ds.detail = {"rows_s": t_index - t_rows, "indexes_s": done - t_index}
    return ds


def backfill_bound(url: str) -> None:
    """What migration 0007 does for existing rows (and sync keeps up to date afterwards):
    ``connections.max_instance_ms`` from the bulk-loaded instances."""
    from sqlalchemy import text

    from calsync.store.db import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE connections SET max_instance_ms = (SELECT max(e.end_ms - e.start_ms) "
                    "FROM event_instances e WHERE e.connection_id = connections.id)"
                )
            )
    finally:
        engine.dispose()
