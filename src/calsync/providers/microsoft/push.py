"""Microsoft Graph change notifications: webhook subscriptions on a calendar's events.

``watch`` creates a subscription (``POST /subscriptions``) on ``me/calendars/{id}/events`` for
``created,updated,deleted`` with the caller's secret as ``clientState``. Before answering, Graph
POSTs ``?validationToken=...`` to the notification URL (and to the lifecycle URL when given);
the receiver must echo the token as text/plain with 200 within 10 seconds, otherwise Graph
answers 400 and no subscription exists. The create request therefore gets a longer timeout.

Outlook event subscriptions live at most 4230 minutes: the requested expiration is capped at
now + ``MAX_LIFETIME`` - ``LIFETIME_MARGIN`` (clock skew, request time), and the returned
``PushChannel.expires_at`` is what Graph answered. ``renew`` PATCHes ``expirationDateTime``
(capped the same way); a subscription Graph no longer knows (404: deleted, expired, removed)
gives None and the caller subscribes anew. ``unwatch`` DELETEs; 404 is fine.

Errors as in ``graphhttp`` (401 AuthRejected, 429 / 503 + Retry-After RateLimitedByProvider,
5xx and network failures ProviderUnreachable); a 404 / malformed id when subscribing ->
CalendarGone; 403 and other 400s (a failed validation handshake, an http notification URL, an
expiration Graph refuses) -> ProviderError naming Graph's code and message with URLs, the
secret and the token removed. Answers without a subscription id or expiration ->
ProviderUnreachable (a created subscription is then left to expire).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from calsync.providers.base import (
    AccountRef,
    CalendarGone,
    ProviderError,
    ProviderUnreachable,
    PushChannel,
)
from calsync.providers.microsoft.graphhttp import Errors, GraphHttp, error, error_detail

MAX_LIFETIME = timedelta(minutes=4230)  # Outlook message / event / contact subscriptions
LIFETIME_MARGIN = timedelta(minutes=5)
CHANGE_TYPES = "created,updated,deleted"
MAX_CLIENT_STATE = 255
VALIDATION_ALLOWANCE = 15.0  # seconds added to the create timeout: Graph validates first

SUBSCRIBING = Errors(CalendarGone, ProviderError)
SUBSCRIPTION = Errors(None, ProviderError)  # renew / delete: a 404 is an answer

Session = Callable[[AccountRef], AbstractContextManager[GraphHttp]]

_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S*", re.IGNORECASE)
_MESSAGE_LIMIT = 200
_HIDE_IN_PLACE = 8  # secrets at least this long are replaced within Graph's message


def _utcnow() -> datetime:
    return datetime.now(UTC)


def subscription_resource(calendar_id: str) -> str:
    """The ``resource`` of a subscription to one calendar's events."""
    return f"me/calendars/{quote(calendar_id, safe='=')}/events"


class GraphPushChannels:
    """``PushChannels`` over Graph webhook subscriptions (``/subscriptions``)."""

    def __init__(
        self,
        session: Session,
        *,
        timeout: float = 10.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._session = session
        self._timeout = timeout
        self._clock = clock

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
        if not calendar_id:
            raise ValueError("a calendar id is needed")
        if len(secret) > MAX_CLIENT_STATE:
            raise ValueError(f"the secret (Graph clientState) is at most {MAX_CLIENT_STATE} chars")
        body: dict[str, Any] = {
            "changeType": CHANGE_TYPES,
            "notificationUrl": address,
        }
        if lifecycle_address is not None:
            body["lifecycleNotificationUrl"] = lifecycle_address
        body.update(
            resource=subscription_resource(calendar_id),
            expirationDateTime=_iso(self.capped(expires_at)),
            clientState=secret,
        )
        hidden = (secret, address, lifecycle_address, account.access_token)
        with self._session(account) as graph:
            url = graph.url("subscriptions")
            what = "subscription"
            timeout = self._timeout + VALIDATION_ALLOWANCE
            response = graph.send("POST", url, what, body=body, timeout=timeout)
            where = graph.where(url, what)
            if response.status_code in (200, 201):
                return _channel(response, where, None)
            raise _failure(response, where, SUBSCRIBING, hidden)

    def renew(
        self, account: AccountRef, channel: PushChannel, *, expires_at: datetime
    ) -> PushChannel | None:
        if not channel.id:
            return None
        body = {"expirationDateTime": _iso(self.capped(expires_at))}
        with self._session(account) as graph:
            url = graph.url("subscriptions", channel.id)
            what = "subscription renewal"
            response = graph.send("PATCH", url, what, body=body)
            where = graph.where(url, what)
            if response.status_code == 200:
                return _channel(response, where, channel.id)
            if response.status_code == 404:
                return None
            raise _failure(response, where, SUBSCRIPTION, (account.access_token,))

    def unwatch(self, account: AccountRef, channel: PushChannel) -> None:
        if not channel.id:
            return
        with self._session(account) as graph:
            url = graph.url("subscriptions", channel.id)
            what = "subscription removal"
            response = graph.send("DELETE", url, what)
            if response.status_code in (200, 202, 204, 404):
                return
            raise _failure(response, graph.where(url, what), SUBSCRIPTION, (account.access_token,))

    def capped(self, expires_at: datetime) -> datetime:
        """``expires_at`` in UTC (whole seconds), no later than Graph allows from now."""
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be an aware datetime")
        limit = self._clock().astimezone(UTC) + MAX_LIFETIME - LIFETIME_MARGIN
        return min(expires_at.astimezone(UTC), limit).replace(microsecond=0)


# --- helpers -----------------------------------------------------------------------------------


def _channel(response: httpx.Response, where: str, expected_id: str | None) -> PushChannel:
    """The PushChannel a subscription answer describes."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ProviderUnreachable(f"{where}: the answer is not a JSON object")
    subscription_id = data.get("id", expected_id)
    if not isinstance(subscription_id, str) or not subscription_id:
        raise ProviderUnreachable(f"{where}: the answer has no subscription id")
    if expected_id is not None and subscription_id != expected_id:
        raise ProviderUnreachable(f"{where}: the answer is about another subscription")
    expires = _instant(data.get("expirationDateTime"))
    if expires is None:
        raise ProviderUnreachable(f"{where}: the answer has no valid expirationDateTime")
    return PushChannel(id=subscription_id, resource_id="", expires_at=expires)


def _failure(
    response: httpx.Response, where: str, errors: Errors, hidden: Iterable[str | None]
) -> ProviderError:
    """400s are Graph refusing the request (not worth retrying as is); the rest as usual."""
    code = error_detail(response, "code")[:100]
    if response.status_code != 400 or code.casefold() == "errorinvalididmalformed":
        return error(response, where, errors)
    said = f"400 {code}" if code else "400"
    message = error_detail(response, "message")
    says = _scrubbed(message, hidden)
    detail = f"{said}: {says}" if says else said
    folded = message.casefold()
    if "validation request" in folded or "validationtoken" in folded:
        return ProviderError(
            f"{where}: the notification URL failed Microsoft Graph's validation handshake "
            f"(it must answer the validationToken POST with 200, text/plain, the token "
            f"itself, within 10 seconds) ({detail})"
        )
    return ProviderError(f"{where}: Microsoft Graph refused the request ({detail})")


def _scrubbed(message: str, hidden: Iterable[str | None]) -> str:
    """Graph's message without secrets, URLs or control characters, shortened. A short secret
    cannot be cut out without mangling words: a message containing one is left out."""
    for value in sorted((h for h in hidden if h), key=len, reverse=True):
        if value in message and len(value) < _HIDE_IN_PLACE:
            return ""
        message = message.replace(value, "[hidden]")
    message = _URL.sub("[url]", message)
    message = " ".join("".join(c if c.isprintable() else " " for c in message).split())
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 3] + "..."
    return message


def _instant(value: object) -> datetime | None:
    """An ISO 8601 instant as sent by Graph (``...45.9356913Z``); naive means UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?", text, re.I)
    if match is None:
        return None
    head, fraction, zone = match.groups()
    normal = head + (f".{fraction[:6].ljust(6, '0')}" if fraction else "")
    if zone and zone.upper() != "Z":
        normal += zone
    try:
        when = datetime.fromisoformat(normal)
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
