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

from sqlalchemy import delete, select, update

from calsync.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied
from calsync.providers.base import (
    AccountRef,
    CalendarProvider,
    ProviderError,
    PushChannel,
    PushChannels,
)
from calsync.providers.kinds import (
    MalformedNotification,
    Notification,
    PushRequest,
    Signal,
    UnknownPushStream,
)
from calsync.providers.registry import ProviderConfig, push_receiver
from calsync.service.connections.accounts import account_for, with_account
from calsync.service.runtime import Runtime
from calsync.store.connections import mark_notified
from calsync.store.db import transaction
from calsync.store.models import Connection, ConnectionCalendar, PushChannelRow, utcnow

__all__ = [
    "PUSH_PATH",
    "Addresses",
    "PushReceipt",
    "PushRequest",
    "addresses",
    "ensure_channels",
    "receive",
    "request_sync",
    "stop_channels_later",
]

log = logging.getLogger(__name__)
PUSH_PATH = "/push/{kind}"  # where a kind's notifications arrive; streams below it


@dataclass(frozen=True)
class Addresses:
    notifications: str
    lifecycle: str | None


def addresses(rt: Runtime, provider: ProviderConfig) -> Addresses:
    """Where the provider's channels deliver: ``/push/{kind}``, and its lifecycle stream."""
    notifications = rt.settings.public_url.rstrip("/") + PUSH_PATH.format(kind=provider.kind.value)
    receiver = push_receiver(provider.kind.value)
    stream = receiver.lifecycle_stream if receiver is not None else None
    return Addresses(notifications, f"{notifications}/{stream}" if stream else None)


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


@dataclass(frozen=True)
class PushReceipt:
    """How to answer a delivery: echo ``handshake`` as text when set, else acknowledge with
    the provider's ``acknowledge_status``."""

    handshake: str | None
    acknowledge_status: int


def receive(rt: Runtime, kind: str, request: PushRequest) -> PushReceipt:
    """A delivery to ``/push/{kind}``. Only a channel we created, carrying its secret, makes
    its connection due. NotFound: no such kind or stream; InvalidArgument: unreadable;
    PermissionDenied: a provider that wants forged notifications refused sent one."""
    receiver = push_receiver(kind)
    if receiver is None:
        raise NotFound(f"no push notifications for {kind!r}")
    try:
        delivery = receiver.parse(request)
    except UnknownPushStream as exc:
        raise NotFound(str(exc)) from None
    except MalformedNotification as exc:
        raise InvalidArgument([FieldViolation("body", str(exc), "FORMAT")]) from None
    receipt = PushReceipt(delivery.handshake, receiver.acknowledge_status)
    if delivery.handshake is not None:
        return receipt
    for notification in delivery.notifications:
        connection_id = _verified(rt, notification.channel_id, notification.secret)
        if connection_id is not None:
            _act_on(rt, notification, connection_id)
        elif delivery.strict:
            raise PermissionDenied("the notification is not from a channel calsync created")
    return receipt


def _act_on(rt: Runtime, notification: Notification, connection_id: str) -> None:
    """Removed: forget the channel (the next sync subscribes again); reauthorize: renew it at
    the next sync; either way, and on a change, sync."""
    channel_id = notification.channel_id
    if notification.signal is Signal.HELLO:
        return
    if notification.signal is Signal.REMOVED:
        with transaction(rt.db) as session:
            session.execute(delete(PushChannelRow).where(PushChannelRow.channel_id == channel_id))
    elif notification.signal is Signal.REAUTHORIZE:
        with transaction(rt.db) as session:
            session.execute(
                update(PushChannelRow)
                .where(PushChannelRow.channel_id == channel_id)
                .values(expires_at=utcnow())
            )
    request_sync(rt, connection_id)


def request_sync(rt: Runtime, connection_id: str) -> None:
    """``lifecycle.notified``: due now (the worker, here or elsewhere, picks it up at once)."""
    now = utcnow()
    with rt.store.transaction() as tx:
        mark_notified(tx, connection_id, now)
    rt.heard_of_change(connection_id, now)
    rt.work_available.set()


def _verified(rt: Runtime, channel_id: str, secret: str) -> str | None:
    if not channel_id or not secret:
        return None
    with rt.db() as session:
        channel = session.get(PushChannelRow, channel_id)
        if channel is None or not hmac.compare_digest(channel.secret_hash, _hash(secret)):
            return None
        return channel.connection_id


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
