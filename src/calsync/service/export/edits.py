"""Exported events the account owner deleted or changed in their calendar: noticed through
the target calendar's changes since the last run, and marked to be written again."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import and_, select

from calsync.providers.base import (
    AccountRef,
    CalendarChanges,
    CalendarProvider,
    CursorExpired,
)
from calsync.service.export.writes import AccountCall
from calsync.service.runtime import Runtime
from calsync.service.sync.instances import horizon_ms
from calsync.store.db import transaction
from calsync.store.models import (
    Connection,
    ExportedEvent,
    ExportTarget,
    PlatformSession,
    utcnow,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


WINDOW_MARGIN = timedelta(days=2)  # clear of the horizon's edges, whenever it was computed


def _edited_sessions(
    mapped: dict[str, tuple[str, str | None]], changes: CalendarChanges
) -> set[str]:
    """Sessions whose exported event the read shows deleted or changed (another ETag)."""
    if changes.full:
        present = {r.key: r.etag for r in changes.upserted}
        return {
            session_id
            for key, (session_id, etag) in mapped.items()
            if key not in present or (etag is not None and present[key] != etag)
        }
    touched = {mapped[key][0] for key in changes.deleted if key in mapped}
    for resource in changes.upserted:
        held = mapped.get(resource.key)
        if held is not None and held[1] is not None and resource.etag != held[1]:
            touched.add(held[0])
    return touched


def notice_external_edits(
    rt: Runtime,
    row: Connection,
    adapter: CalendarProvider,
    call: AccountCall,
    calendar_id: str,
) -> int:
    """Mark exported events that were deleted or changed outside calsync for rewriting;
    returns how many. The target calendar's cursor moves in the same transaction."""
    low, high = horizon_ms(rt, WINDOW_MARGIN)
    with rt.db() as session:
        # Only events well inside the horizon: providers read (and report deletions) within
        # it, so an event outside it is neither listed nor a sign of an edit.
        mapped = {
            str(external_id): (session_id, etag)
            for external_id, session_id, etag in session.execute(
                select(ExportedEvent.external_id, ExportedEvent.session_id, ExportedEvent.etag)
                .join(
                    PlatformSession,
                    and_(
                        PlatformSession.tenant_id == row.tenant_id,
                        PlatformSession.schedule_id == row.schedule_id,
                        PlatformSession.session_id == ExportedEvent.session_id,
                    ),
                )
                .where(
                    ExportedEvent.connection_id == row.id,
                    ExportedEvent.calendar_id == calendar_id,
                    ExportedEvent.external_id.is_not(None),
                    PlatformSession.start_ms >= low,
                    PlatformSession.end_ms <= high,
                )
            )
        }
        stored = session.get(ExportTarget, row.id)
        cursor = stored.cursor if stored is not None else None
    if not mapped:
        return 0
    known = {str(k): etag or "" for k, (_, etag) in mapped.items()}

    def read(account: AccountRef) -> CalendarChanges:
        try:
            return adapter.read_changes(account, calendar_id, cursor, known)
        except CursorExpired:
            return adapter.read_changes(account, calendar_id, None, known)

    changes = call(read)
    touched = _edited_sessions(mapped, changes)
    with transaction(rt.db) as session:
        if touched:
            for mapping in session.scalars(
                select(ExportedEvent).where(
                    ExportedEvent.connection_id == row.id,
                    ExportedEvent.session_id.in_(sorted(touched)),
                )
            ):
                mapping.etag, mapping.revision = None, -1
        stored = session.get(ExportTarget, row.id)
        if stored is not None:
            stored.cursor = changes.cursor
            if touched:
                stored.external_edits += len(touched)
                stored.last_external_edit_at = utcnow()
    if touched:
        log.info(
            "exported events changed externally; restoring them",
            extra={"connection_id": row.id, "count": len(touched)},
        )
    return len(touched)
