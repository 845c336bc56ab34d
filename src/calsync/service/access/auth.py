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

from calsync.crypto import hash_api_key
from calsync.domain import Identity, IdentityType, Permission
from calsync.errors import PermissionDenied, Unauthenticated
from calsync.store import keys
from calsync.store.keys import ApiKeyRecord
from calsync.store.unit import Store, Tx

# The longest a revoked key keeps working in a process that did not revoke it.
KEY_CACHE_SECONDS = 5.0
KEY_CACHE_ENTRIES = 4096


def authenticate(tx: Tx, authorization: str | None, site_id: str | None) -> Identity:
    """The identity behind an ``Authorization`` header (raw key or ``Bearer <key>``), read from
    the database.

    Raises Unauthenticated for a missing/unknown/revoked key, PermissionDenied when
    ``wix-site-id`` names another tenant than the key's.
    """
    identity = _lookup(tx, hash_api_key(_token(authorization)))
    _check_site(identity, site_id)
    return identity


def authenticate_cached(store: Store, authorization: str | None, site_id: str | None) -> Identity:
    """``authenticate``, answered from the key cache when it can be (see the module doc)."""
    identity = cached_identity(store, authorization, site_id)
    if identity is None:
        key_hash = hash_api_key(_token(authorization))
        with store.reading() as tx:
            identity = _lookup(tx, key_hash)
        key_cache.put(store.engine, key_hash, identity)
        _check_site(identity, site_id)
    return identity


def cached_identity(
    store: Store, authorization: str | None, site_id: str | None
) -> Identity | None:
    """``authenticate_cached`` when the key cache can answer; None when the database must
    be read (a key not seen within ``KEY_CACHE_SECONDS``)."""
    identity = key_cache.get(store.engine, hash_api_key(_token(authorization)))
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


def _lookup(tx: Tx, key_hash: str) -> Identity:
    stored = keys.by_hash(tx, key_hash)
    if stored is None or stored.revoked:
        raise Unauthenticated("the API key is not valid")
    return identity_of(stored)


def _check_site(identity: Identity, site_id: str | None) -> None:
    if site_id and site_id.strip() and site_id.strip() != identity.tenant_id:
        raise PermissionDenied("the API key does not belong to the site in wix-site-id")


@dataclass(frozen=True, slots=True)
class _Entry:
    database: object
    identity: Identity
    expires: float


class KeyCache:
    """Valid keys by hash, per database, for at most ``ttl`` seconds each.

    ``database`` is any object that stands for one database (``Store.engine``: two runtimes
    on the same engine share entries); entries are told apart by identity."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS, entries: int = KEY_CACHE_ENTRIES) -> None:
        self.ttl = ttl
        self.entries = entries
        self._items: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, database: object, key_hash: str) -> Identity | None:
        entry = self._items.get(key_hash)
        if entry is None or entry.database is not database or entry.expires <= time.monotonic():
            return None
        return entry.identity

    def put(self, database: object, key_hash: str, identity: Identity) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._items) >= self.entries:
                for stale in [k for k, e in self._items.items() if e.expires <= now]:
                    del self._items[stale]
                while len(self._items) >= self.entries:
                    del self._items[next(iter(self._items))]
            self._items[key_hash] = _Entry(database, identity, now + self.ttl)

    def forget(self, key_hash: str) -> None:
        with self._lock:
            self._items.pop(key_hash, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


key_cache = KeyCache()


def identity_of(stored: ApiKeyRecord) -> Identity:
    return Identity(
        tenant_id=stored.tenant_id,
        type=IdentityType(stored.identity_type),
        permissions=frozenset(Permission(p) for p in stored.permissions),
        user_id=stored.user_id,
        app_id=stored.app_id,
        key_id=stored.id,
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
