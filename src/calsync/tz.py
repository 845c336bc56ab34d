"""Time zone lookup by IANA name, and the epoch milliseconds the store keeps times in."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC_ZONE = ZoneInfo("UTC")


def zone_exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def zone(name: str) -> ZoneInfo:
    """The zone called ``name``, or UTC for an unknown name (schedules are validated on input)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC_ZONE


def epoch_ms(value: datetime) -> int:
    """An aware datetime as epoch milliseconds (instance and session bounds in the store)."""
    return int(value.timestamp() * 1000)


def from_epoch_ms(value: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime (the inverse of ``epoch_ms``)."""
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def utcnow() -> datetime:
    """Now, aware, in UTC (every stored time is)."""
    return datetime.now(UTC)
