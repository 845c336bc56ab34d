"""store.db.make_loop_engine: which databases the event loop reads itself."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from calsync.store.db import make_engine, make_loop_engine


def test_only_a_sqlite_file_gets_a_loop_engine(tmp_path: Path) -> None:
    assert make_loop_engine("postgresql://postgres@127.0.0.1:5432/test") is None
    assert make_loop_engine("postgresql+psycopg://postgres@127.0.0.1/test") is None
    # An in-memory database is private to each connection: the loop would see another one.
    assert make_loop_engine("sqlite://") is None
    assert make_loop_engine("sqlite:///:memory:") is None
    assert make_loop_engine("sqlite:///file:x?mode=memory&uri=true") is None
    url = f"sqlite:///{tmp_path / 'calsync.db'}"
    loop = make_loop_engine(url)
    assert loop is not None
    shared = make_engine(url)
    try:
        with shared.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with loop.connect() as first, loop.connect() as second:
            # One connection, the loop's alone: a read never waits for a pool.
            assert first.connection.dbapi_connection is second.connection.dbapi_connection
            assert first.execute(text("SELECT x FROM t")).scalar_one() == 1
            assert first.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert first.execute(text("PRAGMA busy_timeout")).scalar_one() == 100
    finally:
        loop.dispose()
        shared.dispose()
