"""Service views rendered as the wire JSON of spec section 2 (always-present fields kept)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from calsync.api import sync_config_wire
from calsync.providers.registry import ProviderConfig
from calsync.service.views import (
    CalendarView,
    ConnectionView,
    EventsPage,
    EventView,
    ExportSyncView,
    FreshnessView,
    ScheduleView,
    SyncReport,
)


def provider(p: ProviderConfig) -> dict[str, Any]:
    f = p.features
    return {
        "id": p.id,
        "name": p.name,
        "calendarType": p.calendar_type.value,
        "features": {
            "connectMethods": [m.value for m in f.connect_methods],
            "updateSyncConfig": f.update_sync_config,
            "listEventFromCalendars": f.list_event_from_calendars.value,
            "syncToCalendar": f.sync_to_calendar.value,
        },
    }


def connection(c: ConnectionView) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "providerId": c.provider_id,
        "calendarType": c.calendar_type.value,
        "scheduleId": c.schedule_id,
    }
    if c.user_id:
        out["userId"] = c.user_id
    if c.app_id:
        out["appId"] = c.app_id
    if c.external_account_email:
        out["externalAccountEmail"] = c.external_account_email
    out["status"] = c.status.value
    out["errorReason"] = c.error_reason.value
    out["syncConfig"] = sync_config_wire.render(c.sync_config)
    return out


def calendar(c: CalendarView) -> dict[str, Any]:
    return {"id": c.id, "name": c.name}


def event(e: EventView) -> dict[str, Any]:
    # Called for every event of every page: unpacked once, the key order of the spec kept.
    # CalendarType is a StrEnum: the member is its value's string for every JSON encoder.
    schedule_id, calendar_type, calendar_name, title, start, end, all_day, owner_id, owner = e
    if calendar_name is not None and title is not None and owner_id and owner is not None:
        return {  # OWN_PI for an owned schedule, the common case: one literal is cheapest
            "scheduleId": schedule_id,
            "calendarType": calendar_type,
            "calendarName": calendar_name,
            "title": title,
            "start": start,
            "end": end,
            "allDay": all_day,
            "scheduleOwnerId": owner_id,
            "scheduleOwnerName": owner,
        }
    out: dict[str, Any] = {"scheduleId": schedule_id, "calendarType": calendar_type}
    if calendar_name is not None:
        out["calendarName"] = calendar_name
    if title is not None:
        out["title"] = title
    out["start"] = start
    out["end"] = end
    out["allDay"] = all_day
    if owner_id:
        out["scheduleOwnerId"] = owner_id
    if owner is not None:
        out["scheduleOwnerName"] = owner
    return out


def events_page(page: EventsPage) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "count": len(page.events),
        "cursors": {"next": page.next_cursor} if page.next_cursor else {},
        "hasNext": page.next_cursor is not None,
    }
    return {
        "events": [event(e) for e in page.events],
        "pagingMetadata": metadata,
        "failedProviderIds": page.failed_provider_ids,
    }


def schedule(s: ScheduleView) -> dict[str, Any]:
    out: dict[str, Any] = {"id": s.id}
    if s.owner_user_id:
        out["ownerUserId"] = s.owner_user_id
    out.update(
        ownerName=s.owner_name,
        timeZone=s.time_zone,
        createdDate=_time(s.created_at),
        updatedDate=_time(s.updated_at),
    )
    return out


def _time(value: datetime | None) -> str | None:
    return timestamp(value) if value else None


def timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as every time on the wire."""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sync_report(r: SyncReport) -> dict[str, Any]:
    return {
        "connectionId": r.connection_id,
        "status": r.status.value,
        "errorReason": r.error_reason.value,
        "lastSuccessfulSync": _time(r.last_synced_at),
        "lastAttempt": _time(r.last_sync_attempt_at),
        "nextSync": _time(r.next_sync_at),
        "consecutiveFailures": r.failure_count,
        "lastError": r.last_error,
        "calendars": [
            {
                "id": c.calendar_id,
                "name": c.name,
                "lastSync": _time(c.synced_at),
                "storedObjects": c.resources,
                "storedInstances": c.instances,
            }
            for c in r.calendars
        ],
        "export": _export(r.export) if r.export is not None else None,
        "freshAsOf": _time(r.fresh_as_of),
        "keptFresh": _freshness(r.freshness) if r.freshness is not None else None,
    }


def _freshness(f: FreshnessView) -> dict[str, Any]:
    return {
        "method": f.method,
        "intervalSeconds": f.interval_seconds,
        "nextCheck": _time(f.next_check_at),
        "pushChannels": {
            "live": f.live_push_channels,
            "total": f.push_channels,
            "nextExpiry": _time(f.next_channel_expiry),
        },
    }


def _export(e: ExportSyncView) -> dict[str, Any]:
    return {
        "target": e.target,
        "calendarId": e.calendar_id,
        "calendarCreatedByCalsync": e.calendar_created_by_calsync,
        "exportedEvents": e.exported_events,
        "pendingWrites": e.pending_writes,
        "refusedWrites": e.refused_writes,
        "externalEditsRestored": e.external_edits_restored,
        "lastExternalEdit": _time(e.last_external_edit_at),
        "lastExport": _time(e.last_export_at),
    }
