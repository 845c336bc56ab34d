"""The bridge between stored connections and provider accounts: sealed secrets in, a usable
``AccountRef`` out, with OAuth access tokens refreshed one at a time per connection."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from calsync.domain import ConnectionStatus, lifecycle
from calsync.errors import ProviderUnavailable
from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    Credentials,
    InvalidGrant,
    OAuthTokens,
    ProviderError,
    RateLimitedByProvider,
)
from calsync.providers.registry import ProviderConfig
from calsync.service.runtime import Runtime
from calsync.store.connections import lifecycle_of, set_lifecycle
from calsync.store.db import transaction
from calsync.store.models import Connection, utcnow
from calsync.store.rows import lock_active_connection

REFRESH_MARGIN = timedelta(seconds=60)
T = TypeVar("T")


def seal_password(rt: Runtime, credentials: Credentials) -> bytes:
    payload = {"type": "password", "u": credentials.username, "p": credentials.password}
    return rt.secrets.encrypt(json.dumps(payload))


def seal_tokens(rt: Runtime, tokens: OAuthTokens) -> bytes:
    payload = {
        "type": "oauth",
        "at": tokens.access_token,
        "rt": tokens.refresh_token,
        "exp": tokens.expires_at.isoformat() if tokens.expires_at else None,
        "scope": tokens.scope,
    }
    return rt.secrets.encrypt(json.dumps(payload))


def unseal(rt: Runtime, secret: bytes | None) -> Credentials | OAuthTokens:
    """The stored secret. ValueError when there is none (disconnected) or it is unreadable."""
    if secret is None:
        raise ValueError("connection has no stored secret")
    data: dict[str, Any] = json.loads(rt.secrets.decrypt(secret))
    if data.get("type", "password") == "password":
        return Credentials(username=data["u"], password=data["p"])
    return OAuthTokens(
        access_token=data["at"],
        refresh_token=data.get("rt"),
        expires_at=datetime.fromisoformat(data["exp"]) if data.get("exp") else None,
        scope=data.get("scope") or "",
    )


def account_for(rt: Runtime, row: Connection, *, rejected_token: str | None = None) -> AccountRef:
    """The AccountRef of a stored connection, with a current access token for OAuth ones.

    ``rejected_token``: the provider just refused this access token, so refresh unless another
    thread already did. Raises AuthRejected (InvalidGrant when the refresh token is refused,
    after marking the connection ERROR / TOKEN_REVOKED).
    """
    try:
        secret = unseal(rt, row.secret)
    except ValueError as exc:
        raise AuthRejected("no usable stored credentials") from exc
    state = {str(k): str(v) for k, v in (row.account_state or {}).items()}
    email = row.external_account_email or ""
    if isinstance(secret, Credentials):
        return AccountRef(email=email or secret.username, credentials=secret, state=state)
    token = current_access_token(rt, row.id, rejected_token=rejected_token)
    return AccountRef(email=email, state=state, access_token=token)


def with_account(rt: Runtime, row: Connection, call: Callable[[AccountRef], T]) -> T:
    """Run a provider call with the connection's account; an OAuth access token the provider
    refuses is refreshed once and the call retried. AuthRejected if it is refused again."""
    account = account_for(rt, row)
    try:
        return call(account)
    except AuthRejected:
        if account.access_token is None:
            raise
    return call(account_for(rt, row, rejected_token=account.access_token))


def current_access_token(rt: Runtime, connection_id: str, *, rejected_token: str | None) -> str:
    """A valid access token, refreshing it when it expires within a minute or was rejected.

    One refresh at a time per connection: a process lock, and on PostgreSQL a row lock held
    across the token request so other processes wait and then see the rotated tokens.
    """
    revoked: InvalidGrant | None = None
    with rt.lock("token", connection_id), transaction(rt.db) as session:
        row = lock_active_connection(session, connection_id)
        if row is None or row.secret is None:
            raise AuthRejected("the connection holds no tokens")
        tokens = unseal(rt, row.secret)
        if not isinstance(tokens, OAuthTokens):
            raise AuthRejected("the connection holds no OAuth tokens")
        if _still_good(tokens, rejected_token):
            return tokens.access_token
        provider = provider_for(rt, row)
        if not tokens.refresh_token:
            revoked = InvalidGrant("no refresh token was issued")
        else:
            try:
                fresh = rt.providers.oauth_client(provider).refresh(tokens.refresh_token)
            except InvalidGrant as exc:
                revoked = exc
            else:
                row.secret = seal_tokens(rt, fresh)
                row.updated_at = utcnow()
                return fresh.access_token
        mark_token_revoked(row, str(revoked))
    raise revoked


def _still_good(tokens: OAuthTokens, rejected_token: str | None) -> bool:
    if rejected_token is not None and rejected_token == tokens.access_token:
        return False
    if rejected_token is not None:
        return True  # someone refreshed since the rejected token was handed out
    return tokens.expires_at is None or tokens.expires_at > utcnow() + REFRESH_MARGIN


def mark_token_revoked(row: Connection, detail: str) -> None:
    """ERROR / TOKEN_REVOKED: calls to the provider stop until the account is connected again."""
    if row.status != ConnectionStatus.DISCONNECTED.value:
        set_lifecycle(row, lifecycle.token_revoked(lifecycle_of(row), detail))
        row.updated_at = utcnow()


def record_token_revoked(rt: Runtime, connection_id: str, detail: str) -> None:
    with transaction(rt.db) as session:
        row = lock_active_connection(session, connection_id)
        if row is not None:
            mark_token_revoked(row, detail)


def revoke_later(rt: Runtime, provider_id: str, secret: bytes | None) -> None:
    """Best-effort revocation of a forgotten connection's OAuth grant, off the request path."""
    provider = rt.providers.get(provider_id)
    try:
        tokens = unseal(rt, secret)
    except ValueError:
        return
    if provider is None or not isinstance(tokens, OAuthTokens):
        return
    client = rt.providers.oauth_client(provider)
    rt.submit(lambda: client.revoke(tokens.refresh_token or tokens.access_token))


def provider_for(rt: Runtime, row: Connection) -> ProviderConfig:
    provider = rt.providers.get(row.provider_id)
    if provider is None:
        raise ProviderUnavailable(
            "the connection's provider is no longer configured",
            data={"failedProviderIds": [row.provider_id]},
        )
    return provider


def unavailable(provider_id: str, exc: ProviderError) -> ProviderUnavailable:
    """The caller-facing form of a provider outage (never carries the provider's secrets)."""
    data: dict[str, object] = {"failedProviderIds": [provider_id]}
    if isinstance(exc, RateLimitedByProvider) and exc.retry_after is not None:
        data["retryAfterSeconds"] = exc.retry_after
    return ProviderUnavailable(f"the external calendar server could not be read: {exc}", data=data)
