"""Free/busy's reads of the store: every stored instance of some connections in a window
(List Events' page statement, page after page), and a schedule's confirmed sessions."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, select

from calsync.store.instances.page import PageRow, Reads, _driver_errors, page_rows
from calsync.store.models import PlatformSession
from calsync.store.raw_rows import fetch_tuples

CHUNK = 5000
CONFIRMED = "CONFIRMED"
# A confirmed session: schedule_id, start_ms, end_ms.
SessionSpan = tuple[str, int, int]


def instance_rows(
    reads: Reads, connection_ids: list[str], *, from_ms: int, to_ms: int
) -> list[PageRow]:
    """All stored instances of ``connection_ids`` overlapping [from_ms, to_ms), in List
    Events' sort order, read ``CHUNK`` rows at a time."""
    rows: list[PageRow] = []
    after = None
    while True:
        chunk = page_rows(
            reads, connection_ids, from_ms=from_ms, to_ms=to_ms, count=CHUNK, after=after
        )
        rows.extend(chunk)
        if len(chunk) < CHUNK:
            return rows
        last = chunk[-1]
        after = (last[0], last[1], last[2], last[3], last[4], last[5])


@lru_cache(maxsize=1)
def _sessions_statement() -> Select[*tuple[Any, ...]]:
    return select(
        PlatformSession.schedule_id, PlatformSession.start_ms, PlatformSession.end_ms
    ).where(
        PlatformSession.tenant_id == bindparam("tenant"),
        PlatformSession.schedule_id.in_(bindparam("schedules", expanding=True)),
        PlatformSession.status == CONFIRMED,
        PlatformSession.start_ms < bindparam("to_ms"),
        PlatformSession.end_ms > bindparam("from_ms"),
    )


@_driver_errors
def confirmed_sessions(
    reads: Reads, tenant_id: str, schedule_ids: Sequence[str], *, from_ms: int, to_ms: int
) -> list[SessionSpan]:
    """The confirmed sessions of the tenant's ``schedule_ids`` overlapping [from_ms, to_ms)."""
    if not schedule_ids:
        return []
    params = {
        "tenant": tenant_id,
        "schedules": list(schedule_ids),
        "from_ms": from_ms,
        "to_ms": to_ms,
    }
    return [
        (sid, int(a), int(b))
        for sid, a, b in fetch_tuples(reads._db, _sessions_statement(), params)
    ]
