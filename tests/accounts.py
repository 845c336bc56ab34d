"""Test set-up shared by the integration tests: an app identity, a schedule, and an OAuth
account connected directly through the service (without the browser round trip)."""

from __future__ import annotations

from datetime import datetime

from calsync.domain import Identity, IdentityType, Permission
from calsync.providers.base import OAuthTokens
from calsync.service.connections.accounts import seal_tokens
from calsync.service.connections.connect import upsert_connection
from calsync.service.platform import schedules
from calsync.service.runtime import Runtime
from tests.conftest import random_guid


def app_identity(tenant_id: str = "site-one") -> Identity:
    return Identity(
        tenant_id=tenant_id,
        type=IdentityType.APP,
        permissions=frozenset(Permission),
        app_id=random_guid(),
    )


def new_schedule(rt: Runtime, identity: Identity, time_zone: str = "UTC") -> str:
    schedule_id = random_guid()
    schedules.put_schedule(
        rt,
        identity=identity,
        schedule_id=schedule_id,
        owner_user_id=None,
        owner_name="",
        time_zone=time_zone,
    )
    return schedule_id


def connect_oauth(
    rt: Runtime,
    identity: Identity,
    provider_id: str,
    email: str,
    token: str,
    *,
    schedule_id: str | None = None,
    expires_at: datetime | None = None,
) -> str:
    """A connection holding ``token`` as its access token (no refresh token); returns its id."""
    provider = rt.providers.get(provider_id)
    assert provider is not None, f"provider {provider_id} is not configured"
    return upsert_connection(
        rt,
        tenant_id=identity.tenant_id,
        schedule_id=schedule_id or new_schedule(rt, identity),
        provider=provider,
        email=email,
        secret=seal_tokens(rt, OAuthTokens(token, None, expires_at)),
        account_state={},
        caller_user_id=None,
        caller_app_id=identity.app_id,
    )
