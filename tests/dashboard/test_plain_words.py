"""The export of bookings and its errors in plain words (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

from calsync.dashboard.plain_words import CHOOSE_EXPORT, export_state, problem
from calsync.domain import ConnectionStatus, ErrorReason, ExportConfig
from calsync.service.views import ExportSyncView, SyncReport

NOW = datetime(2031, 3, 3, 12, 0, tzinfo=UTC)


def _export(**fields: object) -> ExportSyncView:
    values: dict[str, object] = {
        "target": "primary",
        "calendar_id": "work",
        "calendar_created_by_calsync": False,
        "exported_events": 3,
        "pending_writes": 0,
        "refused_writes": 0,
        "external_edits_restored": 0,
        "last_external_edit_at": None,
        "last_export_at": datetime(2031, 3, 3, 8, 43, tzinfo=UTC),
        **fields,
    }
    return ExportSyncView(**values)  # type: ignore[arg-type]


def _words(config: ExportConfig, export: ExportSyncView | None, **kw: object) -> str:
    state = export_state(
        config,
        export,
        error_reason=kw.get("reason", ErrorReason.UNDEFINED),  # type: ignore[arg-type]
        calendar_name="Bookings",
        time_zone="Europe/Berlin",
        now=NOW,
    )
    return state.text


def test_where_bookings_go() -> None:
    primary = ExportConfig(enabled=True, target="primary")
    assert _words(primary, _export()) == (
        "Bookings go to: the primary calendar · 3 exported · last written 09:43"
    )
    yesterday = _export(pending_writes=2, last_export_at=datetime(2031, 3, 2, 8, 43, tzinfo=UTC))
    assert _words(primary, yesterday) == (
        "Bookings go to: the primary calendar · 3 exported · 2 being written"
        " · last written Sun 2 Mar 2031, 09:43"
    )
    refused = _export(refused_writes=1)
    assert _words(primary, refused) == (
        "Bookings go to: the primary calendar · 3 exported · 1 refused by the calendar"
        " (tried again later) · last written 09:43"
    )
    dedicated = ExportConfig(enabled=True, target="dedicated")
    created = _export(target="dedicated", calendar_created_by_calsync=True, last_export_at=None)
    assert _words(dedicated, created) == (
        "Bookings go to: a calendar “Bookings” calsync created · 3 exported"
    )
    assert _words(dedicated, _export(target="dedicated")).startswith(
        "Bookings go to: the calendar “Bookings” · "
    )
    assert _words(ExportConfig(enabled=False, target="primary"), _export()) == (
        "Bookings are not exported"
    )
    held = _words(dedicated, None, reason=ErrorReason.EXTERNAL_CALENDAR_DELETED)
    assert held == "Bookings are not exported until you choose where they go"


def test_restored_edits_are_counted() -> None:
    config = ExportConfig(enabled=True, target="primary")
    for count, words in (
        (0, None),
        (1, "1 booking moved or deleted in the calendar was put back"),
        (2, "2 bookings moved or deleted in the calendar were put back"),
    ):
        state = export_state(
            config,
            _export(external_edits_restored=count),
            error_reason=ErrorReason.UNDEFINED,
            calendar_name="Bookings",
            time_zone="UTC",
            now=NOW,
        )
        assert state.restored == words


def test_export_errors_say_what_happened_and_what_to_do() -> None:
    def report(reason: ErrorReason) -> SyncReport:
        return SyncReport(
            connection_id="c",
            status=ConnectionStatus.ERROR,
            error_reason=reason,
            last_synced_at=None,
            last_sync_attempt_at=None,
            next_sync_at=None,
            failure_count=0,
            last_error="410 Gone",
            calendars=[],
        )

    deleted = report(ErrorReason.EXTERNAL_CALENDAR_DELETED)
    found = problem(deleted, "iCloud", export_target="dedicated", calendar_name="Bookings")
    assert found is not None and found.action == CHOOSE_EXPORT
    assert found.text == (
        "The “Bookings” calendar was deleted in the iCloud account; "
        "choose where bookings go to export again."
    )
    found = problem(deleted, "Google", export_target="primary", calendar_name="Bookings")
    assert found is not None
    assert found.text.startswith("The Google account has no calendar to write bookings into")
    failed = report(ErrorReason.EXTERNAL_CALENDAR_CREATION_FAILED)
    found = problem(failed, "iCloud", export_target="dedicated", calendar_name="Bookings")
    assert found is not None and found.action == CHOOSE_EXPORT and found.detail == "410 Gone"
    assert "did not let calsync create the “Bookings” calendar" in found.text
    revoked = report(ErrorReason.TOKEN_REVOKED)
    found = problem(revoked, "iCloud", export_target="dedicated", calendar_name="Bookings")
    assert found is not None and found.action is None
