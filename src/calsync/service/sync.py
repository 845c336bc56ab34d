"""The sync step: bring one connection's imported calendars up to date in the store.

Provider I/O happens outside transactions; each calendar's changes are applied in one
transaction together with its new cursor, so a crash leaves either the old or the new state of
that calendar, and the next run resumes from the last committed cursor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from calsync.domain import ConnectionStatus, ErrorReason
from calsync.ical.expand import ICalError, expand_resource
from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarChanges,
    CalendarGone,
    CalendarProvider,
    CursorExpired,
    ExternalCalendar,
    ProviderError,
)
from calsync.service import sync_config as sc
from calsync.service.accounts import with_account
from calsync.service.runtime import Runtime
from calsync.store.db import transaction
from calsync.store.models import (
    Connection,
    ConnectionCalendar,
    EventInstance,
    EventResource,
    Schedule,
    utcnow,
)
from calsync.tz import zone

log = logging.getLogger(__name__)
PRIMARY_STATE_KEY = "primary_calendar_id"


class SyncFailed(Exception):
    """The connection could not be read; ``provider_id`` failed, ``cause`` says why."""

    def __init__(self, provider_id: str, cause: str) -> None:
        super().__init__(cause)
        self.provider_id = provider_id


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


def sync_connection_quietly(rt: Runtime, connection_id: str) -> None:
    """Background form of ``sync_connection``: failures are recorded, not raised."""
    try:
        sync_connection(rt, connection_id)
    except SyncFailed as exc:
        log.info("sync failed", extra={"connection_id": connection_id, "reason": str(exc)})
    except Exception:
        log.exception("sync crashed", extra={"connection_id": connection_id})


def sync_connection(rt: Runtime, connection_id: str) -> None:
    """Import every selected calendar of the connection. Raises SyncFailed when it cannot."""
    with rt.lock("sync", connection_id):
        _sync_locked(rt, connection_id)


def _sync_locked(rt: Runtime, connection_id: str) -> None:
    with transaction(rt.sessions) as session:
        row = session.get(Connection, connection_id)
        if row is None or row.status == ConnectionStatus.DISCONNECTED.value:
            return
        provider = rt.providers.get(row.provider_id)
        if provider is None:
            raise SyncFailed(row.provider_id, "provider is no longer configured")
        if row.error_reason == ErrorReason.TOKEN_REVOKED.value:
            raise SyncFailed(row.provider_id, "the external account refused the stored credentials")
        previous_status = row.status
        row.status = ConnectionStatus.SYNC_IN_PROGRESS.value
        row.last_sync_attempt_at = utcnow()
        started = utcnow()
        config = sc.from_json(row.sync_config)
        context = _context(rt, session, row)
        stored = {
            c.calendar_id: c
            for c in session.scalars(
                select(ConnectionCalendar).where(ConnectionCalendar.connection_id == row.id)
            )
        }
        cursors = {cid: c.cursor for cid, c in stored.items()}
        names = {cid: c.name for cid, c in stored.items()}
        primary_id = row.account_state.get(PRIMARY_STATE_KEY)

    adapter = rt.providers.adapter(provider)
    problems: list[str] = []
    try:
        wanted = _wanted_calendars(config.import_.enabled, config.import_.calendar_ids, primary_id)
        if wanted is None or any(cid not in names for cid in wanted):
            calendars = with_account(rt, row, adapter.list_calendars)
            names.update({c.id: c.name for c in calendars})
            primary_id = _primary(calendars)
            wanted = (
                _wanted_calendars(config.import_.enabled, config.import_.calendar_ids, primary_id)
                or []
            )
        for calendar_id in wanted:
            try:
                changes = _read(rt, adapter, row, calendar_id, cursors.get(calendar_id))
            except CalendarGone:
                problems.append(f"calendar {calendar_id} no longer exists")
                _drop_calendars(rt, connection_id, [calendar_id])
                continue
            _apply(
                rt,
                context,
                calendar_id,
                names.get(calendar_id, calendar_id),
                changes,
                is_primary=calendar_id == primary_id,
            )
        _drop_calendars(rt, connection_id, [c for c in stored if c not in wanted])
    except AuthRejected as exc:
        _finish(rt, connection_id, ConnectionStatus.ERROR, ErrorReason.TOKEN_REVOKED, str(exc))
        raise SyncFailed(
            provider.id, "the external account refused the stored credentials"
        ) from exc
    except ProviderError as exc:
        _finish(rt, connection_id, ConnectionStatus(previous_status), None, str(exc))
        raise SyncFailed(provider.id, str(exc)) from exc
    except BaseException:
        _finish(rt, connection_id, ConnectionStatus(previous_status), None, "internal error")
        raise
    _finish(
        rt,
        connection_id,
        ConnectionStatus.SYNCED,
        ErrorReason.UNDEFINED,
        "; ".join(problems) or None,
        synced_from=started,
        primary_id=primary_id,
    )


def _wanted_calendars(
    enabled: bool, calendar_ids: tuple[str, ...] | None, primary_id: str | None
) -> list[str] | None:
    """Calendar ids to import; None when the primary calendar is not known yet."""
    if not enabled:
        return []
    if calendar_ids is not None:
        return list(dict.fromkeys(calendar_ids))
    return [primary_id] if primary_id else None


def _primary(calendars: list[ExternalCalendar]) -> str | None:
    for calendar in calendars:
        if calendar.is_primary:
            return calendar.id
    return calendars[0].id if calendars else None


def _read(
    rt: Runtime,
    adapter: CalendarProvider,
    row: Connection,
    calendar_id: str,
    cursor: str | None,
) -> CalendarChanges:
    with rt.sessions() as session:
        rows = session.execute(
            select(EventResource.key, EventResource.etag).where(
                EventResource.connection_id == row.id,
                EventResource.calendar_id == calendar_id,
            )
        )
        known = {key: etag for key, etag in rows}

    def read(account: AccountRef) -> CalendarChanges:
        try:
            return adapter.read_changes(account, calendar_id, cursor, known)
        except CursorExpired:
            return adapter.read_changes(account, calendar_id, None, known)

    return with_account(rt, row, read)


def _context(rt: Runtime, session: Session, row: Connection) -> ExpansionContext:
    schedule = session.get(Schedule, (row.tenant_id, row.schedule_id))
    now = utcnow()
    emails = {row.external_account_email.lower()} if row.external_account_email else set()
    return ExpansionContext(
        tenant_id=row.tenant_id,
        schedule_id=row.schedule_id,
        connection_id=row.id,
        provider_id=row.provider_id,
        local_tz=zone(schedule.time_zone if schedule else "UTC"),
        owner_emails=frozenset(emails),
        window_start=now - timedelta(days=rt.settings.horizon_past_days),
        window_end=now + timedelta(days=rt.settings.horizon_future_days),
    )


def _apply(
    rt: Runtime,
    ctx: ExpansionContext,
    calendar_id: str,
    calendar_name: str,
    changes: CalendarChanges,
    *,
    is_primary: bool,
) -> None:
    with transaction(rt.sessions) as session:
        row = session.get(Connection, ctx.connection_id)
        if row is None or row.status == ConnectionStatus.DISCONNECTED.value:
            return  # disconnected while we were reading: keep nothing
        existing = {
            r.key: r
            for r in session.scalars(
                select(EventResource).where(
                    EventResource.connection_id == ctx.connection_id,
                    EventResource.calendar_id == calendar_id,
                )
            )
        }
        gone = set(changes.deleted)
        if changes.full:
            gone |= set(existing) - {r.key for r in changes.upserted}
        touched = gone | {r.key for r in changes.upserted}
        _delete_instances(session, ctx.connection_id, calendar_id, touched)
        for key in gone:
            if key in existing:
                session.delete(existing[key])
        new_rows = []
        for resource in changes.upserted:
            stored = existing.get(resource.key)
            if stored is None:
                session.add(
                    EventResource(
                        connection_id=ctx.connection_id,
                        calendar_id=calendar_id,
                        key=resource.key,
                        etag=resource.etag,
                        ical=resource.ical,
                    )
                )
            else:
                stored.etag, stored.ical = resource.etag, resource.ical
            new_rows.extend(_instances(ctx, calendar_id, resource.key, resource.ical))
        if new_rows:
            session.execute(insert(EventInstance), new_rows)
        calendar = session.get(ConnectionCalendar, (ctx.connection_id, calendar_id))
        if calendar is None:
            calendar = ConnectionCalendar(connection_id=ctx.connection_id, calendar_id=calendar_id)
            session.add(calendar)
        calendar.name, calendar.is_primary = calendar_name, is_primary
        calendar.cursor, calendar.synced_at = changes.cursor, utcnow()


def _delete_instances(
    session: Session, connection_id: str, calendar_id: str, keys: set[str]
) -> None:
    key_list = sorted(keys)
    for start in range(0, len(key_list), 500):
        session.execute(
            delete(EventInstance).where(
                EventInstance.connection_id == connection_id,
                EventInstance.calendar_id == calendar_id,
                EventInstance.resource_key.in_(key_list[start : start + 500]),
            )
        )


def _instances(
    ctx: ExpansionContext, calendar_id: str, resource_key: str, ical: str
) -> list[dict[str, object]]:
    try:
        busy = expand_resource(
            ical,
            window_start=ctx.window_start,
            window_end=ctx.window_end,
            owner_emails=ctx.owner_emails,
            local_tz=ctx.local_tz,
        )
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
            "start_ms": _ms(b.start),
            "end_ms": _ms(b.end),
            "all_day": b.all_day,
            "start_date": b.start_date.isoformat() if b.start_date else None,
            "end_date": b.end_date.isoformat() if b.end_date else None,
            "title": b.title,
        }
        for b in busy
    ]


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _drop_calendars(rt: Runtime, connection_id: str, calendar_ids: list[str]) -> None:
    if not calendar_ids:
        return
    with transaction(rt.sessions) as session:
        for model in (EventInstance, EventResource, ConnectionCalendar):
            session.execute(
                delete(model).where(
                    model.connection_id == connection_id, model.calendar_id.in_(calendar_ids)
                )
            )


def _finish(
    rt: Runtime,
    connection_id: str,
    status: ConnectionStatus,
    reason: ErrorReason | None,
    error: str | None,
    *,
    synced_from: datetime | None = None,
    primary_id: str | None = None,
) -> None:
    """Record the outcome. A successful run records when it *started* as ``last_synced_at``:
    the data is at least that new, and a change requested after that moment (a new sync
    config, new credentials) leaves the connection due, whatever the interleaving."""
    with transaction(rt.sessions) as session:
        row = session.get(Connection, connection_id)
        if row is None or row.status == ConnectionStatus.DISCONNECTED.value:
            return
        row.status = status.value
        if reason is not None:
            row.error_reason = reason.value
        row.last_error = error[:500] if error else None
        if synced_from is not None:
            row.last_synced_at = synced_from
        if primary_id and row.account_state.get(PRIMARY_STATE_KEY) != primary_id:
            row.account_state = {**row.account_state, PRIMARY_STATE_KEY: primary_id}
        row.updated_at = utcnow()


def reexpand_connection(rt: Runtime, session: Session, row: Connection) -> None:
    """Rebuild a connection's instances from its stored resources (e.g. after the schedule's
    time zone changed, which moves all-day events)."""
    ctx = _context(rt, session, row)
    session.execute(delete(EventInstance).where(EventInstance.connection_id == row.id))
    resources = session.scalars(
        select(EventResource).where(EventResource.connection_id == row.id)
    ).all()
    new_rows = []
    for resource in resources:
        new_rows.extend(_instances(ctx, resource.calendar_id, resource.key, resource.ical))
    if new_rows:
        session.execute(insert(EventInstance), new_rows)
