"""How a session looks in an external calendar: the ``ExportEvent`` written for it."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Protocol

from calsync.providers.base import ExportEvent


class StoredSession(Protocol):
    """What the exported event is made of (a stored session has these)."""

    @property
    def session_id(self) -> str: ...
    @property
    def all_day(self) -> bool: ...
    @property
    def start_date(self) -> str | None: ...
    @property
    def end_date(self) -> str | None: ...
    @property
    def start_ms(self) -> int: ...
    @property
    def end_ms(self) -> int: ...
    @property
    def title(self) -> str | None: ...
    @property
    def time_zone(self) -> str: ...
    @property
    def location(self) -> str | None: ...
    @property
    def description(self) -> str | None: ...


def export_uid(connection_id: str, session_id: str) -> str:
    """The stable id of a session's event in one connection's calendar (32 lowercase hex).

    It is the CalDAV UID and resource name, the Google event id and the Graph transactionId,
    and the value of the private export tag, so a retried create finds what an interrupted one
    wrote. It is per connection: two schedules exporting into one account never collide.
    """
    digest = hashlib.sha256(f"calsync-export\0{connection_id}\0{session_id}".encode())
    return digest.hexdigest()[:32]


def export_event(connection_id: str, row: StoredSession) -> ExportEvent:
    uid = export_uid(connection_id, row.session_id)
    all_day = bool(row.all_day and row.start_date and row.end_date)
    return ExportEvent(
        uid=uid,
        tag=uid,
        title=row.title or "Booking",
        time_zone=row.time_zone,
        start=None if all_day else datetime.fromtimestamp(row.start_ms / 1000, UTC),
        end=None if all_day else datetime.fromtimestamp(row.end_ms / 1000, UTC),
        start_date=date.fromisoformat(row.start_date) if all_day and row.start_date else None,
        end_date=date.fromisoformat(row.end_date) if all_day and row.end_date else None,
        location=row.location,
        description=row.description,
    )
