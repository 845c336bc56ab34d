"""Signing in to the dashboard: one-time links for a tenant's admin, or an API key.

Both end in a dashboard session (``browser_sessions``); only hashes of the link and
session tokens are stored, so a database dump signs nobody in.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta

from calsync.dashboard import browser_sessions
from calsync.dashboard.browser_sessions import token_hash
from calsync.domain import Identity, IdentityType, Permission
from calsync.errors import Unauthenticated
from calsync.service.access.auth import authenticate
from calsync.service.runtime import Runtime
from calsync.store import browser_sessions as signins
from calsync.store.browser_sessions import SigninLink

LINK_TTL = timedelta(minutes=15)
SIGNIN_PATH = "/dashboard/signin/"


def issue_signin_link(rt: Runtime, tenant_id: str) -> str:
    """An absolute URL that signs its first visitor in as ``tenant_id``'s admin, once, within
    ``LINK_TTL``. Expired links and sessions are deleted on the way."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with rt.store.transaction() as tx:
        browser_sessions.forget_expired(tx, now)
        signins.add_link(
            tx,
            SigninLink(
                token_hash=token_hash(token),
                tenant_id=tenant_id,
                created_at=now,
                expires_at=now + LINK_TTL,
                used_at=None,
            ),
        )
    return rt.settings.public_url.rstrip("/") + SIGNIN_PATH + token


def admin_identity(tenant_id: str) -> Identity:
    """The tenant's admin: an app identity holding every permission of the tenant."""
    app_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"calsync-dashboard:{tenant_id}"))
    return Identity(
        tenant_id=tenant_id,
        type=IdentityType.APP,
        permissions=frozenset(Permission),
        app_id=app_id,
    )


def sign_in_with_link(rt: Runtime, token: str) -> str:
    """Spend a sign-in link; returns the new session's cookie token.

    Raises Unauthenticated for an unknown, used or expired link."""
    with rt.store.transaction() as tx:
        link = signins.get_link(tx, token_hash(token), lock=True)
        now = datetime.now(UTC)
        if link is None or link.used_at is not None or link.expires_at <= now:
            raise Unauthenticated("this sign-in link is not valid any more")
        signins.mark_link_used(tx, link.token_hash, now)
        return browser_sessions.start(tx, admin_identity(link.tenant_id))


def sign_in_with_key(rt: Runtime, api_key: str) -> str:
    """Sign in with an API key; returns the new session's cookie token.

    Raises Unauthenticated for an unknown or revoked key."""
    with rt.store.transaction() as tx:
        identity = authenticate(tx, api_key, None)
        return browser_sessions.start(tx, identity)


def link_usable(rt: Runtime, token: str) -> bool:
    """Whether a sign-in link would still sign in (without spending it)."""
    with rt.store.reading() as tx:
        link = signins.get_link(tx, token_hash(token))
        return link is not None and link.used_at is None and link.expires_at > datetime.now(UTC)
