"""The nine methods of the External Calendar API v2 in OpenAPI (spec sections 2 and 4), as
``api/external.py`` serves them; the document lists them under both prefixes."""

from __future__ import annotations

from typing import Any

from calsync.api.openapi.parts import (
    CONNECTION_PARAM,
    GUIDS,
    body,
    error,
    errors,
    ok,
    operation,
    query,
    wrap,
)
from calsync.api.openapi.schemas import (
    CALENDAR_EXAMPLE,
    CONNECTION_EXAMPLE,
    CONNECTION_ID,
    EVENT_EXAMPLE,
    PROVIDER_EXAMPLE,
    PROVIDER_ID,
    SCHEDULE_ID,
    SYNC_CONFIG_EXAMPLE,
    ref,
)

TAG = "External Calendar API v2"
CONNECTION_RESPONSE = wrap("connection", ref("Connection"))
PARTIAL = query(
    "partialFailure",
    {"type": "boolean", "default": False},
    "Succeed with the readable connections; failed ones are listed in failedProviderIds.",
)
UNSUPPORTED = error(428, "NOT_SUPPORTED_BY_PROVIDER", "The provider does not support this.")


def external_paths() -> dict[str, dict[str, Any]]:
    t = TAG
    disconnected = {**CONNECTION_EXAMPLE, "status": "DISCONNECTED"}
    return {
        "/providers": {
            "get": operation(
                "listProviders",
                "List Providers",
                "The external calendar providers this deployment offers. Needs "
                "CALENDAR.LIST_EXTERNAL_CALENDAR_PROVIDERS.",
                tag=t,
                responses={
                    **ok(
                        wrap("providers", {"type": "array", "items": ref("Provider")}),
                        {"providers": [PROVIDER_EXAMPLE]},
                    ),
                    **errors(401, 403),
                },
            )
        },
        "/connections": {
            "get": operation(
                "listConnections",
                "List Connections",
                "Connections of the tenant (of some schedules), oldest first, including "
                "disconnected ones. Without READ_ALL, only those of the caller's schedules.",
                tag=t,
                parameters=[
                    query(
                        "scheduleIds", GUIDS, "Only these schedules (repeat the key).", explode=True
                    ),
                    PARTIAL,
                ],
                responses={
                    **ok(
                        wrap(
                            "connections",
                            {"type": "array", "items": ref("Connection")},
                            "failedProviderIds",
                            failedProviderIds={"type": "array", "items": ref("Guid")},
                        ),
                        {"connections": [CONNECTION_EXAMPLE], "failedProviderIds": []},
                    ),
                    **errors(400, 401, 403, 503),
                },
            )
        },
        "/connections:connectByOAuth": {
            "post": operation(
                "connectByOAuth",
                "Connect By OAuth",
                "Start connecting an account by OAuth: send the account owner to oauthUrl. "
                "After consent the browser returns to redirectUrl with connectionId=<id>, or "
                "with error=reject|unsupported|internal.",
                tag=t,
                request_body=body(
                    {
                        "type": "object",
                        "properties": {
                            "scheduleId": ref("Guid"),
                            "providerId": ref("Guid"),
                            "redirectUrl": {"type": "string", "format": "uri"},
                        },
                        "required": ["scheduleId", "providerId", "redirectUrl"],
                    },
                    {
                        "scheduleId": SCHEDULE_ID,
                        "providerId": PROVIDER_ID,
                        "redirectUrl": "https://app.example.com/calendar/connected",
                    },
                ),
                responses={
                    **ok(
                        wrap("oauthUrl", {"type": "string", "format": "uri"}),
                        {"oauthUrl": "https://accounts.google.com/o/oauth2/v2/auth?state=..."},
                    ),
                    **errors(400, 401, 403, 404, s428=UNSUPPORTED),
                },
            )
        },
        "/connections:connectByCredentials": {
            "post": operation(
                "connectByCredentials",
                "Connect By Credentials",
                "Connect an account with its e-mail and (app-specific) password, checked "
                "against the provider at once. The password is stored encrypted.",
                tag=t,
                request_body=body(
                    {
                        "type": "object",
                        "properties": {
                            "scheduleId": ref("Guid"),
                            "providerId": ref("Guid"),
                            "email": {"type": "string", "format": "email"},
                            "password": {"type": "string", "minLength": 1, "maxLength": 1024},
                        },
                        "required": ["scheduleId", "providerId", "email", "password"],
                    },
                    {
                        "scheduleId": SCHEDULE_ID,
                        "providerId": PROVIDER_ID,
                        "email": "ada@example.com",
                        "password": "abcd-efgh-ijkl-mnop",
                    },
                ),
                responses={
                    **ok(CONNECTION_RESPONSE, {"connection": CONNECTION_EXAMPLE}),
                    **errors(
                        400,
                        403,
                        404,
                        503,
                        s401=error(
                            401,
                            "BAD_CREDENTIALS",
                            "The external account refused the e-mail and password (also "
                            "UNAUTHENTICATED for a bad API key: read the code).",
                        ),
                        s428=UNSUPPORTED,
                    ),
                },
            )
        },
        "/connections/{connectionId}": {
            "get": operation(
                "getConnection",
                "Get Connection",
                "One connection, in any status.",
                tag=t,
                parameters=[CONNECTION_PARAM],
                responses={
                    **ok(CONNECTION_RESPONSE, {"connection": CONNECTION_EXAMPLE}),
                    **errors(401, 403, 404),
                },
            )
        },
        "/connections/{connectionId}/calendars": {
            "get": operation(
                "listCalendars",
                "List Calendars",
                "The calendars of the connected account, read from the provider (cached "
                "briefly), the primary calendar first.",
                tag=t,
                parameters=[CONNECTION_PARAM],
                responses={
                    **ok(
                        wrap("calendars", {"type": "array", "items": ref("Calendar")}),
                        {"calendars": [CALENDAR_EXAMPLE, {"id": "a68yu6lp", "name": "Work"}]},
                    ),
                    **errors(
                        401,
                        403,
                        404,
                        503,
                        s428=error(
                            428,
                            "CONNECTION_NOT_CONNECTED",
                            "The connection is not connected (or NOT_SUPPORTED_BY_PROVIDER).",
                        ),
                    ),
                },
            )
        },
        "/connections/{connectionId}/sync-config": {
            "patch": operation(
                "updateSyncConfig",
                "Update Sync Config",
                "Choose which calendars block time and where sessions are exported. Each "
                "sub-object present replaces the stored one; fieldMask limits the update.",
                tag=t,
                parameters=[CONNECTION_PARAM],
                request_body=body(
                    {
                        "type": "object",
                        "properties": {
                            "connectionId": {
                                "type": "string",
                                "description": "Optional echo of the path parameter.",
                            },
                            "syncConfig": ref("ConnectionSyncConfig"),
                            "fieldMask": {
                                "description": 'Paths to update: "a,b", ["a","b"] or '
                                '{"paths": [...]}.',
                                "oneOf": [
                                    {"type": "string"},
                                    {"type": "array", "items": {"type": "string"}},
                                    wrap("paths", {"type": "array", "items": {"type": "string"}}),
                                ],
                            },
                        },
                        "required": ["syncConfig"],
                    },
                    {"syncConfig": SYNC_CONFIG_EXAMPLE},
                ),
                responses={
                    **ok(CONNECTION_RESPONSE, {"connection": CONNECTION_EXAMPLE}),
                    **errors(400, 401, 403, 404, s428=UNSUPPORTED),
                },
            )
        },
        "/connections/{connectionId}/disconnect": {
            "post": operation(
                "disconnect",
                "Disconnect",
                "Unlink the account: import stops, exported sessions are removed from the "
                "external calendar, the provider grant is revoked. The connection stays "
                "readable with status DISCONNECTED.",
                tag=t,
                parameters=[CONNECTION_PARAM],
                request_body=body(
                    {"type": "object", "properties": {"connectionId": {"type": "string"}}},
                    {"connectionId": CONNECTION_ID},
                    required=False,
                ),
                responses={
                    **ok(CONNECTION_RESPONSE, {"connection": disconnected}),
                    **errors(
                        400,  # a body connectionId that is not the path's
                        401,
                        403,
                        404,
                        s428=error(428, "CONNECTION_ALREADY_DISCONNECTED", "Already disconnected."),
                    ),
                },
            )
        },
        "/events": {"get": _list_events()},
    }


def _list_events() -> dict[str, Any]:
    return operation(
        "listEvents",
        "List Events",
        "Busy events of the tenant's connections that overlap [from, to), by start time. "
        "Filters combine with AND. Next pages: send only cursorPaging.cursor. Needs "
        "CALENDAR.READ_EXTERNAL_CALENDAR_EVENTS. Answered from calsync's store whatever the "
        "data's age (stale connections are refreshed in the background); only a connection "
        "whose first sync (or the sync of a new calendar selection) has not completed is read "
        "first, within the time budget.",
        tag=TAG,
        parameters=[
            query("from", {"type": "string", "format": "date-time"}, "Window start (RFC 3339)."),
            query("to", {"type": "string", "format": "date-time"}, "Window end, exclusive."),
            query("scheduleIds", GUIDS, "Only these schedules (repeat the key).", explode=True),
            query(
                "userIds", GUIDS, "Only schedules of these users (repeat the key).", explode=True
            ),
            query("allDay", {"type": "boolean"}, "true: only all-day events; false: only timed."),
            query(
                "fieldsets",
                {"type": "array", "items": {"type": "string", "enum": ["NO_PI", "OWN_PI"]}},
                "OWN_PI adds calendarName, title and scheduleOwnerName.",
                explode=True,
            ),
            query(
                "cursorPaging.limit",
                {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                "Page size.",
            ),
            query("cursorPaging.cursor", {"type": "string"}, "pagingMetadata.cursors.next."),
            PARTIAL,
            query("includePi", {"type": "boolean"}, "Deprecated: OWN_PI.", deprecated=True),
        ],
        responses={
            **_with_fresh_as_of(
                ok(
                    wrap(
                        "events",
                        {"type": "array", "items": ref("Event")},
                        "pagingMetadata",
                        "failedProviderIds",
                        pagingMetadata=ref("CursorPagingMetadata"),
                        failedProviderIds={"type": "array", "items": ref("Guid")},
                    ),
                    {
                        "events": [EVENT_EXAMPLE],
                        "pagingMetadata": {
                            "count": 1,
                            "cursors": {"next": "eyJ2IjoxLC4uLn0.c2ln"},
                            "hasNext": True,
                        },
                        "failedProviderIds": [],
                    },
                )
            ),
            **errors(400, 401, 403, 503),
        },
    )


def _with_fresh_as_of(responses: dict[str, Any]) -> dict[str, Any]:
    """The 200 of List Events carries X-Calsync-Fresh-As-Of."""
    responses["200"]["headers"] = {
        "X-Calsync-Fresh-As-Of": {
            "description": "The oldest freshAsOf (see /v1/connections/{connectionId}/sync) "
            "among the connections the answer used: the events are known to match every "
            "calendar up to this time. Absent when no connection contributed.",
            "schema": {"type": "string", "format": "date-time"},
        }
    }
    return responses
