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

from calsync.service.runtime import Runtime
from calsync.store import secrets
from calsync.store.secrets import SealedSecret
from calsync.store.unit import Tx


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
    for name in secrets.COLUMNS:
        column = ColumnReport(column=name)
        report.columns.append(column)
        last: str | None = None
        while True:
            with rt.store.transaction() as tx:
                found = secrets.batch(tx, name, after=last, limit=batch_size)
                for secret in found:
                    _rotate_one(rt, tx, secret, column, dry_run)
            if not found:
                break
            last = found[-1].key
            if after_batch is not None:
                after_batch(column)
    return report


def _rotate_one(
    rt: Runtime, tx: Tx, secret: SealedSecret, column: ColumnReport, dry_run: bool
) -> None:
    if rt.secrets.is_current(secret.sealed):
        column.current += 1
        return
    try:
        fresh = rt.secrets.rotate(secret.sealed)
    except ValueError:
        column.unreadable += 1
        return
    if dry_run or secrets.replace(tx, column.column, secret, fresh):  # a dry run writes nothing
        column.rotated += 1
    else:
        column.changed_meanwhile += 1
