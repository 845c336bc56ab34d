"""Webhook messages: their types, the retry schedule, and what a delivery's status means.

Plain rules, no I/O: the store writes messages (``store.webhooks``) in the transaction of the
change that causes them, and ``service.webhooks.delivery`` sends them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum


class EventType(StrEnum):
    BUSY_TIMES_CHANGED = "busy_times.changed"
    CONNECTION_STATUS_CHANGED = "connection.status_changed"
    EXPORT_REFUSED = "export.refused"
    WEBHOOK_TEST = "webhook.test"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"  # not tried yet, or queued again by a redelivery
    DELIVERED = "DELIVERED"
    FAILING = "FAILING"  # failed, another attempt is scheduled
    GAVE_UP = "GAVE_UP"  # every attempt of the schedule failed


# Waits after the 1st, 2nd, ... failed attempt of a round (Standard Webhooks' schedule): eight
# attempts in all, over about 27 hours, then GAVE_UP.
RETRY_WAITS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
# A webhook whose every delivery failed for this long is disabled.
DISABLE_AFTER = timedelta(days=5)
# A rotated-out secret keeps signing for this long.
ROTATION_OVERLAP = timedelta(hours=24)
# A 2xx within this many seconds is success; the receiver has this long in all.
DELIVERY_TIMEOUT_SECONDS = 15.0
# Delivered or given-up messages are kept in the log this long.
KEEP_DELIVERIES = timedelta(days=30)


def next_attempt(failed_in_round: int, now: datetime) -> datetime | None:
    """When to try again after the ``failed_in_round``-th failure of a round; None: give up."""
    if failed_in_round < 1 or failed_in_round > len(RETRY_WAITS):
        return None
    return now + RETRY_WAITS[failed_in_round - 1]


def wants(event_types: list[str], event_type: str) -> bool:
    """Whether a webhook subscribed to ``event_types`` (empty: all) takes ``event_type``."""
    return not event_types or event_type in event_types


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with ``Z``, in milliseconds (as the rest of the API answers)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message(event_type: EventType, data: dict[str, object], now: datetime) -> dict[str, object]:
    """A message's JSON body."""
    return {"type": event_type.value, "timestamp": iso(now), "data": data}


def disabled_reason(failing_since: datetime) -> str:
    return (
        f"calsync disabled this webhook: every delivery since {iso(failing_since)} failed for "
        "5 days. Fix the receiver, then set enabled to true (PATCH /v1/webhooks/{id}); "
        "redeliver the messages it missed from its delivery log."
    )
