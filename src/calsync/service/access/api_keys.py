"""API keys: created once (the plain key is shown once), stored hashed, revocable."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from calsync.crypto import hash_api_key
from calsync.domain import IdentityType, Permission
from calsync.service.access.auth import key_cache
from calsync.store.models import ApiKey, utcnow

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
    session: Session,
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
    row = ApiKey(
        id=secrets.token_hex(8),
        tenant_id=tenant_id,
        key_hash=hash_api_key(plain),
        identity_type=identity.value,
        user_id=user_id.lower() if user_id else None,
        app_id=app_id,
        permissions={"permissions": sorted({p.value for p in granted})},
        name=name,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return CreatedKey(key=plain, info=_info(row))


def list_keys(session: Session, *, tenant_id: str | None = None) -> list[ApiKeyInfo]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    return [_info(row) for row in session.scalars(query)]


def revoke_key(session: Session, *, key_id: str) -> bool:
    """Revoke a key. This process stops accepting it at once (and again once the session
    commits, in case a concurrent call cached it meanwhile); other processes within
    ``auth.KEY_CACHE_SECONDS``."""
    row = session.get(ApiKey, key_id)
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    key_hash = row.key_hash
    key_cache.forget(key_hash)
    event.listen(session, "after_commit", lambda _session: key_cache.forget(key_hash), once=True)
    return True


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        identity_type=row.identity_type,
        user_id=row.user_id,
        app_id=row.app_id,
        permissions=list(row.permissions.get("permissions", [])),
        name=row.name,
        created_at=row.created_at,
        revoked=row.revoked_at is not None,
    )
