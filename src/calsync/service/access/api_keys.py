"""API keys: created once (the plain key is shown once), stored hashed, revocable."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from calsync.crypto import hash_api_key
from calsync.domain import IdentityType, Permission
from calsync.service.access.auth import key_cache
from calsync.store import keys
from calsync.store.keys import ApiKeyRecord
from calsync.store.unit import Tx

KEY_PREFIX = "csk_"
OWN_PERMISSIONS = (
    Permission.LIST_PROVIDERS,
    Permission.READ_OWN_CONNECTIONS,
    Permission.MANAGE_OWN_CONNECTIONS,
    Permission.READ_EVENTS,
)


@dataclass(frozen=True)
class ApiKeyInfo:
    id: str
    tenant_id: str
    identity_type: str
    user_id: str | None
    app_id: str | None
    permissions: list[str]
    name: str
    created_at: datetime
    revoked: bool


@dataclass(frozen=True)
class CreatedKey:
    key: str
    info: ApiKeyInfo


def create_key(
    tx: Tx,
    *,
    tenant_id: str,
    user_id: str | None = None,
    permissions: list[Permission] | None = None,
    name: str = "",
) -> CreatedKey:
    """A new key. Without ``user_id`` it is an app identity with every permission;
    with it, that user's identity with ``permissions`` (default: the "own" set)."""
    if user_id is None:
        identity, granted, app_id = IdentityType.APP, list(Permission), str(uuid.uuid4())
    else:
        identity, granted, app_id = IdentityType.USER, permissions or list(OWN_PERMISSIONS), None
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    stored = keys.add(
        tx,
        key_id=secrets.token_hex(8),
        tenant_id=tenant_id,
        key_hash=hash_api_key(plain),
        identity_type=identity.value,
        user_id=user_id.lower() if user_id else None,
        app_id=app_id,
        permissions=sorted({p.value for p in granted}),
        name=name,
        created_at=datetime.now(UTC),
    )
    return CreatedKey(key=plain, info=_info(stored))


def list_keys(tx: Tx, *, tenant_id: str | None = None) -> list[ApiKeyInfo]:
    return [_info(stored) for stored in keys.list_keys(tx, tenant_id=tenant_id)]


def revoke_key(tx: Tx, *, key_id: str) -> bool:
    """Revoke a key. This process stops accepting it at once (and again once ``tx``
    commits, in case a concurrent call cached it meanwhile); other processes within
    ``auth.KEY_CACHE_SECONDS``."""
    stored = keys.revoke(tx, key_id, datetime.now(UTC))
    if stored is None:
        return False
    key_hash = stored.key_hash
    key_cache.forget(key_hash)
    keys.after_commit(tx, lambda: key_cache.forget(key_hash))
    return True


def _info(stored: ApiKeyRecord) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=stored.id,
        tenant_id=stored.tenant_id,
        identity_type=stored.identity_type,
        user_id=stored.user_id,
        app_id=stored.app_id,
        permissions=list(stored.permissions),
        name=stored.name,
        created_at=stored.created_at,
        revoked=stored.revoked,
    )
