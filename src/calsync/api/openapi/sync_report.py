"""The JSON Schema and example of ``/v1/connections/{id}/sync`` (``api.wire.sync_report``)."""

from __future__ import annotations

from calsync.api.openapi.schemas import (
    CALENDAR_ID,
    CONNECTION_ID,
    OPAQUE_ID,
    RFC3339,
    Schema,
    _object,
    ref,
)

SYNC_REPORT_EXAMPLE = {
    "connectionId": CONNECTION_ID,
    "status": "SYNCED",
    "errorReason": "UNDEFINED",
    "lastSuccessfulSync": "2024-05-01T08:55:00.000Z",
    "lastAttempt": "2024-05-01T08:55:00.000Z",
    "nextSync": "2024-05-01T09:00:00.000Z",
    "consecutiveFailures": 0,
    "lastError": None,
    "freshAsOf": "2024-05-01T08:59:40.000Z",
    "keptFresh": {
        "method": "CHANGE_CHECK",
        "intervalSeconds": 30,
        "nextCheck": "2024-05-01T09:00:10.000Z",
        "pushChannels": {"live": 0, "total": 0, "nextExpiry": None},
    },
    "calendars": [
        {
            "id": CALENDAR_ID,
            "name": "Primary",
            "lastSync": "2024-05-01T08:55:01.000Z",
            "storedObjects": 42,
            "storedInstances": 137,
        }
    ],
    "export": {
        "target": "dedicated",
        "calendarId": "calsync-bookings",
        "calendarCreatedByCalsync": True,
        "exportedEvents": 12,
        "pendingWrites": 0,
        "refusedWrites": 0,
        "externalEditsRestored": 1,
        "lastExternalEdit": "2024-04-30T17:12:00.000Z",
        "lastExport": "2024-05-01T08:55:02.000Z",
    },
}

SYNC_REPORT: Schema = _object(
    {
        "connectionId": OPAQUE_ID,
        "status": ref("Status"),
        "errorReason": ref("ErrorReason"),
        "lastSuccessfulSync": {**RFC3339, "type": ["string", "null"]},
        "lastAttempt": {**RFC3339, "type": ["string", "null"]},
        "nextSync": {**RFC3339, "type": ["string", "null"]},
        "consecutiveFailures": {"type": "integer", "minimum": 0},
        "lastError": {"type": ["string", "null"]},
        "calendars": {
            "type": "array",
            "items": _object(
                {
                    "id": OPAQUE_ID,
                    "name": {"type": "string"},
                    "lastSync": {**RFC3339, "type": ["string", "null"]},
                    "storedObjects": {"type": "integer", "minimum": 0},
                    "storedInstances": {"type": "integer", "minimum": 0},
                },
                ["id", "name", "lastSync", "storedObjects", "storedInstances"],
            ),
        },
        "freshAsOf": {
            **RFC3339,
            "type": ["string", "null"],
            "description": "The time up to which the stored busy times are known to match "
            "the calendar: the start of the last successful sync, or a later change check "
            "or live push channel that found nothing new. Null before the first sync.",
        },
        "keptFresh": {
            "description": "How the connection is kept fresh; null once disconnected.",
            "oneOf": [
                {"type": "null"},
                _object(
                    {
                        "method": {
                            "enum": ["PUSH", "CHANGE_CHECK", "POLL"],
                            "description": "PUSH: the provider notifies calsync of changes "
                            "(every imported calendar has a live channel); CHANGE_CHECK: "
                            "calsync asks the server every intervalSeconds whether anything "
                            "changed; POLL: the calendars are re-read every intervalSeconds.",
                        },
                        "intervalSeconds": {"type": "number", "minimum": 0},
                        "nextCheck": {**RFC3339, "type": ["string", "null"]},
                        "pushChannels": _object(
                            {
                                "live": {"type": "integer", "minimum": 0},
                                "total": {"type": "integer", "minimum": 0},
                                "nextExpiry": {**RFC3339, "type": ["string", "null"]},
                            },
                            ["live", "total", "nextExpiry"],
                        ),
                    },
                    ["method", "intervalSeconds", "nextCheck", "pushChannels"],
                ),
            ],
        },
        "export": {
            "description": "Where sessions are exported and how it went; null before the "
            "first export run.",
            "oneOf": [
                {"type": "null"},
                _object(
                    {
                        "target": {"enum": ["primary", "dedicated", None]},
                        "calendarId": {"type": ["string", "null"]},
                        "calendarCreatedByCalsync": {"type": "boolean"},
                        "exportedEvents": {"type": "integer", "minimum": 0},
                        "pendingWrites": {"type": "integer", "minimum": 0},
                        "refusedWrites": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Sessions whose event the provider refused; "
                            "each is tried again after a wait (15 min, doubling, at most a "
                            "day), or at once when the session changes.",
                        },
                        "externalEditsRestored": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Exported events the account owner edited, "
                            "set back to the session.",
                        },
                        "lastExternalEdit": {**RFC3339, "type": ["string", "null"]},
                        "lastExport": {**RFC3339, "type": ["string", "null"]},
                    },
                    [
                        "target",
                        "calendarId",
                        "calendarCreatedByCalsync",
                        "exportedEvents",
                        "pendingWrites",
                        "refusedWrites",
                    ],
                ),
            ],
        },
    },
    ["connectionId", "status", "errorReason", "consecutiveFailures", "calendars", "export"],
    examples=[SYNC_REPORT_EXAMPLE],
)
