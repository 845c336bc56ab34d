"""Connect By OAuth (spec 4.4, 5.2): the authorization request and the callback.

``state`` is 256 random bits handed to the browser; only its SHA-256 is stored, with the
pending attempt. An attempt is used at most once and expires; a callback whose state is
unknown or replayed never creates a connection and never redirects anywhere.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import update

from calsync.domain import ConnectMethod, Identity
from calsync.errors import FieldViolation, InvalidArgument
from calsync.providers.base import (
    AccountRef,
    OAuthFailure,
    OAuthTokens,
    ProviderError,
    UnsupportedAccount,
)
from calsync.providers.oauth2 import code_challenge, new_code_verifier
from calsync.service.connections.accounts import seal_tokens
from calsync.service.connections.connect import check_connect, upsert_connection
from calsync.service.runtime import Runtime
from calsync.store.db import transaction
from calsync.store.models import OAuthAttempt, utcnow

log = logging.getLogger(__name__)
CALLBACK_PATH = "/oauth/callback"
# Authorization-server errors meaning "this kind of account cannot be connected".
UNSUPPORTED_ERRORS = frozenset({"unauthorized_client", "consent_required", "unsupported_account"})


@dataclass(frozen=True)
class CallbackOutcome:
    """Either a redirect to the platform (``location``) or a plain page (``status``, ``text``)."""

    location: str | None = None
    status: int = 302
    text: str = ""


def callback_url(rt: Runtime) -> str:
    return rt.settings.public_url.rstrip("/") + CALLBACK_PATH


def start(
    rt: Runtime, *, identity: Identity, schedule_id: str, provider_id: str, redirect_url: str
) -> str:
    """Record a pending attempt and return the provider's authorization URL."""
    _check_redirect(rt, identity.tenant_id, redirect_url)
    _, provider = check_connect(rt, identity, schedule_id, provider_id, ConnectMethod.OAUTH)
    client = rt.providers.oauth_client(provider)
    state, verifier = secrets.token_urlsafe(32), new_code_verifier()
    now = utcnow()
    with transaction(rt.db) as session:
        session.add(
            OAuthAttempt(
                state_hash=_hash(state),
                tenant_id=identity.tenant_id,
                schedule_id=schedule_id,
                provider_id=provider.id,
                redirect_url=redirect_url,
                caller_user_id=identity.user_id,
                caller_app_id=identity.app_id,
                code_verifier=rt.secrets.encrypt(verifier),
                created_at=now,
                expires_at=now + timedelta(seconds=rt.settings.oauth_state_ttl_seconds),
            )
        )
    return client.authorization_url(
        state=state, challenge=code_challenge(verifier), redirect_uri=callback_url(rt)
    )


def _check_redirect(rt: Runtime, tenant_id: str, redirect_url: str) -> None:
    allowed = rt.settings.redirect_origins()
    if allowed is None:
        return
    parts = urlsplit(redirect_url)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    if origin not in allowed.get(tenant_id, []) + allowed.get("*", []):
        raise InvalidArgument(
            [FieldViolation("redirectUrl", "this origin is not allowed for OAuth redirects")]
        )


def complete(rt: Runtime, params: dict[str, str]) -> CallbackOutcome:
    """Handle the provider's redirect back to calsync."""
    attempt = _claim(rt, params.get("state", ""))
    if attempt is None:
        return CallbackOutcome(status=400, text="This sign-in link is invalid or was already used.")
    if attempt.expires_at <= utcnow():
        return _back(attempt, error="internal")
    error = params.get("error")
    if error:
        kind = (
            "reject"
            if error == "access_denied"
            else ("unsupported" if error in UNSUPPORTED_ERRORS else "internal")
        )
        return _back(attempt, error=kind)
    try:
        connection_id = _connect(rt, attempt, params.get("code", ""))
    except UnsupportedAccount as exc:
        log.info("oauth account unsupported", extra={"reason": str(exc)})
        return _back(attempt, error="unsupported")
    except OAuthFailure as exc:
        kind = "unsupported" if exc.error in UNSUPPORTED_ERRORS else "internal"
        log.warning("oauth callback failed", extra={"reason": exc.error})
        return _back(attempt, error=kind)
    except Exception as exc:  # token endpoint down, bad answers, storage: never a half result
        log.warning("oauth callback failed", extra={"reason": type(exc).__name__})
        return _back(attempt, error="internal")
    return _back(attempt, connectionId=connection_id)


def _claim(rt: Runtime, state: str) -> OAuthAttempt | None:
    """The attempt for ``state``, marked used in the same statement (single use)."""
    if not state or len(state) > 200:
        return None
    state_hash = _hash(state)
    with transaction(rt.db) as session:
        claimed = session.execute(
            update(OAuthAttempt)
            .where(OAuthAttempt.state_hash == state_hash, OAuthAttempt.used_at.is_(None))
            .values(used_at=utcnow())
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        attempt = session.get(OAuthAttempt, state_hash)
        if attempt is not None:
            session.expunge(attempt)
        return attempt


def _connect(rt: Runtime, attempt: OAuthAttempt, code: str) -> str:
    if not code:
        raise OAuthFailure("invalid_request", "the callback carried no code")
    provider = rt.providers.get(attempt.provider_id)
    if provider is None:
        raise OAuthFailure("server_error", "provider no longer configured")
    client = rt.providers.oauth_client(provider)
    tokens: OAuthTokens = client.exchange_code(
        code=code,
        verifier=rt.secrets.decrypt(attempt.code_verifier),
        redirect_uri=callback_url(rt),
    )
    email = client.account_email(tokens)
    adapter = rt.providers.adapter(provider)
    try:
        adapter.list_calendars(AccountRef(email=email, access_token=tokens.access_token))
    except UnsupportedAccount:
        client.revoke(tokens.refresh_token or tokens.access_token)
        raise
    except ProviderError as exc:
        raise OAuthFailure("server_error", f"calendar service not readable: {exc}") from exc
    return upsert_connection(
        rt,
        tenant_id=attempt.tenant_id,
        schedule_id=attempt.schedule_id,
        provider=provider,
        email=email,
        secret=seal_tokens(rt, tokens),
        account_state={},
        caller_user_id=attempt.caller_user_id,
        caller_app_id=attempt.caller_app_id,
    )


def _back(attempt: OAuthAttempt, **params: str) -> CallbackOutcome:
    return CallbackOutcome(location=with_query(attempt.redirect_url, params))


def with_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` added to its query; existing parameters and fragment are kept."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()
