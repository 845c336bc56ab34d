"""Reading Microsoft Graph change and lifecycle notifications (see ``push`` for subscriptions).

Graph first checks a new subscription's addresses with ``?validationToken=...``: the token is
echoed, nothing else happens. Notifications come as a JSON batch ``{"value": [...]}``, each
naming its ``subscriptionId`` and carrying our ``clientState``; a notification that fails the
secret check is ignored (Graph expects 202 for the whole batch). Lifecycle notifications (the
``lifecycle`` stream) say ``reauthorizationRequired`` (renew soon), ``subscriptionRemoved``
(forget it; the next sync subscribes again) or ``missed`` (notifications were lost: sync).
"""

from __future__ import annotations

import json
from typing import Any

from calsync.providers.kinds import (
    MalformedNotification,
    Notification,
    PushDelivery,
    PushRequest,
    Signal,
    UnknownPushStream,
)

LIFECYCLE_STREAM = "lifecycle"
_LIFECYCLE_SIGNALS = {
    "subscriptionRemoved": Signal.REMOVED,
    "reauthorizationRequired": Signal.REAUTHORIZE,
}


class GraphNotifications:
    """``PushReceiver`` for Graph subscriptions: change notifications and lifecycle ones."""

    lifecycle_stream: str | None = LIFECYCLE_STREAM
    acknowledge_status = 202

    def parse(self, request: PushRequest) -> PushDelivery:
        if request.stream not in ("", LIFECYCLE_STREAM):
            raise UnknownPushStream(f"Graph sends no notifications to {request.stream!r}")
        token = request.query.get("validationToken")
        if token is not None:  # the subscription handshake: echo at once, touch nothing
            return PushDelivery(handshake=token)
        try:
            body = json.loads(request.body)
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
            raise MalformedNotification("the notification body is not JSON") from None
        lifecycle = request.stream == LIFECYCLE_STREAM
        return PushDelivery(tuple(_notification(item, lifecycle) for item in _items(body)))


def _notification(item: dict[str, Any], lifecycle: bool) -> Notification:
    signal = Signal.CHANGED
    if lifecycle:
        signal = _LIFECYCLE_SIGNALS.get(str(item.get("lifecycleEvent")), Signal.CHANGED)
    return Notification(
        channel_id=str(item.get("subscriptionId", "")),
        secret=str(item.get("clientState", "")),
        signal=signal,
    )


def _items(body: object) -> list[dict[str, Any]]:
    value = body.get("value") if isinstance(body, dict) else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
