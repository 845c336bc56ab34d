"""The store side of importing: calendar objects in, expanded busy instances out.

Each calendar's changes are applied in one transaction together with its new cursor, so a
crash leaves either the old or the new state of that calendar and the next run resumes from
the last committed cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from calsync.ical.expand import MAX_INSTANCES, BusyInstance, ICalError, expand_resource
from calsync.providers.base import CalendarChanges, EventResource
from calsync.service.runtime import Runtime
from calsync.service.sync import leases
from calsync.store import announcements
from calsync.store.db import transaction
from calsync.store.models import (
    Connection,
    ConnectionCalendar,
    EventInstance,
    ImportedObject,
    Schedule,
    utcnow,
)
from calsync.store.rows import lock_active_connection
from calsync.store.unit import Tx
from calsync.tz import epoch_ms, zone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpansionContext:
    tenant_id: str
    schedule_id: str
    connection_id: str
    provider_id: str
    local_tz: ZoneInfo
    owner_emails: frozenset[str]
    window_start: datetime
    window_end: datetime
    horizon_day: str
    # A webhook takes busy_times.changed: work out what each write changes (else skip it).
    track_changes: bool = False


def horizon(rt: Runtime, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The span over which imported instances are stored."""
    now = now or utcnow()
    return (
        now - timedelta(days=rt.settings.horizon_past_days),
        now + timedelta(days=rt.settings.horizon_future_days),
    )


def horizon_ms(rt: Runtime, inset: timedelta = timedelta(0)) -> tuple[int, int]:
    """``horizon`` in epoch ms, narrowed by ``inset`` at both ends."""
    start, end = horizon(rt)
    return epoch_ms(start + inset), epoch_ms(end - inset)


def expansion_context(
    rt: Runtime,
    session: Session,
    row: Connection,
    window: tuple[datetime, datetime] | None = None,
) -> ExpansionContext:
    """How a connection's objects are expanded: over ``window``, the horizon by default."""
    schedule = session.get(Schedule, (row.tenant_id, row.schedule_id))
    now = utcnow()
    start, end = window or horizon(rt, now)
    emails = {row.external_account_email.lower()} if row.external_account_email else set()
    return ExpansionContext(
        tenant_id=row.tenant_id,
        schedule_id=row.schedule_id,
        connection_id=row.id,
        provider_id=row.provider_id,
        local_tz=zone(schedule.time_zone if schedule else "UTC"),
        owner_emails=frozenset(emails),
        window_start=start,
        window_end=end,
        horizon_day=now.date().isoformat(),
        track_changes=announcements.tracks_busy_changes(Tx(session), row.tenant_id),
    )


def apply_changes(
    rt: Runtime,
    ctx: ExpansionContext,
    calendar_id: str,
    calendar_name: str,
    changes: CalendarChanges,
    *,
    is_primary: bool,
    problems: list[str] | None = None,
) -> None:
    """Store one calendar's changes and its new cursor in one transaction.

    Only the listed objects are written and expanded. An incremental read only touches the
    rows of the keys it names, so its cost does not grow with the size of the calendar.

    Recurrences are expanded before the write transaction opens, so that the transaction
    (which on SQLite holds every other writer) lasts only as long as the writes. A calendar
    that expands to more than ``MAX_INSTANCES_PER_CALENDAR`` instances keeps those nearest
    to now; the cut is logged and added to ``problems`` (the connection's sync report)."""
    upserted = {r.key: r for r in changes.upserted}
    new_rows = capped_rows(ctx, calendar_id, upserted.values(), problems)
    with transaction(rt.db) as session:
        row = lock_active_connection(session, ctx.connection_id)
        if row is None:
            return  # disconnected while we were reading: keep nothing
        if leases.held_by_another(row.lease_owner, row.lease_expires_at, rt.instance_id):
            raise leases.LeaseLost(
                "this connection's lease expired during the sync and another worker took it "
                "over; this run stopped without writing"
            )
        gone = set(changes.deleted)
        if changes.full:  # everything stored but not listed is gone
            stored = _stored_keys(session, ctx.connection_id, calendar_id, None)
            gone |= stored - set(upserted)
        else:
            stored = _stored_keys(session, ctx.connection_id, calendar_id, [*upserted, *gone])
        touched = gone | set(upserted)
        if ctx.track_changes:
            _note_changes(session, ctx, calendar_id, touched, new_rows)
        _delete_keyed(session, EventInstance, EventInstance.resource_key, ctx, calendar_id, touched)
        _delete_keyed(session, ImportedObject, ImportedObject.key, ctx, calendar_id, gone & stored)
        rows = [
            {
                "connection_id": ctx.connection_id,
                "calendar_id": calendar_id,
                "key": r.key,
                "etag": r.etag,
                "ical": r.ical,
            }
            for r in upserted.values()
        ]
        added = [row for row in rows if row["key"] not in stored]
        if added:
            session.execute(insert(ImportedObject), added)
        if len(added) < len(rows):  # ORM bulk UPDATE by primary key: one executemany
            session.execute(update(ImportedObject), [row for row in rows if row["key"] in stored])
        if new_rows:
            session.execute(insert(EventInstance), new_rows)
            raise_instance_bound(session, ctx.connection_id, new_rows)
        calendar = session.get(ConnectionCalendar, (ctx.connection_id, calendar_id))
        if calendar is None:
            calendar = ConnectionCalendar(connection_id=ctx.connection_id, calendar_id=calendar_id)
            session.add(calendar)
        calendar.name, calendar.is_primary = calendar_name, is_primary
        calendar.cursor, calendar.synced_at = changes.cursor, utcnow()
        if changes.full:
            calendar.horizon_day = ctx.horizon_day


_BATCH = 500  # keys per IN (...) list
_Busy = tuple[str, str, int, int, bool]  # resource key, instance key, start, end, all day


def _note_changes(
    session: Session,
    ctx: ExpansionContext,
    calendar_id: str,
    touched: set[str],
    new_rows: list[dict[str, object]],
) -> None:
    """Widen the connection's unannounced span (busy_times.changed) by every instance of the
    ``touched`` objects that is added, removed or moved by this write, old and new times."""
    keys = sorted(touched)
    old: set[_Busy] = set()
    for start in range(0, len(keys), _BATCH):
        old.update(
            cast(_Busy, tuple(r))
            for r in session.execute(
                select(
                    EventInstance.resource_key,
                    EventInstance.instance_key,
                    EventInstance.start_ms,
                    EventInstance.end_ms,
                    EventInstance.all_day,
                ).where(
                    EventInstance.connection_id == ctx.connection_id,
                    EventInstance.calendar_id == calendar_id,
                    EventInstance.resource_key.in_(keys[start : start + _BATCH]),
                )
            )
        )
    new: set[_Busy] = {
        cast(
            _Busy,
            (r["resource_key"], r["instance_key"], r["start_ms"], r["end_ms"], r["all_day"]),
        )
        for r in new_rows
    }
    changed = old ^ new
    if changed:
        announcements.widen_changed_span(
            Tx(session),
            ctx.connection_id,
            min(b[2] for b in changed),
            max(b[3] for b in changed),
        )


def _stored_keys(
    session: Session, connection_id: str, calendar_id: str, keys: list[str] | None
) -> set[str]:
    """The calendar's stored object keys: all of them (``keys`` None), or those in ``keys``."""
    where = [
        ImportedObject.connection_id == connection_id,
        ImportedObject.calendar_id == calendar_id,
    ]
    if keys is None:
        return set(session.scalars(select(ImportedObject.key).where(*where)))
    found: set[str] = set()
    for start in range(0, len(keys), _BATCH):
        batch = keys[start : start + _BATCH]
        found.update(
            session.scalars(select(ImportedObject.key).where(*where, ImportedObject.key.in_(batch)))
        )
    return found


def _delete_keyed(
    session: Session,
    model: type[EventInstance] | type[ImportedObject],
    key_column: InstrumentedAttribute[str],
    ctx: ExpansionContext,
    calendar_id: str,
    keys: set[str],
) -> None:
    """Delete the calendar's rows of ``model`` whose ``key_column`` is in ``keys``."""
    key_list = sorted(keys)
    for start in range(0, len(key_list), _BATCH):
        session.execute(
            delete(model)
            .where(
                model.connection_id == ctx.connection_id,
                model.calendar_id == calendar_id,
                key_column.in_(key_list[start : start + _BATCH]),
            )
            .execution_options(synchronize_session=False)  # no ORM objects of them are loaded
        )


# At most this many instances of one calendar are stored (one resource: MAX_INSTANCES).
MAX_INSTANCES_PER_CALENDAR = 200_000


def capped_rows(
    ctx: ExpansionContext,
    calendar_id: str,
    resources: Iterable[EventResource],
    problems: list[str] | None,
) -> list[dict[str, object]]:
    """The instance rows of ``resources``, at most ``MAX_INSTANCES_PER_CALENDAR``: when there
    are more, those nearest to now (the coming ones first, then the most recent past ones)."""
    rows: list[dict[str, object]] = []
    for resource in resources:
        rows.extend(instance_rows(ctx, calendar_id, resource.key, resource.ical))
    if len(rows) <= MAX_INSTANCES_PER_CALENDAR:
        return rows
    now_ms = epoch_ms(utcnow())

    def nearness(row: dict[str, object]) -> tuple[int, int]:
        start, end = cast(int, row["start_ms"]), cast(int, row["end_ms"])
        return (0, start) if end >= now_ms else (1, -end)

    rows.sort(key=nearness)
    note = (
        f"calendar {calendar_id} expands to {len(rows)} busy instances; the "
        f"{MAX_INSTANCES_PER_CALENDAR} nearest to now are kept"
    )
    log.warning(note, extra={"connection_id": ctx.connection_id})
    if problems is not None:
        problems.append(note)
    return rows[:MAX_INSTANCES_PER_CALENDAR]


def _expand(ctx: ExpansionContext, ical: str) -> list[BusyInstance]:
    """The resource's instances in the stored window. When it holds more than the expander
    returns (which keeps the earliest), the window is read again from now, so that a dense
    series that began in the past does not leave the coming weeks free."""
    busy = expand_resource(
        ical,
        window_start=ctx.window_start,
        window_end=ctx.window_end,
        owner_emails=ctx.owner_emails,
        local_tz=ctx.local_tz,
    )
    now = utcnow()
    if len(busy) < MAX_INSTANCES or not ctx.window_start < now < ctx.window_end:
        return busy
    return expand_resource(
        ical,
        window_start=now,
        window_end=ctx.window_end,
        owner_emails=ctx.owner_emails,
        local_tz=ctx.local_tz,
    )


def instance_rows(
    ctx: ExpansionContext, calendar_id: str, resource_key: str, ical: str
) -> list[dict[str, object]]:
    try:
        busy = _expand(ctx, ical)
    except ICalError as exc:
        log.warning(
            "unreadable calendar object skipped",
            extra={"connection_id": ctx.connection_id, "reason": str(exc)},
        )
        return []
    return [
        {
            "tenant_id": ctx.tenant_id,
            "schedule_id": ctx.schedule_id,
            "connection_id": ctx.connection_id,
            "provider_id": ctx.provider_id,
            "calendar_id": calendar_id,
            "resource_key": resource_key,
            "instance_key": b.key,
            "start_ms": epoch_ms(b.start),
            "end_ms": epoch_ms(b.end),
            "all_day": b.all_day,
            "start_date": b.start_date.isoformat() if b.start_date else None,
            "end_date": b.end_date.isoformat() if b.end_date else None,
            "title": b.title,
        }
        for b in busy
    ]


def drop_calendars(rt: Runtime, connection_id: str, calendar_ids: list[str]) -> None:
    if not calendar_ids:
        return
    with transaction(rt.db) as session:
        _note_span_of(session, connection_id, EventInstance.calendar_id.in_(calendar_ids))
        for model in (EventInstance, ImportedObject, ConnectionCalendar):
            session.execute(
                delete(model).where(
                    model.connection_id == connection_id, model.calendar_id.in_(calendar_ids)
                )
            )


def reexpand_connection(rt: Runtime, session: Session, row: Connection) -> None:
    """Rebuild a connection's instances from its stored resources (e.g. after the schedule's
    time zone changed, which moves all-day events)."""
    ctx = expansion_context(rt, session, row)
    if ctx.track_changes:
        _note_span_of(session, row.id)
    session.execute(delete(EventInstance).where(EventInstance.connection_id == row.id))
    resources = session.scalars(
        select(ImportedObject).where(ImportedObject.connection_id == row.id)
    ).all()
    new_rows = []
    for resource in resources:
        new_rows.extend(instance_rows(ctx, resource.calendar_id, resource.key, resource.ical))
    if new_rows:
        session.execute(insert(EventInstance), new_rows)
        raise_instance_bound(session, row.id, new_rows)
    if ctx.track_changes:
        _note_span_of(session, row.id)
        announcements.announce_busy_change(Tx(session), row.id)


def _note_span_of(session: Session, connection_id: str, *where: Any) -> None:
    """Widen the unannounced span by the span of the connection's instances (``where``)."""
    lo, hi = session.execute(
        select(func.min(EventInstance.start_ms), func.max(EventInstance.end_ms)).where(
            EventInstance.connection_id == connection_id, *where
        )
    ).one()
    if lo is not None and hi is not None:
        announcements.widen_changed_span(Tx(session), connection_id, int(lo), int(hi))


def raise_instance_bound(
    session: Session, connection_id: str, new_rows: list[dict[str, object]]
) -> None:
    """Keep ``connections.max_instance_ms`` at least the duration of every stored instance
    (List Events' lower bound relies on it). Unknown (NULL) is computed from the table."""
    longest = max(cast(int, r["end_ms"]) - cast(int, r["start_ms"]) for r in new_rows)
    stored = (
        select(func.max(EventInstance.end_ms - EventInstance.start_ms))
        .where(EventInstance.connection_id == connection_id)
        .scalar_subquery()
    )
    session.execute(
        update(Connection)
        .where(Connection.id == connection_id)
        .values(
            max_instance_ms=case(
                (Connection.max_instance_ms.is_(None), stored),
                (Connection.max_instance_ms < longest, longest),
                else_=Connection.max_instance_ms,
            )
        )
        .execution_options(synchronize_session=False)
    )
