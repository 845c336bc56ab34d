"""The OpenAPI 3.1 document served at ``/openapi.json``.

The routes read raw requests (the wire format has dotted and repeated query keys, custom verbs
and echoed path parameters that FastAPI's models would not parse), so the document is written
here rather than inferred: the External Calendar API v2 under both of its prefixes
(``external``), and calsync's own ``/v1`` API (``own``); wire objects are in ``schemas``.
Internal endpoints (the OAuth callback, push notifications, ``/metrics``, the dashboard) are
left out on purpose.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from calsync import __version__
from calsync.api.openapi.availability import AVAILABILITY_SCHEMAS, availability_paths
from calsync.api.openapi.external import TAG as EXTERNAL_TAG
from calsync.api.openapi.external import external_paths
from calsync.api.openapi.feeds import feed_paths
from calsync.api.openapi.own import own_paths
from calsync.api.openapi.schemas import SCHEMAS
from calsync.api.openapi.sync_report import SYNC_REPORT
from calsync.api.openapi.webhooks import WEBHOOK_SCHEMAS, webhook_paths

OPENAPI_PATH = "/openapi.json"
router = APIRouter()
EXTERNAL_PREFIXES = ("/bookings/v2/external-calendars", "/v2/external-calendars")
SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}]
DESCRIPTION = """\
calsync connects booking-platform schedules to Google, Microsoft, iCloud and CalDAV calendars.

**External Calendar API v2** is wire-compatible with the Wix Bookings API of that name: the same
paths, JSON and errors, so its official client works when pointed at calsync. Every path is
served under `/bookings/v2/external-calendars` (the public REST path) and
`/v2/external-calendars` (what the official client sends to a custom host).

**calsync's own API** (`/v1`) is how the booking platform feeds calsync its schedules and the
sessions to export, and how it reads a connection's sync state.

Authenticate with an API key created by `calsync api-keys create`, sent as
`Authorization: <key>` or `Authorization: Bearer <key>`. The key names the tenant; a
`wix-site-id` header naming another tenant is refused (403). Every response carries an
`X-Wix-Request-Id` header, also written in calsync's logs. Errors use one envelope
(`ErrorEnvelope`): `details.applicationError` with a machine-readable `code`, or
`details.validationError` with one entry per bad field.
"""


@router.get(OPENAPI_PATH, include_in_schema=False)
async def serve_document(request: Request) -> Response:
    """The document, with this deployment's public URL as its server."""
    settings = request.app.state.runtime.settings
    return Response(_serialised(settings.public_url), media_type="application/json")


@lru_cache(maxsize=4)
def _serialised(server_url: str) -> bytes:
    return json.dumps(openapi_document(server_url)).encode()


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    """The whole document; ``server_url`` (the public URL) becomes its server."""
    paths: dict[str, Any] = {}
    for prefix in EXTERNAL_PREFIXES:
        alias = prefix != EXTERNAL_PREFIXES[0]
        for suffix, operations in external_paths().items():
            paths[prefix + suffix] = {
                method: _aliased(op, prefix) if alias else op for method, op in operations.items()
            }
    paths.update(own_paths())
    paths.update(feed_paths())
    paths.update(availability_paths())
    paths.update(webhook_paths())
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "calsync",
            "version": __version__,
            "description": DESCRIPTION,
        },
        "servers": [{"url": server_url or "/"}],
        "tags": [
            {"name": EXTERNAL_TAG, "description": "Wire-compatible with Wix Bookings."},
            {"name": "Schedules", "description": "The platform's schedules, fed to calsync."},
            {"name": "Sessions", "description": "The platform's sessions, exported by calsync."},
            {"name": "Sync", "description": "How connections are syncing."},
            {"name": "Availability", "description": "Free/busy and bookable slots."},
            {"name": "Webhooks", "description": "Signed messages when busy times change."},
            {"name": "Health", "description": "Liveness and database reachability."},
        ],
        "security": SECURITY,
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(
                {**SCHEMAS, **AVAILABILITY_SCHEMAS, **WEBHOOK_SCHEMAS, "SyncReport": SYNC_REPORT}
            ),
            "securitySchemes": {
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "The API key as is, as the official client sends it.",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The API key as a bearer token.",
                },
            },
            "parameters": {
                "SiteId": {
                    "name": "wix-site-id",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Optional; must name the key's own tenant (else 403).",
                }
            },
        },
    }
    return document


def _aliased(operation: dict[str, Any], prefix: str) -> dict[str, Any]:
    op = copy.deepcopy(operation)
    op["operationId"] += "Unprefixed"
    op["description"] = f"Same as the `/bookings{prefix}` path. " + op["description"]
    return op
