"""The connection state machine: every change of a connection's status, error reason, failure
count and due time is one of the transitions below, so the lifecycle reads in one place.

```
            connected / repaired          sync begun            sync succeeded
 (new) ──────────────────────────▶ CONNECTED ──────▶ SYNC_IN_PROGRESS ──────▶ SYNCED
                                       ▲                  │    ▲                 │
               new credentials,        │   sync failed    │    │  due (poll,     │
               new sync config         │  (< threshold:   │    │  request, push) │
                                       │  status kept)    ▼    └─────────────────┘
                                     ERROR ◀── failed >= threshold, token revoked,
                                       │       export blocked (calendar gone / not creatable)
                  disconnected         ▼
 any state ───────────────────────▶ DISCONNECTED  (final: a new connect makes a new row)
```

Transitions are pure functions of a ``Lifecycle`` and the facts of the event; the store writes
the result. Nothing else assigns these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from calsync.domain import EXPORT_ERROR_REASONS, ConnectionStatus, ErrorReason

LAST_ERROR_CHARS = 500
# A notification makes the connection due this long after it, not at once: a storm of them
# (one per changed event, or a provider resending) becomes one sync.
NOTIFICATION_COALESCE = timedelta(seconds=1)


@dataclass(frozen=True)
class Lifecycle:
    """The scheduling and status fields of one connection."""

    status: str
    error_reason: str
    failure_count: int
    next_sync_at: datetime
    sync_requested_at: datetime
    export_requested_at: datetime | None
    last_synced_at: datetime | None
    last_sync_attempt_at: datetime | None
    last_error: str | None
    # Up to when the store is known to match the provider (see ``fresh_until``).
    fresh_as_of: datetime | None = None

    @property
    def disconnected(self) -> bool:
        return self.status == ConnectionStatus.DISCONNECTED.value

    @property
    def revoked(self) -> bool:
        return self.error_reason == ErrorReason.TOKEN_REVOKED.value

    @property
    def export_held(self) -> bool:
        """Export is blocked until the sync config changes."""
        return self.error_reason in EXPORT_ERROR_REASONS


@dataclass(frozen=True)
class SyncSuccess:
    """What a finished sync run found.

    ``started``: when the run began (the data is at least that new). ``exported``: the run
    also exported (or found the export held). ``problems``: partial problems to show.
    ``blocked``: the export was blocked for this reason, with this message."""

    started: datetime
    exported: bool
    problems: str | None = None
    blocked: tuple[ErrorReason, str] | None = None


def _clip(text: str | None) -> str | None:
    return text[:LAST_ERROR_CHARS] if text else None


def new(now: datetime) -> Lifecycle:
    """A connection just created: CONNECTED and due now."""
    return Lifecycle(
        status=ConnectionStatus.CONNECTED.value,
        error_reason=ErrorReason.UNDEFINED.value,
        failure_count=0,
        next_sync_at=now,
        sync_requested_at=now,
        export_requested_at=None,
        last_synced_at=None,
        last_sync_attempt_at=None,
        last_error=None,
    )


def due(state: Lifecycle, now: datetime) -> Lifecycle:
    """Something requires a new sync (connect, new config, a request): due now, the failure
    count reset, and a run already going on does not answer this request."""
    return replace(state, sync_requested_at=now, next_sync_at=now, failure_count=0)


def export_due(state: Lifecycle, now: datetime) -> Lifecycle:
    """A session of the schedule changed: due now for export. Not a reason to re-import."""
    return replace(state, export_requested_at=now, next_sync_at=now)


def notified(state: Lifecycle, now: datetime, *, running: bool = False) -> Lifecycle:
    """The provider says the account changed (a push notification, a change check): due
    ``NOTIFICATION_COALESCE`` from now, or sooner if it already was, so that a storm of
    notifications makes one sync. ``running``: a run holds the lease now; it may have read the
    calendar before the change, so the connection is due again after it (``sync_succeeded``
    keeps a due time set during the run).

    Unlike ``due`` the failure count stays, so a failing connection keeps its backoff's count,
    and ``sync_requested_at`` stays: the stored data still answers reads (List Events waits
    only for a sync of a new configuration)."""
    soon = now + NOTIFICATION_COALESCE
    if state.next_sync_at > soon or (running and state.next_sync_at <= now):
        return replace(state, next_sync_at=soon)
    return state


def repaired(state: Lifecycle, now: datetime) -> Lifecycle:
    """The account was connected again (new credentials or a new grant): an ERROR is cleared
    and the connection is due now."""
    if state.status == ConnectionStatus.ERROR.value:
        state = replace(
            state, status=ConnectionStatus.CONNECTED.value, error_reason=ErrorReason.UNDEFINED.value
        )
    return due(state, now)


def config_changed(state: Lifecycle, now: datetime, *, export_changed: bool) -> Lifecycle:
    """The sync config changed: an export block is the way out of, and a run going on now
    exports again when the export part changed."""
    if export_changed:
        state = replace(state, export_requested_at=now)
    if state.export_held:
        state = replace(
            state,
            status=ConnectionStatus.CONNECTED.value,
            error_reason=ErrorReason.UNDEFINED.value,
            last_error=None,
        )
    return due(state, now)


def sync_begun(state: Lifecycle, now: datetime) -> Lifecycle:
    return replace(state, status=ConnectionStatus.SYNC_IN_PROGRESS.value, last_sync_attempt_at=now)


def _status_after_success(state: Lifecycle, run: SyncSuccess, *, blocked: bool) -> Lifecycle:
    if blocked and run.blocked is not None:
        reason, message = run.blocked
        return replace(
            state,
            status=ConnectionStatus.ERROR.value,
            error_reason=reason.value,
            last_error=_clip(message),
        )
    if state.export_held:
        return replace(state, status=ConnectionStatus.ERROR.value)  # until the config changes
    return replace(
        state,
        status=ConnectionStatus.SYNCED.value,
        error_reason=ErrorReason.UNDEFINED.value,
        last_error=_clip(run.problems),
    )


def sync_succeeded(
    state: Lifecycle, run: SyncSuccess, *, now: datetime, poll: timedelta
) -> Lifecycle:
    """A run finished. ``last_synced_at`` is when it *started*, so a change requested after
    that moment leaves the connection due whatever the interleaving. A run that only imported
    while the worker backs off (an export throttled, say) keeps the worker's retry time."""
    if state.revoked:
        return state  # refused meanwhile (a run started before it knew): reconnecting clears it
    config_changed_meanwhile = state.sync_requested_at > run.started
    requested = state.export_requested_at
    if run.exported and requested is not None and requested <= run.started:
        requested = None
    again = requested is not None and (not run.exported or requested > run.started)
    state = _status_after_success(state, run, blocked=not config_changed_meanwhile)
    backing_off = state.failure_count > 0 and state.next_sync_at > now
    next_sync_at = state.next_sync_at
    if not (backing_off and not run.exported):
        next_sync_at = _next_after_success(state, run, now=now, poll=poll, again=again)
    return replace(
        state,
        export_requested_at=requested,
        last_synced_at=run.started,
        fresh_as_of=fresh_until(state, run.started),
        failure_count=0,
        next_sync_at=next_sync_at,
    )


def _next_after_success(
    state: Lifecycle, run: SyncSuccess, *, now: datetime, poll: timedelta, again: bool
) -> datetime:
    """Now if something waits; the time a notification during the run asked for (what it
    announced may have come after the run read the calendar), or an earlier poll time that a
    run outside the schedule (a read's refresh) leaves standing; else a poll from now."""
    if again:
        return now
    if run.started < state.next_sync_at < now + poll:
        return state.next_sync_at
    return now + poll


def fresh_until(state: Lifecycle, moment: datetime) -> datetime:
    """``fresh_as_of`` after learning the store matched the provider at ``moment`` (a sync
    that started then, a change check or a healthy push channel then): it never goes back."""
    if state.fresh_as_of is not None and state.fresh_as_of > moment:
        return state.fresh_as_of
    return moment


def unchanged(state: Lifecycle, checked_at: datetime) -> Lifecycle:
    """A change check (or a healthy push channel) found nothing new at ``checked_at``: the
    store is fresh up to then; nothing else changes."""
    return replace(state, fresh_as_of=fresh_until(state, checked_at))


def sync_failed(
    state: Lifecycle,
    *,
    now: datetime,
    retry_in: timedelta,
    error: str | None,
    threshold: int,
    status_before: str,
) -> Lifecycle:
    """A run failed transiently: retried after ``retry_in``; the status before the run is kept
    until ``threshold`` consecutive failures, then ERROR."""
    failures = state.failure_count + 1
    return replace(
        state,
        failure_count=failures,
        next_sync_at=now + retry_in,
        last_error=_clip(error or "internal error"),
        status=ConnectionStatus.ERROR.value if failures >= threshold else status_before,
    )


def token_revoked(state: Lifecycle, detail: str) -> Lifecycle:
    """ERROR / TOKEN_REVOKED: calls to the provider stop until the account is connected again."""
    if state.disconnected:
        return state
    return replace(
        state,
        status=ConnectionStatus.ERROR.value,
        error_reason=ErrorReason.TOKEN_REVOKED.value,
        last_error=_clip(detail),
    )


def disconnected(state: Lifecycle) -> Lifecycle:
    """Final: nothing more is read or written for this connection."""
    return replace(
        state, status=ConnectionStatus.DISCONNECTED.value, error_reason=ErrorReason.UNDEFINED.value
    )
