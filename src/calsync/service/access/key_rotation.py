"""Re-encrypting every stored secret under the first encryption key (key rotation).

Secrets are read in primary-key order, a batch at a time, and each batch commits on its own:
a rotation cut short leaves some secrets under the new key and the rest under an old one,
both readable while the old key is still configured, and running it again finishes the job
(secrets already under the first key are skipped). Each secret is replaced only if it is
still the value that was read, so a token refreshed meanwhile by a running process is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from calsync.service.runtime import Runtime
from calsync.store.db import transaction
from calsync.store.models import Connection, OAuthAttempt, PendingRetirement

# Every column that holds SecretBox output, with its table's primary key. A test checks that
# each binary column of the schema is listed here or known not to be a secret.
Column = InstrumentedAttribute[Any]
ENCRYPTED_COLUMNS: tuple[tuple[Column, Column], ...] = (
    (Connection.id, Connection.secret),
    (OAuthAttempt.state_hash, OAuthAttempt.code_verifier),
    (PendingRetirement.connection_id, PendingRetirement.secret),
)


@dataclass
class ColumnReport:
    """What rotation found in one column."""

    column: str
    rotated: int = 0
    current: int = 0
    unreadable: int = 0
    changed_meanwhile: int = 0

    @property
    def seen(self) -> int:
        return self.rotated + self.current + self.unreadable + self.changed_meanwhile


@dataclass
class RotationReport:
    columns: list[ColumnReport] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every secret is now under the first key, so the other keys can be retired."""
        return all(c.unreadable == 0 and c.changed_meanwhile == 0 for c in self.columns)


def rotate_secrets(
    rt: Runtime,
    *,
    batch_size: int = 200,
    dry_run: bool = False,
    after_batch: Callable[[ColumnReport], None] | None = None,
) -> RotationReport:
    """Re-encrypt every secret not yet under the first key, committing per batch.

    ``dry_run`` only counts. ``after_batch`` is called after each committed batch (progress
    reports). Secrets no configured key can read are counted as unreadable and left alone.
    """
    report = RotationReport()
    for key_column, secret_column in ENCRYPTED_COLUMNS:
        name = f"{secret_column.class_.__tablename__}.{secret_column.key}"
        column = ColumnReport(column=name)
        report.columns.append(column)
        last: str | None = None
        while True:
            query = select(key_column, secret_column).where(secret_column.is_not(None))
            if last is not None:
                query = query.where(key_column > last)
            with transaction(rt.db) as session:
                rows = session.execute(query.order_by(key_column).limit(batch_size)).all()
                for key, secret in rows:
                    _rotate_one(
                        rt, session, key_column, secret_column, key, secret, column, dry_run
                    )
            if not rows:
                break
            last = rows[-1][0]
            if after_batch is not None:
                after_batch(column)
    return report


def _rotate_one(
    rt: Runtime,
    session: Session,
    key_column: Column,
    secret_column: Column,
    key: str,
    secret: bytes,
    column: ColumnReport,
    dry_run: bool,
) -> None:
    if rt.secrets.is_current(secret):
        column.current += 1
        return
    try:
        fresh = rt.secrets.rotate(secret)
    except ValueError:
        column.unreadable += 1
        return
    if dry_run:
        column.rotated += 1
        return
    unchanged: ColumnElement[bool] = secret_column == secret
    result = session.execute(
        update(secret_column.class_)
        .where(key_column == key, unchanged)
        .values({secret_column.key: fresh})
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        column.rotated += 1
    else:
        column.changed_meanwhile += 1
