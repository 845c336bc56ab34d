"""The API keys aggregate: a key's hash, the identity it stands for, whether it is revoked.

The plain key is never stored; callers look keys up by ``crypto.hash_api_key``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event, select

from calsync.store.models import ApiKey
from calsync.store.unit import Tx


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored API key. ``permissions`` are permission values, sorted as stored."""

    id: str
    tenant_id: str
    key_hash: str
    identity_type: str
    user_id: str | None
    app_id: str | None
    permissions: tuple[str, ...]
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _record(row: ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        key_hash=row.key_hash,
        identity_type=row.identity_type,
        user_id=row.user_id,
        app_id=row.app_id,
        permissions=tuple(row.permissions.get("permissions", [])),
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def add(
    tx: Tx,
    *,
    key_id: str,
    tenant_id: str,
    key_hash: str,
    identity_type: str,
    user_id: str | None,
    app_id: str | None,
    permissions: list[str],
    name: str,
    created_at: datetime,
) -> ApiKeyRecord:
    """Insert a key (written at once, so a clash of id or hash raises here)."""
    row = ApiKey(
        id=key_id,
        tenant_id=tenant_id,
        key_hash=key_hash,
        identity_type=identity_type,
        user_id=user_id,
        app_id=app_id,
        permissions={"permissions": permissions},
        name=name,
        created_at=created_at,
    )
    tx.session.add(row)
    tx.session.flush()
    return _record(row)


def get(tx: Tx, key_id: str) -> ApiKeyRecord | None:
    row = tx.session.get(ApiKey, key_id)
    return _record(row) if row is not None else None


def by_hash(tx: Tx, key_hash: str) -> ApiKeyRecord | None:
    """The key with that hash, revoked or not; None when there is none."""
    row = tx.session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()
    return _record(row) if row is not None else None


def list_keys(tx: Tx, *, tenant_id: str | None = None) -> list[ApiKeyRecord]:
    """Every key (or one tenant's), oldest first."""
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    return [_record(row) for row in tx.session.scalars(query)]


def revoke(tx: Tx, key_id: str, now: datetime) -> ApiKeyRecord | None:
    """Mark a key revoked at ``now`` (a key revoked before keeps its time); None when there
    is no such key."""
    row = tx.session.get(ApiKey, key_id)
    if row is None:
        return None
    if row.revoked_at is None:
        row.revoked_at = now
    return _record(row)


def after_commit(tx: Tx, callback: Callable[[], None]) -> None:
    """Call ``callback`` once, right after ``tx`` commits (not if it rolls back)."""
    event.listen(tx.session, "after_commit", lambda _session: callback(), once=True)
