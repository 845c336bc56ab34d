"""Connection states, sync errors and the export of bookings in words a staff member
understands, with what to do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from calsync.dashboard.pages import when
from calsync.domain import EXPORT_ERROR_REASONS, ConnectionStatus, ErrorReason, ExportConfig
from calsync.service.views import ExportSyncView, SyncReport
from calsync.tz import zone

STATUS_WORDS = {
    ConnectionStatus.CONNECTED: "Connected, first sync pending",
    ConnectionStatus.SYNC_IN_PROGRESS: "Syncing now",
    ConnectionStatus.SYNCED: "Up to date",
    ConnectionStatus.ERROR: "Needs attention",
    ConnectionStatus.DISCONNECTED: "Disconnected",
    ConnectionStatus.UNDEFINED: "Unknown",
}
# A CSS modifier per status: ok (green), busy (blue), bad (red), off (grey).
STATUS_TONE = {
    ConnectionStatus.CONNECTED: "busy",
    ConnectionStatus.SYNC_IN_PROGRESS: "busy",
    ConnectionStatus.SYNCED: "ok",
    ConnectionStatus.ERROR: "bad",
    ConnectionStatus.DISCONNECTED: "off",
    ConnectionStatus.UNDEFINED: "off",
}
CHOOSE_EXPORT = "Choose where bookings go"


@dataclass(frozen=True)
class Problem:
    """What went wrong, in plain words; ``detail`` is the technical text, for support;
    ``action`` names the step on the connection's page that fixes it, if there is one."""

    text: str
    detail: str | None
    action: str | None = None


def problem(
    report: SyncReport, provider_name: str, *, export_target: str | None, calendar_name: str
) -> Problem | None:
    """The connection's current problem, or None when it is healthy.

    ``export_target`` is the configured target ("primary"/"dedicated"/None), ``calendar_name``
    the name of the calendar calsync creates for bookings."""
    reason = report.error_reason
    action = None
    if reason is ErrorReason.TOKEN_REVOKED:
        text = f"{provider_name} refused the saved access: connect again."
    elif reason is ErrorReason.EXTERNAL_CALENDAR_DELETED:
        if export_target == "primary":
            text = f"The {provider_name} account has no calendar to write bookings into any more"
        else:
            text = f"The “{calendar_name}” calendar was deleted in the {provider_name} account"
        text += "; choose where bookings go to export again."
        action = CHOOSE_EXPORT
    elif reason is ErrorReason.EXTERNAL_CALENDAR_CREATION_FAILED:
        text = (
            f"{provider_name} did not let calsync create the “{calendar_name}” calendar, so "
            "bookings are not exported; choose where bookings go to try again."
        )
        action = CHOOSE_EXPORT
    elif report.failure_count > 0:
        times = "once" if report.failure_count == 1 else f"{report.failure_count} times in a row"
        text = (
            f"{provider_name} could not be reached or answered with an error ({times}); "
            "calsync keeps retrying on its own."
        )
    elif report.status is ConnectionStatus.ERROR:
        text = "The last sync failed; calsync keeps retrying on its own."
    else:
        return None
    return Problem(text=text, detail=report.last_error, action=action)


@dataclass(frozen=True)
class ExportState:
    """Where bookings go and how that went: ``text`` is one line; ``restored`` says that
    bookings the account owner moved or deleted were put back (None if none were)."""

    text: str
    restored: str | None


def export_state(
    config: ExportConfig,
    export: ExportSyncView | None,
    *,
    error_reason: ErrorReason,
    calendar_name: str,
    time_zone: str,
    now: datetime,
) -> ExportState:
    """The export of one connection in words: ``config`` is what was chosen, ``export`` what
    calsync did (None before its first export), ``calendar_name`` the target calendar's name."""
    restored = _restored(export.external_edits_restored if export else 0)
    if not config.enabled or config.target is None:
        return ExportState("Bookings are not exported", restored)
    if error_reason.value in EXPORT_ERROR_REASONS:
        return ExportState("Bookings are not exported until you choose where they go", restored)
    resolved = export is not None and export.calendar_id is not None
    if config.target == "primary":
        where = "the primary calendar"
    elif not resolved:
        where = f"a calendar “{calendar_name}” that calsync creates for the first booking"
    elif export is not None and export.calendar_created_by_calsync:
        where = f"a calendar “{calendar_name}” calsync created"
    else:
        where = f"the calendar “{calendar_name}”"
    parts = [f"Bookings go to: {where}"]
    if export is not None and resolved:
        parts.append(f"{export.exported_events} exported")
        if export.pending_writes:
            parts.append(f"{export.pending_writes} being written")
        if export.refused_writes:
            parts.append(f"{export.refused_writes} refused by the calendar (tried again later)")
        if export.last_export_at is not None:
            parts.append("last written " + clock(export.last_export_at, time_zone, now))
    return ExportState(" · ".join(parts), restored)


def _restored(count: int) -> str | None:
    if count <= 0:
        return None
    if count == 1:
        return "1 booking moved or deleted in the calendar was put back"
    return f"{count} bookings moved or deleted in the calendar were put back"


def clock(moment: datetime, time_zone: str, now: datetime) -> str:
    """``09:30`` for a moment of today (in ``time_zone``), else the full ``when``."""
    tz = zone(time_zone)
    local = moment.astimezone(tz)
    if local.date() == now.astimezone(tz).date():
        return f"{local:%H:%M}"
    return when(moment, time_zone)
