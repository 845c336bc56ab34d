"""Google Calendar push notifications: ``events.watch`` channels and ``channels.stop``.

A channel watches one calendar's events. Google POSTs an empty-bodied notification to the
channel's https address, the news in ``X-Goog-*`` headers: a ``sync`` message right after the
watch, ``exists`` when the events changed, ``not_exists`` when the calendar is gone; the
channel token (our per-channel secret) comes back in ``X-Goog-Channel-Token``. A notification
only says "look again": the incremental read finds what changed.

The requested lifetime travels as ``params.ttl`` (seconds; Google's default is 604800, one
week) and Google may shorten it: the channel's real end is the ``expiration`` (Unix time in
milliseconds) of the answer. Channels cannot be extended, so ``renew`` returns None and the
caller watches anew before stopping the old channel. Google has no lifecycle notifications:
``lifecycle_address`` is not used.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from calsync.providers.base import (
    AccountRef,
    CalendarGone,
    ProviderError,
    ProviderUnreachable,
    PushChannel,
)
from calsync.providers.google.api import GoogleApi, error_details, error_for, json_object

DEFAULT_TTL = timedelta(seconds=604800)  # what Google grants when no ttl is asked for
_NOT_HTTPS = "push.webhookUrlNotHttps"
_UNAUTHORIZED = frozenset({"push.webhookUrlUnauthorized", "push.webhookUrlNotAuthorized"})

Session = Callable[[AccountRef], AbstractContextManager[GoogleApi]]


class GooglePushChannels:
    """``PushChannels`` for Google Calendar; ``session`` opens an authorised ``GoogleApi``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def watch(
        self,
        account: AccountRef,
        calendar_id: str,
        *,
        address: str,
        secret: str,
        lifecycle_address: str | None,
        expires_at: datetime,
    ) -> PushChannel:
        now = datetime.now(UTC)
        ends = _aware(expires_at)
        ttl = math.ceil((ends - now).total_seconds())
        if ttl < 1:
            raise ValueError("expires_at must lie in the future")
        channel_id = str(uuid.uuid4())
        body = {
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": secret,
            "params": {"ttl": str(ttl)},
        }
        what = f"events.watch of calendar {calendar_id!r}"
        with self._session(account) as api:
            response = api.request(
                "POST", ["calendars", calendar_id, "events", "watch"], what=what, json=body
            )
            if response.status_code != 200:
                raise _watch_error(response, what)
            answer = json_object(response, what)
        return _channel(answer, channel_id, min(ends, now + DEFAULT_TTL), what)

    def renew(
        self, account: AccountRef, channel: PushChannel, *, expires_at: datetime
    ) -> PushChannel | None:
        return None  # Google channels cannot be extended: watch anew, then stop the old one

    def unwatch(self, account: AccountRef, channel: PushChannel) -> None:
        what = f"channels.stop of channel {channel.id!r}"
        body = {"id": channel.id, "resourceId": channel.resource_id}
        with self._session(account) as api:
            response = api.request("POST", ["channels", "stop"], what=what, json=body)
        if response.status_code in (200, 204, 404):  # 404: unknown, stopped or expired already
            return
        error = error_for(response, what, False, False)
        if isinstance(error, CalendarGone):  # a channel is no calendar: say what happened
            raise ProviderError(f"{what}: HTTP {response.status_code}: Google refused to stop it")
        raise error


def _watch_error(response: httpx.Response, what: str) -> ProviderError:
    reasons, _ = error_details(response)
    where = f"{what}: HTTP {response.status_code}"
    if _NOT_HTTPS in reasons:
        return ProviderError(
            f"{where} ({_NOT_HTTPS}): Google delivers notifications only to an https address"
        )
    if reasons & _UNAUTHORIZED:
        reason = sorted(reasons & _UNAUTHORIZED)[0]
        return ProviderError(
            f"{where} ({reason}): Google refused the notification address: its domain is not "
            "authorised for this Google Cloud project"
        )
    webhook = sorted(r for r in reasons if r.startswith("push."))
    if webhook:
        return ProviderError(
            f"{where} ({', '.join(webhook)}): Google refused the notification address"
        )
    return error_for(response, what, False, False)


def _channel(
    answer: Mapping[str, Any], channel_id: str, fallback: datetime, what: str
) -> PushChannel:
    """The channel an ``events.watch`` answer describes."""
    answered_id = answer.get("id")
    if isinstance(answered_id, str) and answered_id:
        channel_id = answered_id
    resource_id = answer.get("resourceId")
    if not isinstance(resource_id, str) or not resource_id:
        raise ProviderUnreachable(f"{what}: the answer names no resourceId")
    expiration = answer.get("expiration")
    if expiration is None:
        return PushChannel(channel_id, resource_id, fallback)
    if isinstance(expiration, bool) or not isinstance(expiration, str | int):
        raise ProviderUnreachable(f"{what}: the answer's expiration is not a number")
    try:
        milliseconds = int(expiration)
        expires = datetime.fromtimestamp(milliseconds / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        raise ProviderUnreachable(f"{what}: the answer's expiration is not a number") from None
    return PushChannel(channel_id, resource_id, expires)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
