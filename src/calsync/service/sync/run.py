"""The sync step: bring one connection's imported calendars up to date in the store.

Provider I/O happens outside transactions; each calendar's changes are applied in one
transaction together with its new cursor, so a crash leaves either the old or the new state of
that calendar, and the next run resumes from the last committed cursor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import select

from calsync.domain import EXPORT_ERROR_REASONS, ErrorReason, SyncConfig, lifecycle
from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarChanges,
    CalendarGone,
    CalendarProvider,
    CursorExpired,
    ExternalCalendar,
    ProviderError,
    RateLimitedByProvider,
)
from calsync.service.connections import sync_config as sc
from calsync.service.connections.accounts import with_account
from calsync.service.export.reconcile import ExportBlocked, export_connection
from calsync.service.runtime import Runtime
from calsync.service.sync import leases
from calsync.service.sync.instances import apply_changes, drop_calendars, expansion_context
from calsync.store import announcements
from calsync.store.connections import lifecycle_of, set_lifecycle
from calsync.store.db import transaction
from calsync.store.models import Connection, ConnectionCalendar, ImportedObject, utcnow
from calsync.store.rows import lock_active_connection
from calsync.store.unit import Tx

log = logging.getLogger(__name__)
PRIMARY_STATE_KEY = "primary_calendar_id"


class SyncFailed(Exception):
    """The connection could not be read; ``provider_id`` failed, ``cause`` says why."""

    def __init__(self, provider_id: str, cause: str) -> None:
        super().__init__(cause)
        self.provider_id = provider_id


def sync_connection_quietly(rt: Runtime, connection_id: str, *, claimed: bool = False) -> None:
    """Background form of ``sync_connection`` (import and export): failures are recorded,
    not raised."""
    try:
        sync_connection(rt, connection_id, export=True, claimed=claimed)
    except SyncFailed as exc:
        log.info("sync failed", extra={"connection_id": connection_id, "reason": str(exc)})
    except Exception:
        log.exception("sync crashed", extra={"connection_id": connection_id})


def sync_connection(
    rt: Runtime,
    connection_id: str,
    *,
    wait_seconds: float = 60.0,
    export: bool = False,
    claimed: bool = False,
) -> None:
    """Import every selected calendar of the connection, then (``export``) reconcile its
    exported sessions. Raises SyncFailed when it cannot.

    Holds the connection's lease while it works. If another thread or process is syncing the
    connection, waits for it (up to ``wait_seconds``); a sync that started after this call was
    made is as good as our own, so then nothing is read twice. ``claimed``: the worker claimed
    the connection as due; if it is no longer due once the lock is ours, there is nothing to do
    (the in-process worker shares its lease with the API, so it can claim a connection that
    List Events is syncing, and then waits for the lock).
    """
    asked = utcnow()
    deadline = time.monotonic() + wait_seconds
    owner = rt.instance_id
    local = rt.lock("sync", connection_id)
    if not local.acquire(timeout=wait_seconds):
        raise SyncFailed(_provider_of(rt, connection_id), "a sync of this connection is running")
    try:
        while not leases.acquire(rt, connection_id, owner):
            if _synced_since(rt, connection_id, asked):
                return
            if time.monotonic() > deadline:
                raise SyncFailed(_provider_of(rt, connection_id), "another worker holds the lease")
            time.sleep(0.1)
        try:
            if claimed and not _still_due(rt, connection_id):
                return  # synced meanwhile (List Events, in this process) with nothing left
            if not _synced_since(rt, connection_id, asked) or export:
                with leases.renewed(rt, connection_id, owner):
                    _sync_locked(rt, connection_id, export=export)
        except leases.LeaseLost as exc:
            raise SyncFailed(_provider_of(rt, connection_id), str(exc)) from exc
        finally:
            leases.release(rt, connection_id, owner)
    finally:
        local.release()


def _synced_since(rt: Runtime, connection_id: str, moment: datetime) -> bool:
    with rt.db() as session:
        row = session.get(Connection, connection_id)
        return row is not None and row.last_synced_at is not None and row.last_synced_at >= moment


def _still_due(rt: Runtime, connection_id: str) -> bool:
    with rt.db() as session:
        row = session.get(Connection, connection_id)
        return row is not None and row.next_sync_at <= utcnow()


def _provider_of(rt: Runtime, connection_id: str) -> str:
    with rt.db() as session:
        row = session.get(Connection, connection_id)
        return row.provider_id if row else ""


def _sync_locked(rt: Runtime, connection_id: str, *, export: bool) -> None:
    with transaction(rt.db) as session:
        row = lock_active_connection(session, connection_id)
        if row is None:
            return
        provider = rt.providers.get(row.provider_id)
        if provider is None:
            raise SyncFailed(row.provider_id, "provider is no longer configured")
        if row.error_reason == ErrorReason.TOKEN_REVOKED.value:
            raise SyncFailed(row.provider_id, "the external account refused the stored credentials")
        previous_status = row.status
        export_held = row.error_reason in EXPORT_ERROR_REASONS
        set_lifecycle(row, lifecycle.sync_begun(lifecycle_of(row), utcnow()))
        started = utcnow()
        config = sc.from_json(row.sync_config)
        context = expansion_context(rt, session, row)
        stored = {
            c.calendar_id: c
            for c in session.scalars(
                select(ConnectionCalendar).where(ConnectionCalendar.connection_id == row.id)
            )
        }
        today = utcnow().date().isoformat()
        # A calendar last read in full on another day is read in full again: that re-expands
        # recurrences over the moved horizon (and refreshes provider-side windows).
        cursors = {cid: c.cursor if c.horizon_day == today else None for cid, c in stored.items()}
        names = {cid: c.name for cid, c in stored.items()}
        primary_id = row.account_state.get(PRIMARY_STATE_KEY)

    adapter = rt.providers.adapter(provider)
    problems: list[str] = []
    gone: list[str] = []
    blocked: ExportBlocked | None = None
    try:
        wanted, primary_id = _calendars_to_import(rt, adapter, row, config, names, primary_id)
        for calendar_id in wanted:
            try:
                changes = _read(rt, adapter, row, calendar_id, cursors.get(calendar_id))
            except CalendarGone:
                problems.append(f"calendar {calendar_id} no longer exists; it is not imported")
                gone.append(calendar_id)
                drop_calendars(rt, connection_id, [calendar_id])
                continue
            apply_changes(
                rt,
                context,
                calendar_id,
                names.get(calendar_id, calendar_id),
                changes,
                is_primary=calendar_id == primary_id,
                problems=problems,
            )
        drop_calendars(rt, connection_id, [c for c in stored if c not in wanted])
        if export and not export_held:
            blocked = _export(rt, row, adapter, primary_id, problems)
    except AuthRejected as exc:
        _record(rt, connection_id, _Revoked(str(exc)))
        raise SyncFailed(
            provider.id, "the external account refused the stored credentials"
        ) from exc
    except ProviderError as exc:
        _record(rt, connection_id, _Failed(exc, previous_status))
        raise SyncFailed(provider.id, str(exc)) from exc
    except BaseException:
        _record(rt, connection_id, _Failed(None, previous_status))
        raise
    run = lifecycle.SyncSuccess(
        started=started,
        exported=export,
        problems="; ".join(problems) or None,
        blocked=(blocked.reason, str(blocked)) if blocked is not None else None,
    )
    _record(rt, connection_id, _Succeeded(run, primary_id, gone))


def _export(
    rt: Runtime,
    row: Connection,
    adapter: CalendarProvider,
    primary_id: str | None,
    problems: list[str],
) -> ExportBlocked | None:
    """Reconcile the connection's exported sessions; a few of its problems join ``problems``.
    Returns the block when the export cannot go on (the connection shows why)."""
    try:
        report = export_connection(rt, row, adapter, partial(with_account, rt, row), primary_id)
    except ExportBlocked as exc:
        return exc
    problems.extend(report.problems[:3])
    rt.metrics.export_finished(row.provider_id, report.counts())
    return None


def _calendars_to_import(
    rt: Runtime,
    adapter: CalendarProvider,
    row: Connection,
    config: SyncConfig,
    names: dict[str, str],
    primary_id: str | None,
) -> tuple[list[str], str | None]:
    """(calendar ids to import, the primary calendar's id). The account's calendars are
    listed (adding their names to ``names``) only when the primary is not known yet or a
    selected calendar is new."""
    enabled, selected = config.import_.enabled, config.import_.calendar_ids
    wanted = _wanted_calendars(enabled, selected, primary_id)
    if wanted is not None and all(cid in names for cid in wanted):
        return wanted, primary_id
    calendars = with_account(rt, row, adapter.list_calendars)
    names.update({c.id: c.name for c in calendars})
    primary_id = _primary(calendars)
    return _wanted_calendars(enabled, selected, primary_id) or [], primary_id


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
    with rt.engine.connect() as conn:  # plain rows: no ORM row processing for every object
        rows = conn.execute(
            select(ImportedObject.key, ImportedObject.etag).where(
                ImportedObject.connection_id == row.id,
                ImportedObject.calendar_id == calendar_id,
            )
        )
        known = {key: etag for key, etag in rows}

    def read(account: AccountRef) -> CalendarChanges:
        try:
            return adapter.read_changes(account, calendar_id, cursor, known)
        except CursorExpired:
            return adapter.read_changes(account, calendar_id, None, known)

    return with_account(rt, row, read)


@dataclass(frozen=True)
class _Revoked:
    detail: str


@dataclass(frozen=True)
class _Failed:
    failure: ProviderError | None  # None: an internal error
    status_before: str


@dataclass(frozen=True)
class _Succeeded:
    run: lifecycle.SyncSuccess
    primary_id: str | None
    gone: list[str]


def _record(rt: Runtime, connection_id: str, outcome: _Revoked | _Failed | _Succeeded) -> None:
    """Record a run's outcome through the connection's state machine
    (``domain.lifecycle``), and the calendars it learned about."""
    now = utcnow()
    with transaction(rt.db) as session:
        row = lock_active_connection(session, connection_id)
        if row is None:
            return
        if leases.held_by_another(row.lease_owner, row.lease_expires_at, rt.instance_id):
            return  # our lease was lost: the worker that holds it now records its own run
        failure = outcome.failure if isinstance(outcome, _Failed) else None
        rt.metrics.sync_finished(
            row.provider_id,
            synced=isinstance(outcome, _Succeeded),
            revoked=isinstance(outcome, _Revoked),
            failure=failure,
        )
        state = lifecycle_of(row)
        if isinstance(outcome, _Revoked):
            set_lifecycle(row, lifecycle.token_revoked(state, outcome.detail))
        elif isinstance(outcome, _Failed):
            retry_after = (
                failure.retry_after if isinstance(failure, RateLimitedByProvider) else None
            )
            state = lifecycle.sync_failed(
                state,
                now=now,
                retry_in=leases.backoff(rt, state.failure_count + 1, retry_after),
                error=str(failure) if failure else None,
                threshold=rt.settings.error_threshold,
                status_before=outcome.status_before,
            )
            set_lifecycle(row, state)
        elif not state.revoked:  # refused while this run went on: only reconnecting clears it
            poll = timedelta(seconds=rt.settings.poll_interval_seconds)
            set_lifecycle(row, lifecycle.sync_succeeded(state, outcome.run, now=now, poll=poll))
            _remember_calendars(row, outcome.primary_id, outcome.gone)
        # What this run's writes changed (also a failed run's: its finished calendars are
        # stored), as one busy_times.changed message, in this transaction.
        announcements.announce_busy_change(Tx(session), connection_id, now)
    if isinstance(outcome, _Succeeded):
        _change_visible(rt, connection_id, outcome.run.started)
        log.info(
            "sync succeeded",
            extra={
                "connection_id": connection_id,
                "seconds": round((utcnow() - outcome.run.started).total_seconds(), 3),
                "exported": outcome.run.exported,
            },
        )


def _change_visible(rt: Runtime, connection_id: str, started: datetime) -> None:
    """A run that started after a change was announced has stored it: observe the time."""
    heard = rt.changes_heard.get(connection_id)
    if heard is None or started < heard:
        return  # nothing announced, or announced while this run was already reading
    rt.changes_heard.pop(connection_id, None)
    provider = rt.providers.get(_provider_of(rt, connection_id))
    kind = provider.kind if provider is not None else "unknown"
    rt.metrics.change_visible.labels(kind).observe((utcnow() - heard).total_seconds())


def _remember_calendars(row: Connection, primary_id: str | None, gone: list[str]) -> None:
    if primary_id and row.account_state.get(PRIMARY_STATE_KEY) != primary_id:
        row.account_state = {**row.account_state, PRIMARY_STATE_KEY: primary_id}
    if gone:
        _forget_calendars(row, set(gone))


def _forget_calendars(row: Connection, gone: set[str]) -> None:
    """Deleted calendars leave the import selection (a deleted primary is looked up again)."""
    config = sc.from_json(row.sync_config)
    ids = config.import_.calendar_ids
    if ids is not None and gone & set(ids):
        kept = tuple(c for c in ids if c not in gone)
        imp = replace(
            config.import_, calendar_ids=kept, enabled=config.import_.enabled and bool(kept)
        )
        row.sync_config = sc.to_json(replace(config, import_=imp))
    if row.account_state.get(PRIMARY_STATE_KEY) in gone:
        row.account_state = {k: v for k, v in row.account_state.items() if k != PRIMARY_STATE_KEY}
