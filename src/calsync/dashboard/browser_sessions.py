"""Dashboard sessions: an opaque cookie token whose hash keys a row, and the CSRF token tied
to it. A session signed in with an API key ends when the key is revoked."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from calsync.domain import Identity, IdentityType, Permission
from calsync.service.runtime import Runtime
from calsync.store import browser_sessions as signins
from calsync.store import keys
from calsync.store.browser_sessions import DashboardSignin
from calsync.store.unit import Tx

SESSION_TTL = timedelta(hours=12)


def token_hash(token: str) -> str:
    """Link and session tokens are 256-bit random strings: one SHA-256 suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def forget_expired(tx: Tx, now: datetime) -> None:
    """Delete the sign-in links and sessions that expired before ``now``: they can never sign
    anybody in again. Called whenever a link or session is issued, so the tables stay small
    without a cleanup job."""
    signins.forget_expired(tx, now)


def start(tx: Tx, identity: Identity) -> str:
    """A new session for ``identity``; returns the cookie token (shown only here). Expired
    links and sessions are deleted on the way."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    forget_expired(tx, now)
    signins.add_signin(
        tx,
        DashboardSignin(
            token_hash=token_hash(token),
            tenant_id=identity.tenant_id,
            identity_type=identity.type.value,
            user_id=identity.user_id,
            app_id=identity.app_id,
            key_id=identity.key_id,
            permissions=tuple(sorted(p.value for p in identity.permissions)),
            created_at=now,
            expires_at=now + SESSION_TTL,
        ),
    )
    return token


def identity_of(rt: Runtime, token: str | None) -> Identity | None:
    """The identity behind a cookie token, or None (unknown, expired, signed out, key revoked)."""
    if not token:
        return None
    with rt.store.reading() as tx:
        signin = signins.get_signin(tx, token_hash(token))
        if signin is None or signin.ended_at is not None or signin.expires_at <= datetime.now(UTC):
            return None
        if signin.key_id is not None:
            key = keys.get(tx, signin.key_id)
            if key is None or key.revoked:
                return None
        return Identity(
            tenant_id=signin.tenant_id,
            type=IdentityType(signin.identity_type),
            permissions=frozenset(Permission(p) for p in signin.permissions),
            user_id=signin.user_id,
            app_id=signin.app_id,
            key_id=signin.key_id,
        )


def end(rt: Runtime, token: str | None) -> None:
    """Sign out: the cookie token stops working at once."""
    if not token:
        return
    with rt.store.transaction() as tx:
        signins.end_signin(tx, token_hash(token), datetime.now(UTC))


def csrf_token(rt: Runtime, token: str) -> str:
    """The CSRF token of a session: an HMAC of its cookie token, so it needs no storage."""
    key = rt.secrets.derive_key("dashboard-csrf")
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def csrf_valid(rt: Runtime, token: str | None, given: str | None) -> bool:
    if not token or not given:
        return False
    return hmac.compare_digest(csrf_token(rt, token), given)
