"""Rows of a Core statement straight from the DBAPI cursor, for the hottest read.

SQLAlchemy's execution context and result processing cost List Events' page query about
0.25 ms (SQLite) to 0.45 ms (PostgreSQL) of CPU per call, a third to more than half of what
the query itself costs the client (bench/README.md). This runs the same compiled statement,
with SQLAlchemy still expanding the parameters, and returns the driver's tuples unprocessed:
use it only for columns the drivers already return as Python wants them (integers, strings;
booleans come back from SQLite as 0 and 1), or convert them (``utc_datetime``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, overload

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.expression import Executable


@lru_cache(maxsize=64)
def _compiled(statement: Executable, dialect: Dialect) -> Compiled:
    return statement.compile(dialect=dialect)  # type: ignore[attr-defined,no-any-return]


def expand(dialect: Dialect, statement: Executable, params: dict[str, Any]) -> tuple[str, Any]:
    """The SQL text and the driver's parameters of ``statement`` with ``params``, each bound
    value converted as its type says (a JSON path becomes the dialect's path string)."""
    compiled = _compiled(statement, dialect)
    state = compiled.construct_expanded_state(params)  # type: ignore[attr-defined]
    values = state.parameters
    # The statement's own binds' converters (SQLAlchemy keeps them on the compiled form), and
    # those of the expanded IN lists' elements.
    processors = {**compiled._bind_processors, **state.processors}  # type: ignore[attr-defined]
    if processors:
        values = {k: processors[k](v) if k in processors else v for k, v in values.items()}
    if dialect.positional:
        return state.statement, tuple(values[k] for k in state.positiontup)
    return state.statement, values


def fetch_tuples(db: Connection, statement: Executable, params: dict[str, Any]) -> list[Any]:
    """``db.execute(statement, params).all()`` as plain driver tuples, in ``db``'s
    transaction (the same DBAPI connection)."""
    sql, values = expand(db.dialect, statement, params)
    cursor = db.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    driver_error = db.dialect.loaded_dbapi.Error
    try:
        cursor.execute(sql, values)
        return list(cursor.fetchall())
    except driver_error as exc:
        # As SQLAlchemy raises it (sqlalchemy.exc.OperationalError, ...): callers handle one
        # family of errors, whichever way a statement ran.
        raise DBAPIError.instance(sql, values, exc, driver_error) from exc
    finally:
        cursor.close()


@overload
def utc_datetime(value: str | datetime) -> datetime: ...


@overload
def utc_datetime(value: None) -> None: ...


def utc_datetime(value: str | datetime | None) -> datetime | None:
    """A ``UTCDateTime`` column's driver value as the aware UTC datetime the ORM returns:
    SQLite gives the stored text, psycopg a naive datetime (both UTC)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC)
