"""Subscribing a schedule to an iCalendar feed (``ics`` providers): the URL is the secret.

The URL is sealed like a password (``Credentials(username="", password=url)``), never logged
and never returned: the connection's account shows only ``feed at <host>``.
"""

from __future__ import annotations

from calsync.domain import ConnectMethod, Identity, ProviderKind
from calsync.errors import FieldViolation, InvalidArgument, NotSupportedByProvider
from calsync.providers.base import Credentials, ProviderError
from calsync.providers.ics.feed import FeedRefused
from calsync.service.connections.accounts import seal_password, unavailable
from calsync.service.connections.connect import check_connect, upsert_connection
from calsync.service.connections.view import to_view
from calsync.service.runtime import Runtime
from calsync.service.views import ConnectionView
from calsync.store import connections as stored_connections


def connect_feed(
    rt: Runtime, *, identity: Identity, schedule_id: str, provider_id: str, url: str
) -> ConnectionView:
    """Fetch the feed once (it must be a VCALENDAR), then create (or repair) the connection."""
    schedule_id = schedule_id.lower()
    owner_user_id, provider = check_connect(
        rt, identity, schedule_id, provider_id, ConnectMethod.CREDENTIALS
    )
    if provider.kind != ProviderKind.ICS:
        raise NotSupportedByProvider("this provider does not subscribe to calendar feeds")
    adapter = rt.providers.adapter(provider)
    try:
        account = adapter.verify(Credentials(username="", password=url))
    except FeedRefused as exc:
        raise InvalidArgument([FieldViolation("url", str(exc), "FORMAT")]) from exc
    except ProviderError as exc:
        raise unavailable(provider.id, exc) from exc
    assert account.credentials is not None
    connection_id = upsert_connection(
        rt,
        tenant_id=identity.tenant_id,
        schedule_id=schedule_id,
        provider=provider,
        email=account.email,
        secret=seal_password(rt, account.credentials),
        account_state=dict(account.state),
        caller_user_id=owner_user_id or identity.user_id,
        caller_app_id=identity.app_id,
    )
    with rt.store.reading() as tx:
        record = stored_connections.get(tx, connection_id)
    assert record is not None
    return to_view(rt, record)
