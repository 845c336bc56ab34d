"""Retiring a disconnected connection: remove what calsync exported, then revoke the grant.

Disconnect forgets the connection's secret at once, but hands it (sealed) to a
``PendingRetirement`` row in the same transaction (``capture``). The clean-up runs off the
request path (``retire_later``) and deletes the row when done, the secret with it; a crash or
an unreachable provider leaves the row, and a worker tries again with backoff
(``retire_due``). The dedicated calendar goes too, but only when calsync created it and
nothing but calsync's own events is left in it. After ``MAX_ATTEMPTS`` the export clean-up is
given up (logged) and the grant revoked anyway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from calsync.providers.base import (
    AccountRef,
    CalendarGone,
    CalendarProvider,
    CalendarWriter,
    Credentials,
    OAuthTokens,
    ProviderError,
)
from calsync.service.connections.accounts import revoke_later, unseal
from calsync.service.export.writes import ExportReport, remove_exported
from calsync.service.runtime import Runtime
from calsync.service.sync import leases
from calsync.store.db import transaction
from calsync.store.models import Connection, ExportTarget, PendingRetirement, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ATTEMPTS = 8
EMPTY_CHECK_SPAN = timedelta(days=20 * 366)  # how far the dedicated calendar is searched


@dataclass(frozen=True)
class Retirement:
    connection_id: str
    provider_id: str
    email: str
    secret: bytes | None = field(repr=False)
    state: dict[str, str]


def capture(session: Session, row: Connection) -> str:
    """Record what retiring ``row`` needs, in the caller's transaction; call before the row
    forgets its secret. Returns the connection id to pass to ``retire_later``."""
    pending = session.get(PendingRetirement, row.id)
    if pending is None:
        pending = PendingRetirement(connection_id=row.id, attempts=0, created_at=utcnow())
        session.add(pending)
    pending.provider_id = row.provider_id
    pending.email = row.external_account_email or ""
    pending.secret = row.secret
    pending.account_state = dict(row.account_state or {})
    pending.next_attempt_at = utcnow()
    return row.id


def retire_later(rt: Runtime, connection_id: str) -> None:
    rt.submit(lambda: retire_pending(rt, connection_id))


def retire_due(rt: Runtime, limit: int = 20) -> int:
    """Start the clean-ups that are due (left by a crash, or waiting for a retry)."""
    with rt.db() as session:
        due = list(
            session.scalars(
                select(PendingRetirement.connection_id)
                .where(PendingRetirement.next_attempt_at <= utcnow())
                .order_by(PendingRetirement.next_attempt_at)
                .limit(limit)
            )
        )
    for connection_id in due:
        retire_later(rt, connection_id)
    return len(due)


def retire_pending(rt: Runtime, connection_id: str) -> None:
    """Claim the connection's pending clean-up and run it; on failure, schedule a retry."""
    claimed = _claim(rt, connection_id)
    if claimed is None:
        return  # done already, or another process is on it
    attempts, retirement = claimed
    try:
        _remove_export(rt, retirement)
    except Exception as exc:
        if attempts < MAX_ATTEMPTS:
            delay = leases.backoff(rt, attempts, None)
            with transaction(rt.db) as session:
                session.execute(
                    update(PendingRetirement)
                    .where(PendingRetirement.connection_id == connection_id)
                    .values(next_attempt_at=utcnow() + delay)
                )
            log.warning(
                "exported events not removed yet; will retry",
                extra={"connection_id": connection_id, "reason": str(exc)[:200]},
            )
            return
        log.warning(
            "exported events could not be removed at disconnect; giving up",
            extra={"connection_id": connection_id, "reason": str(exc)[:200]},
        )
    revoke_later(rt, retirement.provider_id, retirement.secret)
    with transaction(rt.db) as session:
        session.execute(
            delete(PendingRetirement).where(PendingRetirement.connection_id == connection_id)
        )


def _claim(rt: Runtime, connection_id: str) -> tuple[int, Retirement] | None:
    """Take the row for a while (its next attempt moves past this run), or None."""
    now = utcnow()
    with transaction(rt.db) as session:
        claimed = session.execute(
            update(PendingRetirement)
            .where(
                PendingRetirement.connection_id == connection_id,
                PendingRetirement.next_attempt_at <= now,
            )
            .values(
                next_attempt_at=now + timedelta(seconds=2 * rt.settings.lease_seconds),
                attempts=PendingRetirement.attempts + 1,
            )
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return None
        row = session.get(PendingRetirement, connection_id)
        assert row is not None
        session.refresh(row)
        return row.attempts, Retirement(
            connection_id=row.connection_id,
            provider_id=row.provider_id,
            email=row.email,
            secret=row.secret,
            state={str(k): str(v) for k, v in (row.account_state or {}).items()},
        )


def _wait_for_running_sync(rt: Runtime, connection_id: str) -> str:
    """Take the connection's lease, so an export still running elsewhere has finished (and
    cannot write after the clean-up); a dead holder's lease expires."""
    owner = f"retire:{rt.instance_id}"
    deadline = time.monotonic() + 2 * rt.settings.lease_seconds
    while not leases.acquire(rt, connection_id, owner):
        if time.monotonic() > deadline:
            raise TimeoutError("a sync of the connection still holds its lease; retry later")
        time.sleep(0.2)
    return owner


def _remove_export(rt: Runtime, retirement: Retirement) -> None:
    if not _has_export(rt, retirement.connection_id):
        return
    owner = _wait_for_running_sync(rt, retirement.connection_id)
    try:
        _remove_export_leased(rt, retirement)
    finally:
        leases.release(rt, retirement.connection_id, owner)


def _has_export(rt: Runtime, connection_id: str) -> bool:
    with rt.db() as session:
        return session.get(ExportTarget, connection_id) is not None


def _remove_export_leased(rt: Runtime, retirement: Retirement) -> None:
    with rt.db() as session:
        target = session.get(ExportTarget, retirement.connection_id)
        dedicated = target.dedicated_calendar_id if target and target.dedicated_created else None
    provider = rt.providers.get(retirement.provider_id)
    adapter = rt.providers.adapter(provider) if provider is not None else None
    writer = adapter.writer if adapter is not None else None
    if adapter is None or writer is None:
        return
    account = _account(rt, retirement)

    def call(fn: Callable[[AccountRef], T]) -> T:
        return fn(account)

    report = ExportReport()
    remove_exported(rt, retirement.connection_id, writer, call, keep_calendar=None, report=report)
    if report.failed:  # some deletes failed: try again later (the rows say which)
        raise ProviderError(f"{report.failed} exported events could not be deleted yet")
    if dedicated is not None and _is_empty(adapter, account, dedicated):
        _delete_calendar(writer, account, dedicated)
    with transaction(rt.db) as session:
        session.execute(
            delete(ExportTarget).where(ExportTarget.connection_id == retirement.connection_id)
        )


def _is_empty(adapter: CalendarProvider, account: AccountRef, calendar_id: str) -> bool:
    """True when the calendar is empty now that calsync's own events were deleted: anything
    left is the owner's (or another connection's), at any distance in time."""
    now = utcnow()
    try:
        left = adapter.read_window(
            account, calendar_id, now - EMPTY_CHECK_SPAN, now + EMPTY_CHECK_SPAN
        )
    except CalendarGone:
        return False
    return not left


def _delete_calendar(writer: CalendarWriter, account: AccountRef, calendar_id: str) -> None:
    try:
        writer.delete_calendar(account, calendar_id)
    except ProviderError as exc:
        log.warning("dedicated calendar not deleted", extra={"reason": str(exc)[:200]})


def _account(rt: Runtime, retirement: Retirement) -> AccountRef:
    secret = unseal(rt, retirement.secret)
    if isinstance(secret, Credentials):
        return AccountRef(
            email=retirement.email or secret.username, credentials=secret, state=retirement.state
        )
    assert isinstance(secret, OAuthTokens)
    token = secret.access_token
    expiring = secret.expires_at is not None and secret.expires_at < utcnow() + timedelta(minutes=1)
    provider = rt.providers.get(retirement.provider_id)
    if expiring and secret.refresh_token and provider is not None:
        token = rt.providers.oauth_client(provider).refresh(secret.refresh_token).access_token
    return AccountRef(email=retirement.email, state=retirement.state, access_token=token)
