"""Dashboard sessions: an opaque cookie token whose hash keys a row, and the CSRF token tied
to it. A session signed in with an API key ends when the key is revoked."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from calsync.domain import Identity, IdentityType, Permission
from calsync.service.runtime import Runtime
from calsync.store.db import transaction
from calsync.store.models import ApiKey, DashboardSession, DashboardSigninLink, utcnow

SESSION_TTL = timedelta(hours=12)


def token_hash(token: str) -> str:
    """Link and session tokens are 256-bit random strings: one SHA-256 suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def forget_expired(session: Session, now: datetime) -> None:
    """Delete the sign-in links and sessions that expired before ``now``: they can never sign
    anybody in again. Called whenever a link or session is issued, so the tables stay small
    without a cleanup job."""
    session.execute(delete(DashboardSigninLink).where(DashboardSigninLink.expires_at <= now))
    session.execute(delete(DashboardSession).where(DashboardSession.expires_at <= now))


def start(session: Session, identity: Identity) -> str:
    """A new session for ``identity``; returns the cookie token (shown only here). Expired
    links and sessions are deleted on the way."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    forget_expired(session, now)
    session.add(
        DashboardSession(
            token_hash=token_hash(token),
            tenant_id=identity.tenant_id,
            identity_type=identity.type.value,
            user_id=identity.user_id,
            app_id=identity.app_id,
            key_id=identity.key_id,
            permissions={"permissions": sorted(p.value for p in identity.permissions)},
            created_at=now,
            expires_at=now + SESSION_TTL,
        )
    )
    session.flush()
    return token


def identity_of(rt: Runtime, token: str | None) -> Identity | None:
    """The identity behind a cookie token, or None (unknown, expired, signed out, key revoked)."""
    if not token:
        return None
    with transaction(rt.db) as session:
        row = session.get(DashboardSession, token_hash(token))
        if row is None or row.ended_at is not None or row.expires_at <= utcnow():
            return None
        if row.key_id is not None:
            key = session.get(ApiKey, row.key_id)
            if key is None or key.revoked_at is not None:
                return None
        return Identity(
            tenant_id=row.tenant_id,
            type=IdentityType(row.identity_type),
            permissions=frozenset(Permission(p) for p in row.permissions.get("permissions", [])),
            user_id=row.user_id,
            app_id=row.app_id,
            key_id=row.key_id,
        )


def end(rt: Runtime, token: str | None) -> None:
    """Sign out: the cookie token stops working at once."""
    if not token:
        return
    with transaction(rt.db) as session:
        row = session.get(DashboardSession, token_hash(token))
        if row is not None and row.ended_at is None:
            row.ended_at = utcnow()


def csrf_token(rt: Runtime, token: str) -> str:
    """The CSRF token of a session: an HMAC of its cookie token, so it needs no storage."""
    key = rt.secrets.derive_key("dashboard-csrf")
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def csrf_valid(rt: Runtime, token: str | None, given: str | None) -> bool:
    if not token or not given:
        return False
    return hmac.compare_digest(csrf_token(rt, token), given)
