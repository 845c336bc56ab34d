"""The unit of work: the service opens one, and every store function takes it.

``with rt.store.transaction() as tx:`` commits on success and rolls back on any exception;
``with rt.store.reading() as tx:`` is for reads only (nothing it does is committed). Store
functions take ``tx`` first and return plain dataclasses: no ORM row or DBAPI tuple leaves
``store/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

# What the database raises when it cannot be reached or a statement fails: the service
# catches this name (a database restarting), never the driver's or SQLAlchemy's own.
DatabaseError = SQLAlchemyError


@dataclass(frozen=True)
class Tx:
    """One unit of work. Only ``store/`` looks inside."""

    session: Session


@dataclass(frozen=True)
class Store:
    """The database behind one runtime."""

    engine: Engine
    db: sessionmaker[Session]
    # Reads on the event loop itself (SQLite only, see store.db.make_loop_engine), else None.
    loop_engine: Engine | None = None

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self.db() as session, session.begin():
            yield Tx(session)

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        with self.db() as session:
            yield Tx(session)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name
