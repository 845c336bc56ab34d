"""JSON Schemas (OpenAPI 3.1 / JSON Schema 2020-12) and examples of calsync's wire objects.

Field names follow ``spec/external-calendar-api.md`` section 2 and the renderers in
``api/wire.py`` and ``api/sync_config_wire.py``; enum values come from ``calsync.domain`` so
they cannot drift. ``api/openapi.py`` assembles the document from these parts.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from calsync.api.parse import GUID
from calsync.domain import (
    CalendarType,
    ConnectionStatus,
    ConnectMethod,
    ErrorReason,
    ListEventFromCalendars,
    SyncToCalendar,
)

Schema = dict[str, Any]

PROVIDER_ID = "9f084ae8-b3a6-4eb6-a29d-bc682c04b5fc"
SCHEDULE_ID = "3e9b3c55-6a0f-4bd4-8d1e-6a2d2a8f0c11"
USER_ID = "0b5c2f7e-5d7b-4c8e-9f61-6a3e4e1b2c3d"
CONNECTION_ID = "k3Jd9XqP2mZt7LwR4vNc8HsY1bFg6QeA0uTo5iKy"
CALENDAR_ID = "2cnk4sgx4haqxbuz0sao0flxw"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _enum(kind: type[StrEnum], description: str) -> Schema:
    return {"type": "string", "enum": [e.value for e in kind], "description": description}


def _object(
    properties: dict[str, Schema],
    required: list[str] | None = None,
    *,
    not_: Schema | None = None,
    **extra: Any,
) -> Schema:
    """An object schema; ``not_`` is JSON Schema's ``not`` (a Python keyword)."""
    out: Schema = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    if not_ is not None:
        out["not"] = not_
    out.update(extra)
    return out


GUID_SCHEMA: Schema = {
    "type": "string",
    "pattern": GUID.pattern,
    "description": "A GUID (8-4-4-4-12 hexadecimal groups, any case).",
}
RFC3339: Schema = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 date-time with seconds and a zone designator.",
}
EMPTY: Schema = {"type": "object", "maxProperties": 0, "description": "Set by being present."}
OPAQUE_ID: Schema = {"type": "string", "minLength": 1, "description": "An opaque identifier."}

CALENDAR_EXAMPLE = {"id": CALENDAR_ID, "name": "Primary"}
PROVIDER_EXAMPLE = {
    "id": PROVIDER_ID,
    "name": "Apple iCloud",
    "calendarType": "I_CAL",
    "features": {
        "connectMethods": ["CREDENTIALS"],
        "updateSyncConfig": True,
        "listEventFromCalendars": "SPECIFIC_CALENDARS",
        "syncToCalendar": "DEDICATED_CALENDAR",
    },
}
SYNC_CONFIG_EXAMPLE = {
    "listEventFromCalendars": {"enabled": True, "calendars": {"calendars": [{"id": CALENDAR_ID}]}},
    "syncToCalendar": {"enabled": True, "dedicatedCalendar": {}},
}
CONNECTION_EXAMPLE = {
    "id": CONNECTION_ID,
    "providerId": PROVIDER_ID,
    "calendarType": "I_CAL",
    "scheduleId": SCHEDULE_ID,
    "userId": USER_ID,
    "externalAccountEmail": "ada@example.com",
    "status": "SYNCED",
    "errorReason": "UNDEFINED",
    "syncConfig": SYNC_CONFIG_EXAMPLE,
}
EVENT_EXAMPLE = {
    "scheduleId": SCHEDULE_ID,
    "calendarType": "I_CAL",
    "calendarName": "Primary",
    "title": "Dentist",
    "start": "2024-05-01T09:00:00.000Z",
    "end": "2024-05-01T10:00:00.000Z",
    "allDay": False,
    "scheduleOwnerId": USER_ID,
    "scheduleOwnerName": "Ada Lovelace",
}
SCHEDULE_EXAMPLE = {
    "id": SCHEDULE_ID,
    "ownerUserId": USER_ID,
    "ownerName": "Ada Lovelace",
    "timeZone": "Europe/Berlin",
    "createdDate": "2024-04-30T08:00:00.000Z",
    "updatedDate": "2024-04-30T08:00:00.000Z",
}

SESSION_EXAMPLE = {
    "id": "booking-1042",
    "scheduleId": SCHEDULE_ID,
    "title": "Haircut with Ada",
    "status": "CONFIRMED",
    "allDay": False,
    "timeZone": "Europe/Berlin",
    "start": "2024-05-02T10:00:00+02:00",
    "end": "2024-05-02T11:00:00+02:00",
    "location": "Main street 1",
    "revision": 1,
    "createdDate": "2024-04-30T08:00:00.000Z",
    "updatedDate": "2024-04-30T08:00:00.000Z",
}
SESSION_INPUT_EXAMPLE = {
    "title": "Haircut with Ada",
    "status": "CONFIRMED",
    "start": "2024-05-02T10:00:00+02:00",
    "end": "2024-05-02T11:00:00+02:00",
    "timeZone": "Europe/Berlin",
    "location": "Main street 1",
}
ALL_DAY_SESSION_INPUT_EXAMPLE = {
    "title": "Team offsite",
    "status": "CONFIRMED",
    "allDay": True,
    "start": "2024-05-06",
    "end": "2024-05-08",
}
# Timed sessions: RFC 3339 date-times with a zone; all-day ones: full dates, the end exclusive.
_SESSION_TIMES: Schema = {
    "if": {"properties": {"allDay": {"const": True}}, "required": ["allDay"]},
    "then": {
        "properties": {
            "start": {"type": "string", "format": "date"},
            "end": {"type": "string", "format": "date"},
        }
    },
    "else": {"properties": {"start": RFC3339, "end": RFC3339}},
}
_SESSION_FIELDS: dict[str, Schema] = {
    "title": {"type": "string", "maxLength": 500},
    "status": {
        "type": "string",
        "enum": ["CONFIRMED", "CANCELLED"],
        "description": "CANCELLED removes the exported event.",
    },
    "allDay": {"type": "boolean", "default": False},
    "start": {"type": "string", "description": "date-time, or date when allDay."},
    "end": {"type": "string", "description": "Exclusive; date-time, or date when allDay."},
    "timeZone": {
        "type": "string",
        "maxLength": 64,
        "description": "IANA time zone; default: the schedule's.",
    },
    "location": {"type": "string", "maxLength": 1000},
    "description": {"type": "string", "maxLength": 8000},
}

_IMPORT: Schema = _object(
    {
        "enabled": {"type": "boolean", "description": "Whether List Events returns its events."},
        "primaryCalendar": {**EMPTY, "description": "Import from the primary calendar only."},
        "calendars": _object(
            {"calendars": {"type": "array", "maxItems": 100, "items": ref("CalendarRef")}},
            ["calendars"],
            description="Import from these calendars (ids from List Calendars).",
        ),
    },
    description="Import (external calendar -> platform). At most one of primaryCalendar and "
    "calendars.",
    not_={"required": ["primaryCalendar", "calendars"]},
)
_EXPORT: Schema = _object(
    {
        "enabled": {"type": "boolean", "description": "Whether sessions are exported."},
        "primaryCalendar": {**EMPTY, "description": "Export into the primary calendar."},
        "dedicatedCalendar": {**EMPTY, "description": "Export into a calendar calsync creates."},
        "includeBufferTime": {"type": "boolean", "description": "Internal flag; stored only."},
        "appendSingleParticipantNameToEventSummary": {
            "type": "boolean",
            "description": "Internal flag; stored only.",
        },
    },
    description="Export (platform sessions -> external calendar). At most one of "
    "primaryCalendar and dedicatedCalendar.",
    not_={"required": ["primaryCalendar", "dedicatedCalendar"]},
)

_FIELD_VIOLATION = _object(
    {
        "field": {"type": "string", "examples": ["cursorPaging.limit"]},
        "description": {"type": "string"},
        "violatedRule": {
            "type": "string",
            "examples": ["REQUIRED_FIELD", "FORMAT", "MAX", "MIN", "MAX_SIZE", "ONEOF", "OTHER"],
        },
        "ruleName": {"type": "string", "const": "VALIDATION_ERROR"},
        "data": {"type": "object"},
    },
    ["field", "description", "violatedRule"],
)

SCHEMAS: dict[str, Schema] = {
    "Guid": GUID_SCHEMA,
    "CalendarType": _enum(CalendarType, "Kind of external calendar."),
    "ConnectMethod": _enum(ConnectMethod, "How a provider's accounts are connected."),
    "ListEventFromCalendars": _enum(ListEventFromCalendars, "A provider's import capability."),
    "SyncToCalendar": _enum(SyncToCalendar, "A provider's export capability."),
    "Status": _enum(ConnectionStatus, "Lifecycle state of a connection."),
    "ErrorReason": _enum(ErrorReason, "Why a connection is in ERROR; UNDEFINED otherwise."),
    "ProviderFeatures": _object(
        {
            "connectMethods": {"type": "array", "items": ref("ConnectMethod")},
            "updateSyncConfig": {"type": "boolean"},
            "listEventFromCalendars": ref("ListEventFromCalendars"),
            "syncToCalendar": ref("SyncToCalendar"),
        },
        ["connectMethods", "updateSyncConfig", "listEventFromCalendars", "syncToCalendar"],
    ),
    "Provider": _object(
        {
            "id": ref("Guid"),
            "name": {"type": "string", "examples": ["Google"]},
            "calendarType": ref("CalendarType"),
            "features": ref("ProviderFeatures"),
        },
        ["id", "name", "calendarType", "features"],
        examples=[PROVIDER_EXAMPLE],
    ),
    "CalendarRef": _object(
        {"id": OPAQUE_ID, "name": {"type": "string", "description": "Read-only; ignored."}},
        ["id"],
    ),
    "Calendar": _object(
        {"id": OPAQUE_ID, "name": {"type": "string"}}, ["id", "name"], examples=[CALENDAR_EXAMPLE]
    ),
    "ConnectionSyncConfig": _object(
        {"listEventFromCalendars": _IMPORT, "syncToCalendar": _EXPORT},
        examples=[SYNC_CONFIG_EXAMPLE],
    ),
    "Connection": _object(
        {
            "id": {**OPAQUE_ID, "description": "Connection ID (opaque, not a GUID)."},
            "providerId": ref("Guid"),
            "calendarType": ref("CalendarType"),
            "scheduleId": ref("Guid"),
            "userId": ref("Guid"),
            "appId": ref("Guid"),
            "externalAccountEmail": {"type": "string", "format": "email"},
            "status": ref("Status"),
            "errorReason": ref("ErrorReason"),
            "syncConfig": ref("ConnectionSyncConfig"),
        },
        ["id", "providerId", "calendarType", "scheduleId", "status", "errorReason", "syncConfig"],
        examples=[CONNECTION_EXAMPLE],
    ),
    "Event": _object(
        {
            "scheduleId": ref("Guid"),
            "calendarType": ref("CalendarType"),
            "calendarName": {"type": "string", "description": "Only with fieldsets=OWN_PI."},
            "title": {"type": "string", "description": "Only with fieldsets=OWN_PI."},
            "start": {**RFC3339, "description": "Start, inclusive."},
            "end": {**RFC3339, "description": "End, exclusive."},
            "allDay": {"type": "boolean"},
            "scheduleOwnerId": {"type": "string"},
            "scheduleOwnerName": {"type": "string", "description": "Only with fieldsets=OWN_PI."},
        },
        ["scheduleId", "calendarType", "start", "end", "allDay"],
        examples=[EVENT_EXAMPLE],
    ),
    "CursorPagingMetadata": _object(
        {
            "count": {"type": "integer", "minimum": 0},
            "cursors": _object({"next": {"type": "string"}}),
            "hasNext": {"type": "boolean"},
        },
        ["count", "cursors", "hasNext"],
    ),
    "ErrorEnvelope": _object(
        {
            "message": {"type": "string"},
            "details": {
                "type": "object",
                "description": "applicationError or validationError, never both.",
                "properties": {
                    "applicationError": _object(
                        {
                            "code": {"type": "string", "examples": ["NOT_FOUND"]},
                            "description": {"type": "string"},
                            "data": {"type": "object"},
                        },
                        ["code", "description", "data"],
                    ),
                    "validationError": _object(
                        {"fieldViolations": {"type": "array", "items": _FIELD_VIOLATION}},
                        ["fieldViolations"],
                    ),
                },
                "not": {"required": ["applicationError", "validationError"]},
            },
        },
        ["message", "details"],
    ),
    "Health": _object(
        {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "database": {"type": "string", "enum": ["ok", "down"]},
            "version": {"type": "string", "description": "calsync's version."},
        },
        ["status", "database", "version"],
    ),
    "ScheduleInput": _object(
        {
            "id": {**GUID_SCHEMA, "description": "Optional echo of the path's scheduleId."},
            "ownerUserId": {
                **GUID_SCHEMA,
                "description": "The platform user who owns the schedule; changing it "
                "disconnects the schedule's connections.",
            },
            "ownerName": {"type": "string", "maxLength": 300},
            "timeZone": {
                "type": "string",
                "maxLength": 64,
                "default": "UTC",
                "description": "IANA time zone name.",
            },
        },
        examples=[
            {"ownerUserId": USER_ID, "ownerName": "Ada Lovelace", "timeZone": "Europe/Berlin"}
        ],
    ),
    "Schedule": _object(
        {
            "id": ref("Guid"),
            "ownerUserId": ref("Guid"),
            "ownerName": {"type": "string"},
            "timeZone": {"type": "string"},
            "createdDate": RFC3339,
            "updatedDate": RFC3339,
        },
        ["id", "ownerName", "timeZone", "createdDate", "updatedDate"],
        examples=[SCHEDULE_EXAMPLE],
    ),
    "SessionInput": _object(
        {"id": {"type": "string", "description": "Optional echo of sessionId."}, **_SESSION_FIELDS},
        ["title", "status", "start", "end"],
        examples=[SESSION_INPUT_EXAMPLE, ALL_DAY_SESSION_INPUT_EXAMPLE],
        **_SESSION_TIMES,
    ),
    "Session": _object(
        {
            "id": {"type": "string", "description": "The platform's session ID."},
            "scheduleId": ref("Guid"),
            **_SESSION_FIELDS,
            "timeZone": {"type": "string"},
            "revision": {
                "type": "integer",
                "minimum": 1,
                "description": "Grows with every change that alters the exported event.",
            },
            "createdDate": RFC3339,
            "updatedDate": RFC3339,
        },
        [
            "id",
            "scheduleId",
            "title",
            "status",
            "allDay",
            "timeZone",
            "start",
            "end",
            "revision",
            "createdDate",
            "updatedDate",
        ],
        examples=[SESSION_EXAMPLE],
        **_SESSION_TIMES,
    ),
}
