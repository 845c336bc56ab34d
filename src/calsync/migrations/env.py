"""Alembic environment: runs on the connection handed over by ``calsync.store.db.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from calsync.store.models import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn: object) -> None:
    context.configure(
        connection=conn,  # type: ignore[arg-type]
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
        # One transaction per migration: a migration may need an autocommit block (PostgreSQL's
        # CREATE INDEX CONCURRENTLY), which commits what came before it.
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: use 'calsync db upgrade'")
    with create_engine(url).connect() as conn:
        _run(conn)
