"""calsync's own ``/v1`` API in OpenAPI: health, schedules, sessions, sync reports."""

from __future__ import annotations

from typing import Any

from calsync.api.openapi.parts import (
    CONNECTION_PARAM,
    body,
    errors,
    ok,
    operation,
    path_param,
    query,
    wrap,
)
from calsync.api.openapi.schemas import (
    SCHEDULE_EXAMPLE,
    SESSION_EXAMPLE,
    SESSION_INPUT_EXAMPLE,
    USER_ID,
    ref,
)
from calsync.api.openapi.sync_report import SYNC_REPORT_EXAMPLE


def own_paths() -> dict[str, dict[str, Any]]:
    schedule_param = path_param("scheduleId", "Schedule ID (GUID).", ref("Guid"))
    schedule = wrap("schedule", ref("Schedule"))
    return {
        "/v1/health": {
            "get": operation(
                "health",
                "Health",
                "Liveness and database reachability; needs no key.",
                tag="Health",
                security=[],
                responses={
                    **ok(ref("Health"), {"status": "ok", "database": "ok", "version": "0.1.0"}),
                    "503": {
                        "description": "The database cannot be reached.",
                        "content": {
                            "application/json": {
                                "schema": ref("Health"),
                                "example": {
                                    "status": "degraded",
                                    "database": "down",
                                    "version": "0.1.0",
                                },
                            }
                        },
                    },
                },
            )
        },
        "/v1/schedules": {
            "get": operation(
                "listSchedules",
                "List schedules",
                "The tenant's schedules, oldest first.",
                tag="Schedules",
                responses={
                    **ok(
                        wrap("schedules", {"type": "array", "items": ref("Schedule")}),
                        {"schedules": [SCHEDULE_EXAMPLE]},
                    ),
                    **errors(401, 403),
                },
            )
        },
        "/v1/schedules/{scheduleId}": {
            "put": operation(
                "putSchedule",
                "Create or update a schedule",
                "Owner, owner name and time zone of a platform schedule. A new owner "
                "disconnects the schedule's connections. Needs MANAGE_ALL connections.",
                tag="Schedules",
                parameters=[schedule_param],
                request_body=body(
                    ref("ScheduleInput"),
                    {"ownerUserId": USER_ID, "ownerName": "Ada Lovelace", "timeZone": "UTC"},
                ),
                responses={**ok(schedule, {"schedule": SCHEDULE_EXAMPLE}), **errors(400, 401, 403)},
            ),
            "get": operation(
                "getSchedule",
                "Get a schedule",
                "One schedule of the tenant.",
                tag="Schedules",
                parameters=[schedule_param],
                responses={
                    **ok(schedule, {"schedule": SCHEDULE_EXAMPLE}),
                    **errors(400, 401, 403, 404),
                },
            ),
            "delete": operation(
                "deleteSchedule",
                "Delete a schedule",
                "Remove a schedule; its connections are disconnected first and stay readable. "
                "Returns the schedule as it was.",
                tag="Schedules",
                parameters=[schedule_param],
                responses={
                    **ok(schedule, {"schedule": SCHEDULE_EXAMPLE}),
                    **errors(400, 401, 403, 404),
                },
            ),
        },
        **_session_paths(schedule_param),
        "/v1/connections/{connectionId}/sync": {
            "get": operation(
                "getConnectionSync",
                "Connection sync report",
                "How a connection's import is doing: last success and attempt, next due "
                "time, consecutive failures, last error, and per calendar what is stored.",
                tag="Sync",
                parameters=[CONNECTION_PARAM],
                responses={
                    **ok(wrap("sync", ref("SyncReport")), {"sync": SYNC_REPORT_EXAMPLE}),
                    **errors(401, 403, 404),
                },
            )
        },
    }


def _session_paths(schedule_param: dict[str, Any]) -> dict[str, dict[str, Any]]:
    session_param = path_param(
        "sessionId",
        "The platform's session ID: 1-128 of A-Z a-z 0-9 . _ : @ -",
        {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$"},
    )
    params = [schedule_param, session_param]
    session = wrap("session", ref("Session"))
    cancelled = {**SESSION_EXAMPLE, "status": "CANCELLED", "revision": 2}
    return {
        "/v1/schedules/{scheduleId}/sessions": {
            "get": operation(
                "listSessions",
                "List sessions",
                "The schedule's sessions overlapping [from, to) (either bound optional), by "
                "start, a page at a time: when more follow, nextCursor is set; send it back as "
                "cursor with the same from, to and includeCancelled. Needs MANAGE_ALL or "
                "READ_ALL connections.",
                tag="Sessions",
                parameters=[
                    schedule_param,
                    query("from", {"type": "string", "format": "date-time"}, "Window start."),
                    query("to", {"type": "string", "format": "date-time"}, "Window end."),
                    query(
                        "includeCancelled",
                        {"type": "boolean", "default": True},
                        "false: only CONFIRMED sessions.",
                    ),
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000},
                        "Sessions per page.",
                    ),
                    query("cursor", {"type": "string"}, "nextCursor of the previous page."),
                ],
                responses={
                    **ok(
                        wrap(
                            "sessions",
                            {"type": "array", "items": ref("Session")},
                            nextCursor={"type": "string"},
                        ),
                        {"sessions": [SESSION_EXAMPLE]},
                    ),
                    **errors(400, 401, 403, 404),
                },
            )
        },
        "/v1/schedules/{scheduleId}/sessions/{sessionId}": {
            "put": operation(
                "putSession",
                "Create or replace a session",
                "A booking or class of the schedule, to be exported to its connections' "
                "calendars. A change that alters the exported event raises revision and makes "
                "the schedule's connections due. Needs MANAGE_ALL connections.",
                tag="Sessions",
                parameters=params,
                request_body=body(ref("SessionInput"), SESSION_INPUT_EXAMPLE),
                responses={
                    **ok(session, {"session": SESSION_EXAMPLE}),
                    **errors(400, 401, 403, 404),
                },
            ),
            "get": operation(
                "getSession",
                "Get a session",
                "One session of the schedule. Needs MANAGE_ALL or READ_ALL connections.",
                tag="Sessions",
                parameters=params,
                responses={
                    **ok(session, {"session": SESSION_EXAMPLE}),
                    **errors(400, 401, 403, 404),
                },
            ),
            "delete": operation(
                "cancelSession",
                "Cancel a session",
                "Marks the session CANCELLED (it stays readable); its exported events are "
                "removed from the external calendars.",
                tag="Sessions",
                parameters=params,
                responses={**ok(session, {"session": cancelled}), **errors(400, 401, 403, 404)},
            ),
        },
    }
