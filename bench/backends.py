"""The two databases the bench runs on: a SQLite file and a fresh PostgreSQL schema."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from calsync.service.access import api_keys
from calsync.service.runtime import Runtime, build_runtime
from calsync.settings import Settings
from calsync.store.db import upgrade

POSTGRES_URL = os.environ.get(
    "CALSYNC_BENCH_POSTGRES_URL",
    os.environ.get("CALSYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
# List Events re-reads a connection whose data is older than this; the bench data must stay
# "fresh" for the whole run, so the bench servers use an hour instead of the default minute.
FRESHNESS_SECONDS = 3600


def postgres_problem() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@dataclass
class Backend:
    name: str  # "sqlite" | "postgres"
    url: str  # SQLAlchemy URL the server uses
    workdir: Path
    schema: str | None = None
    sqlite_path: Path | None = None
    runtime: Runtime | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def settings(self, providers_file: Path) -> Settings:
        return Settings(
            data_dir=self.data_dir,
            database_url=self.url,
            providers_file=providers_file,
            freshness_seconds=FRESHNESS_SECONDS,
            log_level="WARNING",
        )

    @property
    def application_name(self) -> str:
        return f"calsync-bench-{self.schema}"

    def env(self, providers_file: Path) -> dict[str, str]:
        """Environment for a ``calsync serve`` subprocess on this database (on PostgreSQL its
        connections carry an application_name, so the bench can find their backends)."""
        url = self.url + (f"&application_name={self.application_name}" if self.schema else "")
        return {
            "CALSYNC_DATA_DIR": str(self.data_dir),
            "CALSYNC_DATABASE_URL": url,
            "CALSYNC_PROVIDERS_FILE": str(providers_file),
            "CALSYNC_FRESHNESS_SECONDS": str(FRESHNESS_SECONDS),
        }

    def open(self, providers_file: Path) -> Runtime:
        """Create the schema (Alembic, as calsync does) and a runtime in this process."""
        self.runtime = build_runtime(self.settings(providers_file))
        upgrade(self.runtime.engine)
        return self.runtime

    def new_key(self, tenant: str) -> str:
        assert self.runtime is not None
        with self.runtime.store.transaction() as tx:
            return api_keys.create_key(tx, tenant_id=tenant, name="bench").key

    def db_cpu_seconds(self) -> float:
        """CPU seconds used so far by the PostgreSQL backends serving the bench server
        (0 on SQLite, where the database work is inside the server process)."""
        if not self.schema:
            return 0.0
        from server import process_cpu_seconds

        try:
            with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
                pids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                        (self.application_name,),
                    )
                ]
        except psycopg.Error:
            return 0.0  # e.g. PostgreSQL restarting: this block's database CPU is not counted
        return sum(process_cpu_seconds(pid) for pid in pids)

    def server_started(self) -> str:
        """When the database server last started ('' for SQLite or when unreachable): a
        change during a measurement means PostgreSQL was restarted under it."""
        if not self.schema:
            return ""
        try:
            with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
                row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        except psycopg.Error:
            return "unreachable"
        return str(row[0]) if row else ""

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.schema:
            deadline = time.monotonic() + 60  # PostgreSQL may be restarting (other test runs)
            while True:
                try:
                    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
                    break
                except psycopg.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)


def sqlite_backend() -> Backend:
    workdir = Path(tempfile.mkdtemp(prefix="calsync-bench-sqlite-"))
    path = workdir / "data" / "calsync.db"
    return Backend("sqlite", f"sqlite:///{path}", workdir, sqlite_path=path)


def postgres_backend() -> Backend:
    workdir = Path(tempfile.mkdtemp(prefix="calsync-bench-pg-"))
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    base = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    sep = "&" if "?" in base else "?"
    return Backend(
        "postgres", f"{base}{sep}options=-csearch_path%3D{schema}", workdir, schema=schema
    )
