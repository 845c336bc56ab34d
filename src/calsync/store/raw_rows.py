"""Rows of a Core statement straight from the DBAPI cursor, for the hottest read.

SQLAlchemy's execution context and result processing cost List Events' page query about
0.25 ms (SQLite) to 0.45 ms (PostgreSQL) of CPU per call, a third to more than half of what
the query itself costs the client (bench/README.md). This runs the same compiled statement,
with SQLAlchemy still expanding the parameters, and returns the driver's tuples unprocessed:
use it only for columns the drivers already return as Python wants them (integers, strings;
booleans come back from SQLite as 0 and 1).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.expression import Executable


@lru_cache(maxsize=64)
def _compiled(statement: Executable, dialect: Dialect) -> Compiled:
    return statement.compile(dialect=dialect)  # type: ignore[attr-defined,no-any-return]


def expand(dialect: Dialect, statement: Executable, params: dict[str, Any]) -> tuple[str, Any]:
    """The SQL text and the driver's parameters of ``statement`` with ``params``."""
    state = _compiled(statement, dialect).construct_expanded_state(params)  # type: ignore[attr-defined]
    return state.statement, (
        state.positional_parameters if dialect.positional else state.parameters
    )


def fetch_tuples(db: Connection, statement: Executable, params: dict[str, Any]) -> list[Any]:
    """``db.execute(statement, params).all()`` as plain driver tuples, in ``db``'s
    transaction (the same DBAPI connection)."""
    sql, values = expand(db.dialect, statement, params)
    cursor = db.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, values)
        return list(cursor.fetchall())
    finally:
        cursor.close()
