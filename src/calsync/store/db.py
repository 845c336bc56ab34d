"""Engine and session factory, and the Alembic upgrade that creates or migrates the schema."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        path = _sqlite_file(url)
        if path:
            _private_file(Path(path))
        return _sqlite_engine(url, lock_wait_seconds=30)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _private_file(path: Path) -> None:
    """Create the database file (and its folder) readable by this user only: it holds event
    titles and e-mail addresses. A file of an older version that others could read is
    tightened. SQLite gives its -wal and -shm files the database file's mode."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    if path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
        path.chmod(0o600)


def _sqlite_file(url: str) -> str:
    """The database file of a SQLite URL; "" for an in-memory database."""
    path = url.split("///", 1)[-1] if "///" in url else ""
    return "" if path == ":memory:" or "mode=memory" in path else path


def _sqlite_engine(url: str, *, lock_wait_seconds: float, **options: Any) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": lock_wait_seconds},
        **options,
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any exception."""
    with factory() as session, session.begin():
        yield session


def reading(engine: Engine) -> Connection:
    """A pooled connection for a sequence of reads, in autocommit: no BEGIN and ROLLBACK
    round trips. Under READ COMMITTED (PostgreSQL's default and calsync's) every statement of a
    transaction takes its own snapshot anyway, so reads see nothing different; a statement that
    needs one snapshot for two tables reads both in itself (a subquery). On PostgreSQL this
    halved the database's CPU per List Events call (bench/RESULTS.md, fourth round).

    SQLite's driver (legacy transaction control) starts no transaction before a SELECT, so
    a plain connection already reads in autocommit there; switching its isolation level and
    back would cost 0.15 ms per use (bench/RESULTS.md, fifth round)."""
    connection = engine.connect()
    if engine.dialect.name == "sqlite":
        return connection
    return connection.execution_options(isolation_level="AUTOCOMMIT")


def make_loop_engine(url: str) -> Engine | None:
    """An engine of one SQLite connection, for the short reads the event loop makes itself
    (``api.calls.serve``'s quick path); None where reads stay off the loop.

    On SQLite the database is in this process, and in WAL mode a reader does not wait for a
    writer, so a List Events page is a fraction of a millisecond of CPU. Handing it to a
    thread costs more than that: the hop, and the GIL passed back and forth between the loop
    and the threads (2.06 -> 1.46 ms of server CPU per call, bench/RESULTS.md, fifth round).
    The connection is the loop's alone (a static pool): a read never waits for the shared pool,
    which threads may have emptied. It waits at most 0.1 s for a lock (a crash recovery by
    another process), so the loop never stalls for long; ``api.calls`` then does the call in
    a thread instead, which waits as long as every other connection does.

    None on PostgreSQL, where every statement waits for a network round trip, and for an
    in-memory SQLite database, which is private to each connection."""
    if not url.startswith("sqlite") or not _sqlite_file(url):
        return None
    return _sqlite_engine(url, lock_wait_seconds=0.1, poolclass=StaticPool)


def upgrade(engine: Engine) -> None:
    """Apply every Alembic migration to the database behind ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Each migration commits on its own (migrations/env.py), so one that must run outside a
    # transaction (CREATE INDEX CONCURRENTLY) can.
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def ping(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
