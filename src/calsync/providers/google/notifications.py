"""Reading Google's push notifications (see ``push`` for the channels themselves).

Google POSTs an empty body; the news is in headers: ``X-Goog-Channel-ID`` (our channel),
``X-Goog-Channel-Token`` (the channel's secret) and ``X-Goog-Resource-State``: ``sync`` right
after the watch (nothing changed yet), ``exists`` / ``not_exists`` when the events changed or
the calendar is gone. A notification that fails the secret check is answered with a refusal,
so Google stops a channel that is not ours.
"""

from __future__ import annotations

from calsync.providers.kinds import (
    Notification,
    PushDelivery,
    PushRequest,
    Signal,
    UnknownPushStream,
)

_CHANGED_STATES = frozenset({"exists", "not_exists"})


class GoogleNotifications:
    """``PushReceiver`` for Google Calendar channels (one stream, no lifecycle)."""

    lifecycle_stream: str | None = None
    acknowledge_status = 200

    def parse(self, request: PushRequest) -> PushDelivery:
        if request.stream:
            raise UnknownPushStream(f"Google sends no notifications to {request.stream!r}")
        headers = request.headers
        state = headers.get("x-goog-resource-state", "")
        notification = Notification(
            channel_id=headers.get("x-goog-channel-id", ""),
            secret=headers.get("x-goog-channel-token", ""),
            signal=Signal.CHANGED if state in _CHANGED_STATES else Signal.HELLO,
        )
        return PushDelivery((notification,), strict=True)
