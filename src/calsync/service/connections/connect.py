"""Connecting an account to a schedule: checks, credential verification, create or repair."""

from __future__ import annotations

import secrets
import string

from sqlalchemy import func, select

from calsync.domain import (
    ConnectionStatus,
    ConnectMethod,
    Identity,
    Permission,
    ProviderKind,
    lifecycle,
)
from calsync.errors import (
    BadCredentials,
    NotFound,
    NotSupportedByProvider,
    PermissionDenied,
)
from calsync.providers.base import AuthRejected, Credentials, ProviderError
from calsync.providers.registry import ProviderConfig
from calsync.service.access.auth import owns, require_any
from calsync.service.connections import sync_config as sc
from calsync.service.connections.accounts import (
    seal_password,
    unavailable,
)
from calsync.service.connections.view import to_view
from calsync.service.runtime import Runtime
from calsync.service.views import ConnectionView
from calsync.store.connections import lifecycle_of, set_lifecycle
from calsync.store.db import transaction
from calsync.store.models import (
    Connection,
    Schedule,
    utcnow,
)

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_connection_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(40))


def connect_by_credentials(
    rt: Runtime,
    *,
    identity: Identity,
    schedule_id: str,
    provider_id: str,
    email: str,
    password: str,
) -> ConnectionView:
    """Verify the credentials at the provider, then create (or repair) the connection.

    Order of checks: permission and ownership, provider support, provider login. Nothing is
    stored unless the provider accepted the credentials.
    """
    schedule_id = schedule_id.lower()
    owner_user_id, provider = check_connect(
        rt, identity, schedule_id, provider_id, ConnectMethod.CREDENTIALS
    )

    if provider.kind == ProviderKind.ICS:
        raise NotSupportedByProvider("a calendar feed is connected with connectFeed")
    adapter = rt.providers.adapter(provider)
    credentials = Credentials(username=email, password=password)
    try:
        account = adapter.verify(credentials)
    except AuthRejected as exc:
        raise BadCredentials(
            "the external calendar server rejected the e-mail or password"
        ) from exc
    except ProviderError as exc:
        raise unavailable(provider.id, exc) from exc

    connection_id = upsert_connection(
        rt,
        tenant_id=identity.tenant_id,
        schedule_id=schedule_id,
        provider=provider,
        email=email,
        secret=seal_password(rt, credentials),
        account_state=dict(account.state),
        caller_user_id=owner_user_id or identity.user_id,
        caller_app_id=identity.app_id,
    )
    with transaction(rt.db) as session:
        row = session.get(Connection, connection_id)
        assert row is not None
        return to_view(rt, row)


def upsert_connection(
    rt: Runtime,
    *,
    tenant_id: str,
    schedule_id: str,
    provider: ProviderConfig,
    email: str,
    secret: bytes,
    account_state: dict[str, str],
    caller_user_id: str | None,
    caller_app_id: str | None,
) -> str:
    """Create the connection, or repair the active one of the same (schedule, provider,
    account) in place; then ask for a first sync. Returns the connection id."""
    with transaction(rt.db) as session:
        schedule = session.get(Schedule, (tenant_id, schedule_id))
        if schedule is None:
            raise NotFound(f"schedule {schedule_id} not found")
        existing = session.scalars(
            select(Connection).where(
                Connection.tenant_id == tenant_id,
                Connection.schedule_id == schedule_id,
                Connection.provider_id == provider.id,
                func.lower(Connection.external_account_email) == email.lower(),
                Connection.status != ConnectionStatus.DISCONNECTED.value,
            )
        ).first()
        now = utcnow()
        if existing is not None:
            row = existing
            state = lifecycle.repaired(lifecycle_of(row), now)
        else:
            row = Connection(
                id=new_connection_id(),
                tenant_id=tenant_id,
                provider_id=provider.id,
                schedule_id=schedule_id,
                user_id=schedule.owner_user_id or caller_user_id,
                app_id=caller_app_id,
                sync_config=sc.to_json(sc.default_for(provider.features)),
                created_at=now,
            )
            state = lifecycle.new(now)
            session.add(row)
        row.external_account_email = email
        row.secret = secret
        row.account_state = account_state
        row.updated_at = now
        # The (new) account gets the schedule's sessions.
        set_lifecycle(row, lifecycle.export_due(state, now))
        connection_id = row.id
    rt.calendar_cache.pop(connection_id, None)
    rt.work_available.set()
    return connection_id


def check_connect(
    rt: Runtime, identity: Identity, schedule_id: str, provider_id: str, method: ConnectMethod
) -> tuple[str | None, ProviderConfig]:
    """Permission, schedule existence and ownership (spec 3.3), provider and its support for
    ``method``. Returns the schedule owner's user id and the provider."""
    require_any(identity, Permission.MANAGE_OWN_CONNECTIONS, Permission.MANAGE_ALL_CONNECTIONS)
    with transaction(rt.db) as session:
        schedule = session.get(Schedule, (identity.tenant_id, schedule_id))
        if schedule is None:
            raise NotFound(f"schedule {schedule_id} not found")
        if not identity.has(Permission.MANAGE_ALL_CONNECTIONS) and not owns(
            identity, schedule.owner_user_id
        ):
            raise PermissionDenied("the caller does not own this schedule")
        owner_user_id = schedule.owner_user_id
    provider = rt.providers.get(provider_id)
    if provider is None:
        raise NotFound(f"provider {provider_id} not found")
    if method not in provider.features.connect_methods:
        raise NotSupportedByProvider(
            f"this provider does not support connecting by {method.value.lower()}"
        )
    return owner_user_id, provider
