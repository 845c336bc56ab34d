"""Connection states and sync errors in words a staff member understands, with what to do."""

from __future__ import annotations

from dataclasses import dataclass

from calsync.domain import ConnectionStatus, ErrorReason
from calsync.service.views import SyncReport

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


@dataclass(frozen=True)
class Problem:
    """What went wrong, in plain words; ``detail`` is the technical text, for support."""

    text: str
    detail: str | None


def problem(report: SyncReport, provider_name: str) -> Problem | None:
    """The connection's current problem, or None when it is healthy."""
    reason = report.error_reason
    if reason is ErrorReason.TOKEN_REVOKED:
        text = f"{provider_name} refused the saved access: connect again."
    elif reason is ErrorReason.EXTERNAL_CALENDAR_DELETED:
        text = (
            f"The calendar bookings were exported to was deleted in {provider_name}: "
            "choose where bookings go again."
        )
    elif reason is ErrorReason.EXTERNAL_CALENDAR_CREATION_FAILED:
        text = (
            f"{provider_name} did not let calsync create a calendar for bookings: "
            "export to the primary calendar, or try again later."
        )
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
    return Problem(text=text, detail=report.last_error)
