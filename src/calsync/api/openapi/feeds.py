"""``POST /v1/connections:connectFeed`` in OpenAPI."""

from __future__ import annotations

from typing import Any

from calsync.api.openapi.parts import body, error, errors, ok, operation, wrap
from calsync.api.openapi.schemas import CONNECTION_EXAMPLE, SCHEDULE_ID, ref

FEED_PROVIDER_ID = "0c7a3f52-8f0e-4a8e-9d7e-5f1f2c3d4e5f"


def feed_paths() -> dict[str, dict[str, Any]]:
    return {
        "/v1/connections:connectFeed": {
            "post": operation(
                "connectFeed",
                "Connect a calendar feed",
                "Subscribe a schedule to an iCalendar feed (https:// or webcal://) of an "
                '`kind = "ics"` provider: import only, the feed is the primary calendar. '
                "The URL is a secret: stored encrypted, never returned or logged; the "
                "connection's `externalAccountEmail` shows only the feed's host "
                "(`feed at <host>`).",
                tag="Sync",
                request_body=body(
                    {
                        "type": "object",
                        "properties": {
                            "scheduleId": ref("Guid"),
                            "providerId": ref("Guid"),
                            "url": {"type": "string", "minLength": 1, "maxLength": 2048},
                        },
                        "required": ["scheduleId", "providerId", "url"],
                    },
                    {
                        "scheduleId": SCHEDULE_ID,
                        "providerId": FEED_PROVIDER_ID,
                        "url": "webcal://calendar.example.org/feed.ics?token=...",
                    },
                ),
                responses={
                    **ok(wrap("connection", ref("Connection")), {"connection": CONNECTION_EXAMPLE}),
                    **errors(
                        400,
                        401,
                        403,
                        404,
                        503,
                        s428=error(
                            428, "NOT_SUPPORTED_BY_PROVIDER", "The provider is not a feed kind."
                        ),
                    ),
                },
            )
        },
    }
