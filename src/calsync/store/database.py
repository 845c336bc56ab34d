"""The database as a whole, for the entry points (the ``calsync`` command, the health check):
open a store from a URL, bring its schema up to date, check that it answers, close it.

The work itself is in ``store.db``; these take and return a ``Store`` so that nothing outside
``store/`` handles an engine.
"""

from __future__ import annotations

from calsync.store import db
from calsync.store.unit import Store


def open_store(url: str) -> Store:
    """A store on the database at ``url`` (no event-loop engine: for commands, not serving)."""
    engine = db.make_engine(url)
    return Store(engine, db.make_session_factory(engine))


def upgrade(store: Store) -> None:
    """Create the schema or migrate it to the newest version (Alembic)."""
    db.upgrade(store.engine)


def ping(store: Store) -> bool:
    """Whether the database answers a trivial query."""
    return db.ping(store.engine)


def close(store: Store) -> None:
    """Close every pooled connection of a store from ``open_store``."""
    store.engine.dispose()
    if store.loop_engine is not None:
        store.loop_engine.dispose()
