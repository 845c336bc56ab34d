"""The dashboard's browser sign-ins: one-time sign-in links and signed-in browsers.

Both are keyed by the SHA-256 of a random token the browser holds; the token itself is never
stored, so a database dump signs nobody in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete

from calsync.store.models import DashboardSession, DashboardSigninLink
from calsync.store.unit import Tx


@dataclass(frozen=True)
class SigninLink:
    """A one-time link that signs its first visitor in as ``tenant_id``'s admin."""

    token_hash: str
    tenant_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class DashboardSignin:
    """A signed-in dashboard browser and the identity it acts as. ``key_id`` is the API key it
    signed in with (None for a sign-in link)."""

    token_hash: str
    tenant_id: str
    identity_type: str
    user_id: str | None
    app_id: str | None
    key_id: str | None
    permissions: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None


def forget_expired(tx: Tx, now: datetime) -> None:
    """Delete the links and sign-ins that expired before ``now``."""
    tx.session.execute(delete(DashboardSigninLink).where(DashboardSigninLink.expires_at <= now))
    tx.session.execute(delete(DashboardSession).where(DashboardSession.expires_at <= now))


def add_link(tx: Tx, link: SigninLink) -> None:
    tx.session.add(
        DashboardSigninLink(
            token_hash=link.token_hash,
            tenant_id=link.tenant_id,
            created_at=link.created_at,
            expires_at=link.expires_at,
            used_at=link.used_at,
        )
    )


def get_link(tx: Tx, token_hash: str, *, lock: bool = False) -> SigninLink | None:
    """The link with that hash; ``lock`` holds it for the rest of ``tx`` (SELECT ... FOR
    UPDATE), so two visitors cannot both spend it."""
    row = tx.session.get(DashboardSigninLink, token_hash, with_for_update=lock)
    if row is None:
        return None
    return SigninLink(
        token_hash=row.token_hash,
        tenant_id=row.tenant_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


def mark_link_used(tx: Tx, token_hash: str, now: datetime) -> None:
    row = tx.session.get(DashboardSigninLink, token_hash)
    if row is not None:
        row.used_at = now


def add_signin(tx: Tx, signin: DashboardSignin) -> None:
    """Insert a sign-in (written at once, so a clash of token hash raises here)."""
    tx.session.add(
        DashboardSession(
            token_hash=signin.token_hash,
            tenant_id=signin.tenant_id,
            identity_type=signin.identity_type,
            user_id=signin.user_id,
            app_id=signin.app_id,
            key_id=signin.key_id,
            permissions={"permissions": list(signin.permissions)},
            created_at=signin.created_at,
            expires_at=signin.expires_at,
            ended_at=signin.ended_at,
        )
    )
    tx.session.flush()


def get_signin(tx: Tx, token_hash: str) -> DashboardSignin | None:
    row = tx.session.get(DashboardSession, token_hash)
    if row is None:
        return None
    return DashboardSignin(
        token_hash=row.token_hash,
        tenant_id=row.tenant_id,
        identity_type=row.identity_type,
        user_id=row.user_id,
        app_id=row.app_id,
        key_id=row.key_id,
        permissions=tuple(row.permissions.get("permissions", [])),
        created_at=row.created_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
    )


def end_signin(tx: Tx, token_hash: str, now: datetime) -> None:
    """Mark a sign-in ended at ``now`` (one ended before keeps its time)."""
    row = tx.session.get(DashboardSession, token_hash)
    if row is not None and row.ended_at is None:
        row.ended_at = now
