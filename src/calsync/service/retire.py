"""Retiring a disconnected connection: remove what calsync exported, then revoke the grant.

Disconnect forgets the connection's secret at once; what the retirement needs of it is captured
before (``capture``) and used once, off the request path (``retire_later``). The dedicated
calendar goes too, but only when calsync created it and nothing but calsync's own events is
left in it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import delete

from calsync.providers.base import (
    EXPORT_ICAL_PROPERTY,
    AccountRef,
    CalendarGone,
    CalendarProvider,
    CalendarWriter,
    Credentials,
    OAuthTokens,
    ProviderError,
)
from calsync.service import leases
from calsync.service.accounts import revoke_later, unseal
from calsync.service.export_writes import ExportReport, remove_exported
from calsync.service.runtime import Runtime
from calsync.store.db import transaction
from calsync.store.models import Connection, ExportTarget, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Retirement:
    connection_id: str
    provider_id: str
    email: str
    secret: bytes | None = field(repr=False)
    state: dict[str, str]


def capture(row: Connection) -> Retirement:
    """What retiring ``row`` needs; call before the row forgets its secret."""
    return Retirement(
        connection_id=row.id,
        provider_id=row.provider_id,
        email=row.external_account_email or "",
        secret=row.secret,
        state={str(k): str(v) for k, v in (row.account_state or {}).items()},
    )


def retire_later(rt: Runtime, retirement: Retirement) -> None:
    rt.submit(lambda: retire(rt, retirement))


def retire(rt: Runtime, retirement: Retirement) -> None:
    """Remove the connection's exported events (and its dedicated calendar when calsync
    created it and it is otherwise empty), then revoke the OAuth grant. Best effort: a
    provider that cannot be reached keeps what was exported, and the note is logged."""
    try:
        _remove_export(rt, retirement)
    except Exception as exc:
        log.warning(
            "exported events could not be removed at disconnect",
            extra={"connection_id": retirement.connection_id, "reason": str(exc)[:200]},
        )
    finally:
        revoke_later(rt, retirement.provider_id, retirement.secret)


def _wait_for_running_sync(rt: Runtime, connection_id: str) -> str:
    """Take the connection's lease, so an export still running elsewhere has finished (and
    cannot write after the clean-up); a dead holder's lease expires."""
    owner = f"retire:{rt.instance_id}"
    deadline = time.monotonic() + 2 * rt.settings.lease_seconds
    while not leases.acquire(rt, connection_id, owner) and time.monotonic() < deadline:
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
    with rt.sessions() as session:
        return session.get(ExportTarget, connection_id) is not None


def _remove_export_leased(rt: Runtime, retirement: Retirement) -> None:
    with rt.sessions() as session:
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

    remove_exported(
        rt, retirement.connection_id, writer, call, keep_calendar=None, report=ExportReport()
    )
    if dedicated is not None and _only_ours(adapter, account, dedicated):
        _delete_calendar(writer, account, dedicated)
    with transaction(rt.sessions) as session:
        session.execute(
            delete(ExportTarget).where(ExportTarget.connection_id == retirement.connection_id)
        )


def _only_ours(adapter: CalendarProvider, account: AccountRef, calendar_id: str) -> bool:
    """True when the calendar holds nothing but calsync's own exported events."""
    try:
        changes = adapter.read_changes(account, calendar_id, None, {})
    except CalendarGone:
        return False
    return all(EXPORT_ICAL_PROPERTY in r.ical.upper() for r in changes.upserted)


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
