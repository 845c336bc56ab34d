"""Export writes: batches of creates/updates and deletes, each recorded in the mapping table
(``exported_events``) so that a crash at any point is finished by the next run without a
duplicate (see ``service.export``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from calsync.domain.webhooks import EventType
from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarGone,
    CalendarWriter,
    EventDelete,
    EventWrite,
    ProviderError,
    ProviderUnreachable,
    RateLimitedByProvider,
    StaleEvent,
    WrittenEvent,
)
from calsync.service.export.event import export_event, export_uid
from calsync.service.runtime import Runtime
from calsync.store import webhooks
from calsync.store.db import transaction
from calsync.store.models import (
    Connection,
    ExportedEvent,
    PlatformSession,
    utcnow,
)
from calsync.store.unit import Tx

T = TypeVar("T")
# An event the provider refused on its own (not a rate limit or an outage: those stop the run
# and the connection backs off) waits this long before it is written again, doubling with each
# refusal in a row; a change to its session is written at once.
REFUSAL_FIRST_WAIT = timedelta(minutes=15)
REFUSAL_LONGEST_WAIT = timedelta(hours=24)


@dataclass
class ExportReport:
    written: int = 0
    deleted: int = 0
    restored: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "written": self.written,
            "deleted": self.deleted,
            "restored": self.restored,
            "failed": self.failed,
        }


class AccountCall(Protocol):
    """Runs one provider call with the connection's account (tokens refreshed as needed)."""

    def __call__(self, fn: Callable[[AccountRef], T], /) -> T: ...


def refusal_wait(refusals: int) -> timedelta:
    """How long an event refused ``refusals`` times in a row waits before the next try."""
    doublings = min(max(0, refusals - 1), 7)  # 15 min x 2**7 is past the day already
    return min(REFUSAL_LONGEST_WAIT, REFUSAL_FIRST_WAIT * (1 << doublings))


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]


def write_chunk(
    rt: Runtime,
    row: Connection,
    writer: CalendarWriter,
    call: AccountCall,
    calendar_id: str,
    chunk: Sequence[PlatformSession],
    mappings: dict[str, ExportedEvent],
    report: ExportReport,
) -> None:
    # An earlier create that never recorded its result may have written the event.
    for s in chunk:
        m = mappings.get(s.session_id)
        if m is not None and m.external_id is None:
            found = _find(call, writer, calendar_id, m.uid)
            if found is not None:
                m.external_id, m.etag = found.external_id, None
    # Record the intent before writing: the row's uid is how a retry finds the event.
    with transaction(rt.db) as session:
        for s in chunk:
            m = mappings.get(s.session_id)
            if m is None:
                m = ExportedEvent(
                    connection_id=row.id,
                    session_id=s.session_id,
                    calendar_id=calendar_id,
                    uid=export_uid(row.id, s.session_id),
                    external_id=None,
                    etag=None,
                    revision=0,
                    updated_at=utcnow(),
                )
                session.add(m)
                mappings[s.session_id] = m
            else:
                stored = session.get(ExportedEvent, (row.id, s.session_id))
                if stored is not None and stored.external_id != m.external_id:
                    stored.external_id, stored.etag = m.external_id, None
        session.flush()
        session.expunge_all()
    writes = [
        EventWrite(
            export_event(row.id, s),
            external_id=mappings[s.session_id].external_id,
            etag=mappings[s.session_id].etag,
        )
        for s in chunk
    ]
    results = call(lambda a: writer.put_events(a, calendar_id, writes))
    stale = [i for i, r in enumerate(results) if isinstance(r, StaleEvent)]
    if stale:  # edited since we last wrote it: the session wins
        report.restored += len(stale)
        again = [EventWrite(writes[i].event, writes[i].external_id, None) for i in stale]
        retried = call(lambda a: writer.put_events(a, calendar_id, again))
        for i, result in zip(stale, retried, strict=True):
            results[i] = result
    _record_writes(rt, row.id, calendar_id, chunk, results, report)


def _record_writes(
    rt: Runtime,
    connection_id: str,
    calendar_id: str,
    chunk: Sequence[PlatformSession],
    results: Sequence[WrittenEvent | ProviderError],
    report: ExportReport,
) -> None:
    fatal: ProviderError | None = None
    with transaction(rt.db) as session:
        for s, result in zip(chunk, results, strict=True):
            m = session.get(ExportedEvent, (connection_id, s.session_id))
            if isinstance(result, WrittenEvent):
                if m is not None:
                    m.external_id, m.etag = result.external_id, result.etag
                    m.revision, m.calendar_id, m.updated_at = s.revision, calendar_id, utcnow()
                    m.refusals, m.retry_at, m.refused_revision = 0, None, None
                report.written += 1
            elif isinstance(result, (CalendarGone, AuthRejected, RateLimitedByProvider)):
                fatal = fatal or result
            else:
                report.failed += 1
                # An item's own outage (a 503 in a batch) or a conflict that outlived the
                # retry is tried again by the next run; anything else the provider refused.
                wait = ""
                if m is not None and not isinstance(result, (ProviderUnreachable, StaleEvent)):
                    if m.refused_revision != s.revision:  # announced once per revision
                        _announce_refusal(session, connection_id, s.session_id, str(result))
                    m.refusals += 1
                    m.retry_at = utcnow() + refusal_wait(m.refusals)
                    m.refused_revision = s.revision
                    wait = f"; tried again after {m.retry_at:%Y-%m-%d %H:%M} UTC"
                report.problems.append(f"session {s.session_id}: {result}{wait}")
    if fatal is not None:
        raise fatal


def _announce_refusal(session: Session, connection_id: str, session_id: str, reason: str) -> None:
    """An ``export.refused`` message, in the transaction that records the refusal."""
    connection = session.get(Connection, connection_id)
    if connection is None:
        return
    data: dict[str, object] = {
        "connectionId": connection_id,
        "scheduleId": connection.schedule_id,
        "sessionId": session_id,
        "reason": reason,
    }
    webhooks.enqueue(Tx(session), connection.tenant_id, EventType.EXPORT_REFUSED, data, utcnow())


def delete_chunk(
    rt: Runtime,
    connection_id: str,
    writer: CalendarWriter,
    call: AccountCall,
    calendar_id: str,
    chunk: Sequence[ExportedEvent],
    report: ExportReport,
) -> None:
    """Delete cancelled sessions' events from the target calendar."""
    written = [m for m in chunk if m.external_id is not None]
    pending = [m for m in chunk if m.external_id is None]
    for m in pending:
        found = _find(call, writer, m.calendar_id, m.uid)
        if found is not None:
            m.external_id = found.external_id
            written.append(m)
    results: list[ProviderError | None] = []
    if written:
        deletes = [EventDelete(str(m.external_id), None) for m in written]
        results = call(lambda a: writer.delete_events(a, calendar_id, deletes))
    fatal: ProviderError | None = None
    done = [m.session_id for m in pending if m.external_id is None]
    for m, result in zip(written, results, strict=True):
        if result is None:
            done.append(m.session_id)
            report.deleted += 1
        elif isinstance(result, (CalendarGone, AuthRejected, RateLimitedByProvider)):
            fatal = fatal or result
        else:
            report.failed += 1
            report.problems.append(f"session {m.session_id}: {result}")
    with transaction(rt.db) as session:
        if done:
            session.execute(
                delete(ExportedEvent).where(
                    ExportedEvent.connection_id == connection_id,
                    ExportedEvent.session_id.in_(done),
                )
            )
    if fatal is not None:
        raise fatal


def _find(
    call: AccountCall, writer: CalendarWriter, calendar_id: str, uid: str
) -> WrittenEvent | None:
    return call(lambda account: writer.find_event(account, calendar_id, uid))


def remove_exported(
    rt: Runtime,
    connection_id: str,
    writer: CalendarWriter,
    call: AccountCall,
    *,
    keep_calendar: str | None,
    report: ExportReport,
) -> None:
    """Delete what calsync exported into calendars other than ``keep_calendar`` (all of it
    when None): export turned off, target changed, connection retired."""
    with rt.db() as session:
        stale = list(
            session.scalars(
                select(ExportedEvent).where(ExportedEvent.connection_id == connection_id)
            )
        )
        session.expunge_all()
    by_calendar: dict[str, list[ExportedEvent]] = {}
    for m in stale:
        if m.calendar_id != keep_calendar:
            by_calendar.setdefault(m.calendar_id, []).append(m)
    for calendar_id, mappings in by_calendar.items():
        for chunk in chunks(mappings, writer.max_batch):
            try:
                delete_chunk(rt, connection_id, writer, call, calendar_id, chunk, report)
            except CalendarGone:
                with transaction(rt.db) as session:
                    session.execute(
                        delete(ExportedEvent).where(
                            ExportedEvent.connection_id == connection_id,
                            ExportedEvent.calendar_id == calendar_id,
                        )
                    )
                break
