"""The schema migrations: down and up again on both databases, and what 0008 (PostgreSQL)
and 0009 (SQLite) build."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from calsync.store.db import MIGRATIONS_DIR, make_engine, upgrade


def _to(url: str, revision: str, *, down: bool) -> None:
    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)
    engine.dispose()


def _page_index(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                return str(
                    conn.execute(
                        text(
                            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                            "AND indexname = 'ix_event_instances_connection_start'"
                        )
                    ).scalar_one()
                )
            [index] = [
                i
                for i in inspect(conn).get_indexes("event_instances")
                if i["name"] == "ix_event_instances_connection_start"
            ]
            return ",".join(str(c) for c in index["column_names"])
    finally:
        engine.dispose()


def test_page_index_covers_the_page_on_postgresql_and_migrations_go_down_and_up(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    head = _page_index(database_url)
    if database_url.startswith("sqlite"):  # no INCLUDE: 0009 adds them as key columns
        assert head == (
            "connection_id,start_ms,end_ms,"
            "schedule_id,calendar_id,instance_key,all_day,start_date,end_date,title"
        )
        _to(database_url, "0008", down=True)
        assert _page_index(database_url) == "connection_id,start_ms,end_ms"
    else:
        assert "(connection_id, start_ms, end_ms) INCLUDE (schedule_id, calendar_id" in head
        assert "title)" in head
    _to(database_url, "0006", down=True)
    if database_url.startswith("sqlite"):
        assert _page_index(database_url) == "connection_id,start_ms,end_ms"
    else:
        assert "INCLUDE" not in _page_index(database_url)
    _to(database_url, "head", down=False)
    assert _page_index(database_url) == head


def test_0008_replaces_a_build_an_interrupted_run_left(database_url: str) -> None:
    """On PostgreSQL 0008 builds its index concurrently under a temporary name; a run killed
    mid-build leaves that name behind (as an invalid index), and the next run starts over."""
    if database_url.startswith("sqlite"):
        pytest.skip("0008 changes nothing on SQLite (the test above checks that)")
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    _to(database_url, "0007", down=True)
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE INDEX ix_event_instances_connection_start_building "
                "ON event_instances (connection_id)"
            )
        )
    engine.dispose()
    _to(database_url, "head", down=False)
    assert "INCLUDE (schedule_id" in _page_index(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        names = conn.execute(
            text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = 'event_instances'"
            )
        ).scalars()
        assert "ix_event_instances_connection_start_building" not in set(names)
    engine.dispose()


def test_0009_runs_again_after_a_run_killed_between_drop_and_create(database_url: str) -> None:
    """On SQLite each DDL statement of 0009 commits on its own: a run killed after dropping
    the old index leaves none, at version 0008, and the next run builds the covering one."""
    if not database_url.startswith("sqlite"):
        pytest.skip("0009 changes nothing on PostgreSQL")
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    head = _page_index(database_url)
    _to(database_url, "0008", down=True)
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_event_instances_connection_start"))
    engine.dispose()
    _to(database_url, "head", down=False)
    assert _page_index(database_url) == head
