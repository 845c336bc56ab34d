"""The bridge between stored connections and provider accounts: secrets in, AccountRef out."""

from __future__ import annotations

import json

from calsync.errors import ProviderUnavailable
from calsync.providers.base import (
    AccountRef,
    Credentials,
    ProviderError,
    RateLimitedByProvider,
)
from calsync.providers.registry import ProviderConfig
from calsync.service.runtime import Runtime
from calsync.store.models import Connection


def seal(rt: Runtime, account: AccountRef) -> bytes:
    """The encrypted form of an account's credentials, for ``Connection.secret``."""
    creds = account.credentials
    return rt.secrets.encrypt(json.dumps({"u": creds.username, "p": creds.password}))


def account_for(rt: Runtime, row: Connection) -> AccountRef:
    """The AccountRef of a stored connection. ValueError if it holds no usable secret."""
    if row.secret is None:
        raise ValueError("connection has no stored credentials")
    data = json.loads(rt.secrets.decrypt(row.secret))
    state = {str(k): str(v) for k, v in (row.account_state or {}).items()}
    return AccountRef(
        email=row.external_account_email or data["u"],
        credentials=Credentials(username=data["u"], password=data["p"]),
        state=state,
    )


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
