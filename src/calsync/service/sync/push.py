"""Push: provider change notifications make a connection due at once (polling stays the
safety net). Channels are created and renewed after successful syncs, checked on every
notification with a per-channel secret (only its hash is stored), and stopped on disconnect.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update

from calsync.domain import ProviderKind
from calsync.providers.base import (
    AccountRef,
    CalendarProvider,
    ProviderError,
    PushChannel,
    PushChannels,
)
from calsync.providers.registry import ProviderConfig
from calsync.service.connections.accounts import account_for, with_account
from calsync.service.runtime import Runtime
from calsync.store.db import transaction
from calsync.store.models import Connection, ConnectionCalendar, PushChannelRow, utcnow

log = logging.getLogger(__name__)
GOOGLE_PATH = "/push/google"
GRAPH_PATH = "/push/microsoft"
GRAPH_LIFECYCLE_PATH = "/push/microsoft/lifecycle"


@dataclass(frozen=True)
class Addresses:
    notifications: str
    lifecycle: str | None


def addresses(rt: Runtime, provider: ProviderConfig) -> Addresses:
    base = rt.settings.public_url.rstrip("/")
    if provider.kind is ProviderKind.GOOGLE:
        return Addresses(base + GOOGLE_PATH, None)
    return Addresses(base + GRAPH_PATH, base + GRAPH_LIFECYCLE_PATH)


def ensure_channels(rt: Runtime, connection_id: str) -> None:
    """Watch every imported calendar of the connection, renew channels that end soon, stop
    those of calendars no longer imported. Failures are logged: polling still covers them."""
    if not rt.settings.push_enabled():
        return
    with rt.db() as session:
        row = session.get(Connection, connection_id)
        if row is None or row.secret is None:
            return
        provider = rt.providers.get(row.provider_id)
        adapter = rt.providers.adapter(provider) if provider else None
        if provider is None or adapter is None or adapter.push is None:
            return
        imported = set(
            session.scalars(
                select(ConnectionCalendar.calendar_id).where(
                    ConnectionCalendar.connection_id == connection_id
                )
            )
        )
        channels = list(
            session.scalars(
                select(PushChannelRow).where(PushChannelRow.connection_id == connection_id)
            )
        )
    push = adapter.push
    renew_by = utcnow() + timedelta(seconds=rt.settings.push_renew_before_seconds)
    watched = {c.calendar_id for c in channels if c.calendar_id in imported}
    try:
        for channel in channels:
            if channel.calendar_id not in imported:
                _unwatch(rt, row, push, channel)
            elif channel.expires_at <= renew_by:
                _renew(rt, row, provider, adapter, push, channel)
        for calendar_id in sorted(imported - watched):
            _watch(rt, row, provider, push, calendar_id)
    except ProviderError as exc:
        log.warning(
            "push channel upkeep failed",
            extra={"connection_id": connection_id, "reason": str(exc)[:200]},
        )


def _watch(
    rt: Runtime, row: Connection, provider: ProviderConfig, push: PushChannels, calendar_id: str
) -> None:
    secret = secrets.token_urlsafe(32)
    where = addresses(rt, provider)
    expires = utcnow() + timedelta(seconds=rt.settings.push_channel_ttl_seconds)

    def watch(account: AccountRef) -> PushChannel:
        return push.watch(
            account,
            calendar_id,
            address=where.notifications,
            secret=secret,
            lifecycle_address=where.lifecycle,
            expires_at=expires,
        )

    channel = with_account(rt, row, watch)
    with transaction(rt.db) as session:
        session.add(
            PushChannelRow(
                channel_id=channel.id,
                connection_id=row.id,
                calendar_id=calendar_id,
                resource_id=channel.resource_id,
                secret_hash=_hash(secret),
                expires_at=channel.expires_at,
            )
        )


def _renew(
    rt: Runtime,
    row: Connection,
    provider: ProviderConfig,
    adapter: CalendarProvider,
    push: PushChannels,
    channel: PushChannelRow,
) -> None:
    expires = utcnow() + timedelta(seconds=rt.settings.push_channel_ttl_seconds)
    current = PushChannel(channel.channel_id, channel.resource_id, channel.expires_at)
    renewed = with_account(rt, row, lambda a: push.renew(a, current, expires_at=expires))
    if renewed is not None:
        with transaction(rt.db) as session:
            session.execute(
                update(PushChannelRow)
                .where(PushChannelRow.channel_id == channel.channel_id)
                .values(expires_at=renewed.expires_at)
            )
        return
    _watch(rt, row, provider, push, channel.calendar_id)  # a new channel first: no gap
    _unwatch(rt, row, push, channel)


def _unwatch(rt: Runtime, row: Connection, push: PushChannels, channel: PushChannelRow) -> None:
    current = PushChannel(channel.channel_id, channel.resource_id, channel.expires_at)
    try:
        with_account(rt, row, lambda a: push.unwatch(a, current))
    finally:
        with transaction(rt.db) as session:
            session.execute(
                delete(PushChannelRow).where(PushChannelRow.channel_id == channel.channel_id)
            )


def stop_channels_later(rt: Runtime, row: Connection) -> None:
    """On disconnect: stop the connection's channels at the provider, off the request path.
    Must run before the stored tokens are forgotten (it captures the account now)."""
    provider = rt.providers.get(row.provider_id)
    adapter = rt.providers.adapter(provider) if provider else None
    if adapter is None or adapter.push is None:
        return
    with rt.db() as session:
        channels = [
            PushChannel(c.channel_id, c.resource_id, c.expires_at)
            for c in session.scalars(
                select(PushChannelRow).where(PushChannelRow.connection_id == row.id)
            )
        ]
    if not channels:
        return
    push = adapter.push
    try:
        account = account_for(rt, row)
    except ProviderError:
        return

    def stop_all() -> None:
        for channel in channels:
            try:
                push.unwatch(account, channel)
            except ProviderError as exc:
                log.info("could not stop a push channel", extra={"reason": str(exc)[:200]})

    rt.submit(stop_all)


def on_google(rt: Runtime, headers: dict[str, str]) -> int:
    """A Google notification; the answer's status. Only a channel we created, carrying its
    token, makes the connection due."""
    channel_id = headers.get("x-goog-channel-id", "")
    token = headers.get("x-goog-channel-token", "")
    state = headers.get("x-goog-resource-state", "")
    connection_id = _verified(rt, channel_id, token)
    if connection_id is None:
        return 403
    if state in ("exists", "not_exists"):
        request_sync(rt, connection_id)
    return 200


def on_graph(rt: Runtime, body: dict[str, Any]) -> None:
    """Graph change notifications (a batch); unverifiable ones are ignored."""
    for item in _items(body):
        connection_id = _verified(
            rt, str(item.get("subscriptionId", "")), str(item.get("clientState", ""))
        )
        if connection_id is not None:
            request_sync(rt, connection_id)


def on_graph_lifecycle(rt: Runtime, body: dict[str, Any]) -> None:
    """reauthorizationRequired: renew soon; subscriptionRemoved: forget it (the next sync
    subscribes again); missed: notifications were lost, so sync."""
    for item in _items(body):
        channel_id = str(item.get("subscriptionId", ""))
        connection_id = _verified(rt, channel_id, str(item.get("clientState", "")))
        if connection_id is None:
            continue
        event = item.get("lifecycleEvent")
        with transaction(rt.db) as session:
            if event == "subscriptionRemoved":
                session.execute(
                    delete(PushChannelRow).where(PushChannelRow.channel_id == channel_id)
                )
            elif event == "reauthorizationRequired":
                session.execute(
                    update(PushChannelRow)
                    .where(PushChannelRow.channel_id == channel_id)
                    .values(expires_at=utcnow())
                )
        request_sync(rt, connection_id)


def request_sync(rt: Runtime, connection_id: str) -> None:
    """Make a connection due now (the worker, here or elsewhere, picks it up at once)."""
    now = utcnow()
    with transaction(rt.db) as session:
        session.execute(
            update(Connection)
            .where(Connection.id == connection_id)
            .values(sync_requested_at=now, next_sync_at=now)
        )
    rt.work_available.set()


def _verified(rt: Runtime, channel_id: str, secret: str) -> str | None:
    if not channel_id or not secret:
        return None
    with rt.db() as session:
        channel = session.get(PushChannelRow, channel_id)
        if channel is None or not hmac.compare_digest(channel.secret_hash, _hash(secret)):
            return None
        return channel.connection_id


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("value")
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
