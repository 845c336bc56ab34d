"""Every stored secret sealed with the encryption keys (``crypto.SecretBox`` output), across
tables, for key rotation: read a column's secrets in key order, replace one if unchanged.

Push channels are not here: they keep only a hash of their shared secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import InstrumentedAttribute

from calsync.store.models import Connection, OAuthAttempt, PendingRetirement, Webhook
from calsync.store.unit import Tx

# Every column that holds SecretBox output, with its table's primary key. A test checks that
# each binary column of the schema is listed here or known not to be a secret.
Column = InstrumentedAttribute[Any]
ENCRYPTED_COLUMNS: tuple[tuple[Column, Column], ...] = (
    (Connection.id, Connection.secret),
    (OAuthAttempt.state_hash, OAuthAttempt.code_verifier),
    (PendingRetirement.connection_id, PendingRetirement.secret),
    (Webhook.id, Webhook.secret),
    (Webhook.id, Webhook.previous_secret),
)


def _name(secret_column: Column) -> str:
    return f"{secret_column.class_.__tablename__}.{secret_column.key}"


_BY_NAME = {_name(secret): (key, secret) for key, secret in ENCRYPTED_COLUMNS}
# "table.column" of each encrypted column, in the order rotation visits them.
COLUMNS: tuple[str, ...] = tuple(_BY_NAME)


@dataclass(frozen=True)
class SealedSecret:
    """One stored secret: the primary key of its row and the sealed bytes."""

    key: str
    sealed: bytes


def batch(tx: Tx, column: str, *, after: str | None, limit: int) -> list[SealedSecret]:
    """Up to ``limit`` non-null secrets of ``column`` ("table.column", one of ``COLUMNS``)
    whose row key is greater than ``after`` (None: from the first), in key order."""
    key_column, secret_column = _BY_NAME[column]
    query = select(key_column, secret_column).where(secret_column.is_not(None))
    if after is not None:
        query = query.where(key_column > after)
    rows = tx.session.execute(query.order_by(key_column).limit(limit)).all()
    return [SealedSecret(key=key, sealed=sealed) for key, sealed in rows]


def replace(tx: Tx, column: str, secret: SealedSecret, fresh: bytes) -> bool:
    """Write ``fresh`` over ``secret`` only if the row still holds exactly ``secret.sealed``
    (a guarded UPDATE, so a value written meanwhile by another process is kept). Whether it
    was replaced."""
    key_column, secret_column = _BY_NAME[column]
    unchanged: ColumnElement[bool] = secret_column == secret.sealed
    result = tx.session.execute(
        update(secret_column.class_)
        .where(key_column == secret.key, unchanged)
        .values({secret_column.key: fresh})
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]
