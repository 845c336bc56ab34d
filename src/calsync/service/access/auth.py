"""Caller authentication (API keys) and the permission checks of spec section 3.

API calls authenticate through a small per-process cache of valid keys (``authenticate_cached``):
an entry lives at most ``KEY_CACHE_SECONDS``, so a key revoked by another process (``calsync
api-keys revoke``) stops working within that bound; revoking in this process
(``api_keys.revoke_key``) drops the entry at once. Unknown and revoked keys are never cached,
so a new key works at once everywhere.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from calsync.crypto import hash_api_key
from calsync.domain import Identity, IdentityType, Permission
from calsync.errors import PermissionDenied, Unauthenticated
from calsync.store.models import ApiKey

# The longest a revoked key keeps working in a process that did not revoke it.
KEY_CACHE_SECONDS = 5.0
KEY_CACHE_ENTRIES = 4096


def authenticate(session: Session, authorization: str | None, site_id: str | None) -> Identity:
    """The identity behind an ``Authorization`` header (raw key or ``Bearer <key>``), read from
    the database.

    Raises Unauthenticated for a missing/unknown/revoked key, PermissionDenied when
    ``wix-site-id`` names another tenant than the key's.
    """
    identity = _lookup(session, hash_api_key(_token(authorization)))
    _check_site(identity, site_id)
    return identity


def authenticate_cached(
    sessions: sessionmaker[Session], authorization: str | None, site_id: str | None
) -> Identity:
    """``authenticate``, answered from the key cache when it can be (see the module doc)."""
    identity = cached_identity(sessions, authorization, site_id)
    if identity is None:
        key_hash = hash_api_key(_token(authorization))
        with sessions() as session:
            identity = _lookup(session, key_hash)
        key_cache.put(sessions.kw.get("bind"), key_hash, identity)
        _check_site(identity, site_id)
    return identity


def cached_identity(
    sessions: sessionmaker[Session], authorization: str | None, site_id: str | None
) -> Identity | None:
    """``authenticate_cached`` when the key cache can answer; None when the database must
    be read (a key not seen within ``KEY_CACHE_SECONDS``)."""
    identity = key_cache.get(sessions.kw.get("bind"), hash_api_key(_token(authorization)))
    if identity is not None:
        _check_site(identity, site_id)
    return identity


def _token(authorization: str | None) -> str:
    token = (authorization or "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise Unauthenticated("an API key is required in the Authorization header")
    return token


def _lookup(session: Session, key_hash: str) -> Identity:
    row = session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("the API key is not valid")
    return identity_of(row)


def _check_site(identity: Identity, site_id: str | None) -> None:
    if site_id and site_id.strip() and site_id.strip() != identity.tenant_id:
        raise PermissionDenied("the API key does not belong to the site in wix-site-id")


@dataclass(frozen=True, slots=True)
class _Entry:
    engine: Engine | None
    identity: Identity
    expires: float


class KeyCache:
    """Valid keys by hash, per database (engine), for at most ``ttl`` seconds each."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS, entries: int = KEY_CACHE_ENTRIES) -> None:
        self.ttl = ttl
        self.entries = entries
        self._items: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, engine: Engine | None, key_hash: str) -> Identity | None:
        entry = self._items.get(key_hash)
        if entry is None or entry.engine is not engine or entry.expires <= time.monotonic():
            return None
        return entry.identity

    def put(self, engine: Engine | None, key_hash: str, identity: Identity) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._items) >= self.entries:
                for stale in [k for k, e in self._items.items() if e.expires <= now]:
                    del self._items[stale]
                while len(self._items) >= self.entries:
                    del self._items[next(iter(self._items))]
            self._items[key_hash] = _Entry(engine, identity, now + self.ttl)

    def forget(self, key_hash: str) -> None:
        with self._lock:
            self._items.pop(key_hash, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


key_cache = KeyCache()


def identity_of(row: ApiKey) -> Identity:
    perms = frozenset(Permission(p) for p in row.permissions.get("permissions", []))
    return Identity(
        tenant_id=row.tenant_id,
        type=IdentityType(row.identity_type),
        permissions=perms,
        user_id=row.user_id,
        app_id=row.app_id,
        key_id=row.id,
    )


def require_any(identity: Identity, *permissions: Permission) -> None:
    """PermissionDenied unless the identity holds at least one of ``permissions``."""
    if not any(identity.has(p) for p in permissions):
        raise PermissionDenied("missing permission: " + " or ".join(p.value for p in permissions))


def owns(identity: Identity, schedule_owner_user_id: str | None) -> bool:
    return (
        identity.user_id is not None
        and schedule_owner_user_id is not None
        and identity.user_id.lower() == schedule_owner_user_id.lower()
    )


def may_act_on(
    identity: Identity, schedule_owner_user_id: str | None, *, own: Permission, all_: Permission
) -> bool:
    """Whether the caller may act on a connection of a schedule with that owner."""
    if identity.has(all_):
        return True
    return identity.has(own) and owns(identity, schedule_owner_user_id)
