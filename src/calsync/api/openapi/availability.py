"""Free/busy and availability in OpenAPI: ``POST /v1/free-busy:query`` and
``POST /v1/availability:query`` (calsync-v1-extensions.md sections 2 and 3)."""

from __future__ import annotations

from typing import Any

from calsync.api.openapi.parts import body, errors, ok, operation
from calsync.api.openapi.schemas import RFC3339, SCHEDULE_ID, Schema, ref
from calsync.service.events.availability import DAYS

TAG = "Availability"
OTHER_SCHEDULE = "7a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ROOM = "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"
CONNECTION = "k3Jd9XqP2mZt7LwR4vNc8HsY1bFg6QeA0uTo5iKy"
_MINUTES: Schema = {"type": "integer", "minimum": 0, "maximum": 44640, "default": 0}
_CLOCK: Schema = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"}
_IDS: Schema = {"type": "array", "items": ref("Guid"), "minItems": 1}

INTERVAL: Schema = {
    "type": "object",
    "properties": {"start": RFC3339, "end": RFC3339},
    "required": ["start", "end"],
}
FREE_BUSY_REQUEST_EXAMPLE = {
    "from": "2027-01-04T00:00:00Z",
    "to": "2027-01-11T00:00:00Z",
    "scheduleIds": [SCHEDULE_ID],
    "includeSessions": False,
}
FREE_BUSY_EXAMPLE = {
    "schedules": [
        {
            "scheduleId": SCHEDULE_ID,
            "busy": [{"start": "2027-01-04T09:00:00.000Z", "end": "2027-01-04T11:30:00.000Z"}],
            "failedConnectionIds": [],
        }
    ]
}
AVAILABILITY_REQUEST_EXAMPLE = {
    "from": "2027-01-04T00:00:00Z",
    "to": "2027-01-09T00:00:00Z",
    "durationMinutes": 60,
    "slotStepMinutes": 15,
    "bufferBeforeMinutes": 0,
    "bufferAfterMinutes": 10,
    "workingHours": [{"day": "MON", "start": "09:00", "end": "17:00"}],
    "groups": [
        {"scheduleIds": [SCHEDULE_ID, OTHER_SCHEDULE], "required": 1},
        {"scheduleIds": [ROOM], "required": 1},
    ],
}
AVAILABILITY_EXAMPLE = {
    "slots": [
        {
            "start": "2027-01-04T08:00:00.000Z",
            "end": "2027-01-04T09:00:00.000Z",
            "scheduleIds": [SCHEDULE_ID, ROOM],
        }
    ]
}

AVAILABILITY_SCHEMAS: dict[str, Schema] = {
    "BusyInterval": {**INTERVAL, "description": "A busy interval [start, end), in UTC."},
    "FreeBusyQuery": {
        "type": "object",
        "properties": {
            "from": {**RFC3339, "description": "Window start, inclusive."},
            "to": {**RFC3339, "description": "Window end, exclusive; at most 366 days after."},
            "scheduleIds": {**_IDS, "maxItems": 100},
            "includeSessions": {"type": "boolean", "default": False},
        },
        "required": ["from", "to", "scheduleIds"],
        "examples": [FREE_BUSY_REQUEST_EXAMPLE],
    },
    "ScheduleFreeBusy": {
        "type": "object",
        "properties": {
            "scheduleId": ref("Guid"),
            "busy": {"type": "array", "items": ref("BusyInterval")},
            "failedConnectionIds": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["scheduleId", "busy", "failedConnectionIds"],
    },
    "FreeBusy": {
        "type": "object",
        "properties": {"schedules": {"type": "array", "items": ref("ScheduleFreeBusy")}},
        "required": ["schedules"],
        "examples": [FREE_BUSY_EXAMPLE],
    },
    "WorkingHours": {
        "type": "object",
        "properties": {"day": {"enum": list(DAYS)}, "start": _CLOCK, "end": _CLOCK},
        "required": ["day", "start", "end"],
        "description": "Hours on a weekday, in each schedule's own time zone; end after start.",
    },
    "AvailabilityGroup": {
        "type": "object",
        "properties": {
            "scheduleIds": {**_IDS, "maxItems": 50, "uniqueItems": True},
            "required": {"type": "integer", "minimum": 1, "default": 1},
        },
        "required": ["scheduleIds"],
        "description": "At least `required` (at most the group's size) must be free.",
    },
    "AvailabilityQuery": {
        "type": "object",
        "properties": {
            "from": {**RFC3339, "description": "Window start; the slot grid starts here."},
            "to": {**RFC3339, "description": "Window end; at most 31 days after from."},
            "durationMinutes": {"type": "integer", "minimum": 1, "maximum": 44640},
            "slotStepMinutes": {"type": "integer", "minimum": 1, "maximum": 44640, "default": 15},
            "bufferBeforeMinutes": _MINUTES,
            "bufferAfterMinutes": _MINUTES,
            "workingHours": {"type": "array", "items": ref("WorkingHours"), "maxItems": 100},
            "groups": {
                "type": "array",
                "items": ref("AvailabilityGroup"),
                "minItems": 1,
                "maxItems": 50,
            },
        },
        "required": ["from", "to", "durationMinutes", "groups"],
        "examples": [AVAILABILITY_REQUEST_EXAMPLE],
    },
    "Slot": {
        "type": "object",
        "properties": {
            "start": RFC3339,
            "end": RFC3339,
            "scheduleIds": {"type": "array", "items": ref("Guid")},
        },
        "required": ["start", "end", "scheduleIds"],
    },
    "Availability": {
        "type": "object",
        "properties": {"slots": {"type": "array", "items": ref("Slot")}},
        "required": ["slots"],
        "examples": [AVAILABILITY_EXAMPLE],
    },
}


def availability_paths() -> dict[str, dict[str, Any]]:
    return {
        "/v1/free-busy:query": {
            "post": operation(
                "queryFreeBusy",
                "Query free/busy",
                "Each schedule's busy intervals in the window, in request order: the union of "
                "what List Events returns for it (all-day instances in the schedule's time "
                "zone), with its confirmed sessions when includeSessions, clipped and merged. "
                "failedConnectionIds names connections that could not be read. At most 100 "
                "schedules and 366 days; another tenant's schedule is a 404.",
                tag=TAG,
                request_body=body(ref("FreeBusyQuery"), FREE_BUSY_REQUEST_EXAMPLE),
                responses={**ok(ref("FreeBusy"), FREE_BUSY_EXAMPLE), **errors(400, 401, 403, 404)},
            )
        },
        "/v1/availability:query": {
            "post": operation(
                "queryAvailability",
                "Query availability",
                "Slots of durationMinutes on the slotStepMinutes grid from `from`, inside each "
                "chosen schedule's working hours (its own time zone; absent: all day), where "
                "each group has at least `required` schedules free for the slot widened by the "
                "buffers. Busy as in free/busy with sessions. At most 50 schedules, 31 days.",
                tag=TAG,
                request_body=body(ref("AvailabilityQuery"), AVAILABILITY_REQUEST_EXAMPLE),
                responses={
                    **ok(ref("Availability"), AVAILABILITY_EXAMPLE),
                    **errors(400, 401, 403, 404),
                },
            )
        },
    }
