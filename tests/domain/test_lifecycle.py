"""The connection state machine, transition by transition (a table per transition)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from calsync.domain import ConnectionStatus, ErrorReason
from calsync.domain import lifecycle as lc

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLL = timedelta(minutes=5)
S = ConnectionStatus
R = ErrorReason


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def state(**changes: object) -> lc.Lifecycle:
    return replace(lc.new(T0), **changes)  # type: ignore[arg-type]


def test_a_new_connection_is_connected_and_due_now() -> None:
    new = lc.new(T0)
    assert (new.status, new.error_reason, new.failure_count) == ("CONNECTED", "UNDEFINED", 0)
    assert new.next_sync_at == new.sync_requested_at == T0
    assert new.last_synced_at is None


@pytest.mark.parametrize(
    ("before", "after_status", "after_reason"),
    [
        (state(status=S.SYNCED.value), S.SYNCED, R.UNDEFINED),
        (state(status=S.ERROR.value, error_reason=R.TOKEN_REVOKED.value), S.CONNECTED, R.UNDEFINED),
        (state(status=S.ERROR.value, error_reason=R.UNDEFINED.value), S.CONNECTED, R.UNDEFINED),
    ],
)
def test_repaired_clears_an_error_and_is_due_now(
    before: lc.Lifecycle, after_status: S, after_reason: R
) -> None:
    after = lc.repaired(replace(before, failure_count=3, next_sync_at=at(30)), at(1))
    assert (after.status, after.error_reason) == (after_status.value, after_reason.value)
    assert (after.failure_count, after.next_sync_at, after.sync_requested_at) == (0, at(1), at(1))


@pytest.mark.parametrize(
    ("reason", "export_changed", "status", "cleared"),
    [
        (R.EXTERNAL_CALENDAR_DELETED, False, S.CONNECTED, True),
        (R.EXTERNAL_CALENDAR_CREATION_FAILED, True, S.CONNECTED, True),
        (R.TOKEN_REVOKED, False, S.ERROR, False),  # only reconnecting clears a refused token
    ],
)
def test_a_new_config_is_the_way_out_of_an_export_block(
    reason: R, export_changed: bool, status: S, cleared: bool
) -> None:
    before = state(status=S.ERROR.value, error_reason=reason.value, last_error="x")
    after = lc.config_changed(before, at(2), export_changed=export_changed)
    assert after.status == status.value
    assert (after.error_reason == R.UNDEFINED.value) is cleared
    assert (after.last_error is None) is cleared
    assert after.next_sync_at == at(2)
    assert after.export_requested_at == (at(2) if export_changed else None)


def test_sync_begun_is_in_progress_and_records_the_attempt() -> None:
    after = lc.sync_begun(state(status=S.SYNCED.value), at(3))
    assert (after.status, after.last_sync_attempt_at) == (S.SYNC_IN_PROGRESS.value, at(3))


@pytest.mark.parametrize(
    ("requested", "exported", "next_due"),
    [
        (None, True, at(10) + POLL),  # nothing waits: next poll
        (at(-1), True, at(10) + POLL),  # the request was answered by this run
        (at(1), True, at(10)),  # a session changed while the run exported: due again now
        (at(-1), False, at(10)),  # this run only imported: the export waits, due now
    ],
)
def test_sync_succeeded_schedules_by_what_still_waits(
    requested: datetime | None, exported: bool, next_due: datetime
) -> None:
    before = state(status=S.SYNC_IN_PROGRESS.value, export_requested_at=requested)
    run = lc.SyncSuccess(started=at(0), exported=exported, problems="calendar x gone")
    after = lc.sync_succeeded(before, run, now=at(10), poll=POLL)
    assert (after.status, after.error_reason) == (S.SYNCED.value, R.UNDEFINED.value)
    assert (after.last_synced_at, after.next_sync_at) == (at(0), next_due)
    assert after.last_error == "calendar x gone"
    assert after.export_requested_at == (None if exported and requested == at(-1) else requested)


def test_an_import_only_success_keeps_the_workers_backoff() -> None:
    before = state(failure_count=2, next_sync_at=at(20))
    run = lc.SyncSuccess(started=at(0), exported=False)
    after = lc.sync_succeeded(before, run, now=at(10), poll=POLL)
    assert (after.failure_count, after.next_sync_at) == (0, at(20))
    exported = lc.sync_succeeded(before, replace(run, exported=True), now=at(10), poll=POLL)
    assert exported.next_sync_at == at(10) + POLL


@pytest.mark.parametrize(
    ("config_changed_meanwhile", "status", "reason"),
    [
        (False, S.ERROR, R.EXTERNAL_CALENDAR_DELETED),
        (True, S.SYNCED, R.UNDEFINED),  # the new config may not be blocked: the next run sees
    ],
)
def test_sync_succeeded_with_the_export_blocked(
    config_changed_meanwhile: bool, status: S, reason: R
) -> None:
    requested = at(1) if config_changed_meanwhile else at(-5)
    before = state(sync_requested_at=requested)
    run = lc.SyncSuccess(
        started=at(0), exported=True, blocked=(R.EXTERNAL_CALENDAR_DELETED, "calendar gone")
    )
    after = lc.sync_succeeded(before, run, now=at(10), poll=POLL)
    assert (after.status, after.error_reason) == (status.value, reason.value)


def test_an_export_block_holds_through_later_successes_until_the_config_changes() -> None:
    before = state(status=S.ERROR.value, error_reason=R.EXTERNAL_CALENDAR_DELETED.value)
    after = lc.sync_succeeded(
        before, lc.SyncSuccess(started=at(0), exported=True), now=at(1), poll=POLL
    )
    assert (after.status, after.error_reason) == (S.ERROR.value, R.EXTERNAL_CALENDAR_DELETED.value)


def test_a_success_does_not_clear_a_token_refused_meanwhile() -> None:
    before = lc.token_revoked(state(), "refused")
    after = lc.sync_succeeded(
        before, lc.SyncSuccess(started=at(0), exported=True), now=at(1), poll=POLL
    )
    assert after == before


@pytest.mark.parametrize(
    ("failures_before", "threshold", "status"),
    [(0, 5, S.SYNCED), (3, 5, S.SYNCED), (4, 5, S.ERROR), (9, 5, S.ERROR), (0, 1, S.ERROR)],
)
def test_sync_failed_keeps_the_status_until_the_threshold(
    failures_before: int, threshold: int, status: S
) -> None:
    before = state(status=S.SYNC_IN_PROGRESS.value, failure_count=failures_before)
    after = lc.sync_failed(
        before,
        now=at(1),
        retry_in=timedelta(seconds=30),
        error="x" * 900,
        threshold=threshold,
        status_before=S.SYNCED.value,
    )
    assert after.status == status.value
    assert after.failure_count == failures_before + 1
    assert after.next_sync_at == at(1) + timedelta(seconds=30)
    assert after.last_error == "x" * lc.LAST_ERROR_CHARS


def test_an_internal_failure_says_so() -> None:
    after = lc.sync_failed(
        state(), now=at(1), retry_in=timedelta(0), error=None, threshold=5, status_before="SYNCED"
    )
    assert after.last_error == "internal error"


@pytest.mark.parametrize(
    ("before", "status", "reason"),
    [
        (state(status=S.SYNCED.value), S.ERROR, R.TOKEN_REVOKED),
        (state(status=S.DISCONNECTED.value), S.DISCONNECTED, R.UNDEFINED),
    ],
)
def test_token_revoked(before: lc.Lifecycle, status: S, reason: R) -> None:
    after = lc.token_revoked(before, "invalid_grant")
    assert (after.status, after.error_reason) == (status.value, reason.value)


@pytest.mark.parametrize("status", list(S))
def test_disconnected_is_final_from_any_state(status: S) -> None:
    after = lc.disconnected(state(status=status.value, error_reason=R.TOKEN_REVOKED.value))
    assert (after.status, after.error_reason) == (S.DISCONNECTED.value, R.UNDEFINED.value)
    assert after.disconnected


def test_due_export_due_and_notified() -> None:
    before = state(failure_count=2, next_sync_at=at(30))
    assert (lc.due(before, at(1)).failure_count, lc.due(before, at(1)).next_sync_at) == (0, at(1))
    export = lc.export_due(before, at(1))
    assert (export.export_requested_at, export.next_sync_at) == (at(1), at(1))
    assert export.sync_requested_at == before.sync_requested_at  # not a reason to re-import
    notified = lc.notified(before, at(1))
    assert (notified.next_sync_at, notified.failure_count) == (at(1) + lc.NOTIFICATION_COALESCE, 2)
    # Already due (and not running): stays so; a storm does not push it back.
    assert lc.notified(state(next_sync_at=at(0)), at(1)).next_sync_at == at(0)
    soon = at(1) + lc.NOTIFICATION_COALESCE
    assert (
        lc.notified(state(next_sync_at=soon), at(1) + timedelta(seconds=0.5)).next_sync_at == soon
    )
    # Not a new configuration: reads keep answering from the store meanwhile.
    assert notified.sync_requested_at == before.sync_requested_at


def test_a_notification_during_a_run_leaves_the_connection_due() -> None:
    """The run may have read the calendar before the change it announced: run again."""
    running = state(next_sync_at=at(0))
    notified = lc.notified(running, at(2), running=True)
    after = lc.sync_succeeded(
        notified, lc.SyncSuccess(started=at(1), exported=True), now=at(3), poll=POLL
    )
    assert after.next_sync_at == at(2) + lc.NOTIFICATION_COALESCE  # due, as the notice asked
    # A read's refresh (outside the schedule) leaves the poll time standing.
    scheduled = state(next_sync_at=at(4))
    refreshed = lc.sync_succeeded(
        scheduled, lc.SyncSuccess(started=at(1), exported=True), now=at(2), poll=POLL
    )
    assert refreshed.next_sync_at == at(4)
    quiet = lc.sync_succeeded(
        running, lc.SyncSuccess(started=at(1), exported=True), now=at(3), poll=POLL
    )
    assert quiet.next_sync_at == at(3) + POLL


def test_freshness_advances_with_syncs_and_checks_and_never_goes_back() -> None:
    synced = lc.sync_succeeded(
        state(), lc.SyncSuccess(started=at(0), exported=True), now=at(1), poll=POLL
    )
    assert synced.fresh_as_of == at(0)  # the run's start: changes after it may be missing
    checked = lc.unchanged(synced, at(5))
    assert checked.fresh_as_of == at(5)
    assert checked.next_sync_at == synced.next_sync_at  # a check changes nothing else
    assert lc.unchanged(checked, at(2)).fresh_as_of == at(5)  # a late answer: not back
    slow_run = lc.sync_succeeded(
        checked, lc.SyncSuccess(started=at(3), exported=True), now=at(6), poll=POLL
    )
    assert slow_run.fresh_as_of == at(5)
