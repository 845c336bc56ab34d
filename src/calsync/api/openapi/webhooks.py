"""``/v1/webhooks`` in OpenAPI (calsync-v1-extensions.md section 1)."""

from __future__ import annotations

from typing import Any

from calsync.api.openapi.parts import body, error, errors, ok, operation, path_param, query, wrap
from calsync.api.openapi.schemas import RFC3339, Schema, ref
from calsync.domain.webhooks import DeliveryStatus, EventType

TAG = "Webhooks"
WEBHOOK_ID = "3f9b1c2d-7e6a-4b5c-9d8e-1a2b3c4d5e6f"
MESSAGE_ID = "msg_2b7d9c3e4f5061728394a5b6c7d8e9f0"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
_TIME_OR_NULL: Schema = {"oneOf": [RFC3339, {"type": "null"}]}
_EVENT_TYPES: Schema = {
    "type": "array",
    "items": {"enum": [t.value for t in EventType]},
    "maxItems": 10,
    "description": "Empty or absent: every type.",
}
_URL: Schema = {
    "type": "string",
    "format": "uri",
    "maxLength": 2048,
    "description": "https:// on a public address (http:// and private addresses only with "
    "CALSYNC_WEBHOOK_ALLOW_PRIVATE=true); no user name or password in it.",
}
WEBHOOK_EXAMPLE = {
    "id": WEBHOOK_ID,
    "url": "https://platform.example.com/hooks/calsync",
    "eventTypes": ["busy_times.changed", "connection.status_changed"],
    "description": "availability cache",
    "enabled": True,
    "createdAt": "2027-01-05T10:00:00.000Z",
    "disabledReason": None,
}
DELIVERY_EXAMPLE = {
    "id": MESSAGE_ID,
    "eventType": "busy_times.changed",
    "createdAt": "2027-01-05T10:00:00.000Z",
    "status": "FAILING",
    "attempts": 2,
    "lastAttemptAt": "2027-01-05T10:00:05.000Z",
    "lastStatusCode": 503,
    "lastError": "the receiver answered HTTP 503",
    "nextAttemptAt": "2027-01-05T10:05:05.000Z",
}
CREATE_EXAMPLE = {
    "url": "https://platform.example.com/hooks/calsync",
    "eventTypes": ["busy_times.changed", "connection.status_changed"],
    "description": "availability cache",
}

WEBHOOK_SCHEMAS: dict[str, Schema] = {
    "Webhook": {
        "type": "object",
        "properties": {
            "id": ref("Guid"),
            "url": {"type": "string"},
            "eventTypes": {"type": "array", "items": {"type": "string"}},
            "description": {"type": "string"},
            "enabled": {"type": "boolean"},
            "createdAt": RFC3339,
            "disabledReason": {
                "type": ["string", "null"],
                "description": "Set when calsync disabled the webhook after 5 days of failures.",
            },
        },
        "required": ["id", "url", "eventTypes", "description", "enabled", "createdAt"],
        "examples": [WEBHOOK_EXAMPLE],
    },
    "WebhookDelivery": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "The message id: header webhook-id."},
            "eventType": {"type": "string"},
            "createdAt": RFC3339,
            "status": {"enum": [s.value for s in DeliveryStatus]},
            "attempts": {"type": "integer", "minimum": 0},
            "lastAttemptAt": _TIME_OR_NULL,
            "lastStatusCode": {"type": ["integer", "null"]},
            "lastError": {"type": ["string", "null"]},
            "nextAttemptAt": _TIME_OR_NULL,
        },
        "required": ["id", "eventType", "createdAt", "status", "attempts"],
        "examples": [DELIVERY_EXAMPLE],
    },
    "WebhookCreate": {
        "type": "object",
        "properties": {
            "url": _URL,
            "eventTypes": _EVENT_TYPES,
            "description": {"type": "string", "maxLength": 500},
        },
        "required": ["url"],
        "additionalProperties": False,
        "examples": [CREATE_EXAMPLE],
    },
    "WebhookUpdate": {
        "type": "object",
        "properties": {
            "url": _URL,
            "eventTypes": _EVENT_TYPES,
            "description": {"type": "string", "maxLength": 500},
            "enabled": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
}

_ID = path_param("webhookId", "Webhook ID.", ref("Guid"))
_SECRET = {"type": "string", "pattern": "^whsec_", "description": "Shown only here."}
_COMMON_ERRORS = (400, 401, 403, 404)


def _one(example: Any = WEBHOOK_EXAMPLE) -> dict[str, Schema]:
    return ok(wrap("webhook", ref("Webhook")), {"webhook": example})


def _collection() -> dict[str, Any]:
    created = {
        "201": {
            "description": "Created; the secret is shown only in this answer and on rotation.",
            "content": {
                "application/json": {
                    "schema": wrap("webhook", ref("Webhook"), "secret", secret=_SECRET),
                    "example": {"webhook": WEBHOOK_EXAMPLE, "secret": SECRET},
                }
            },
        }
    }
    return {
        "post": operation(
            "createWebhook",
            "Create a webhook",
            "Subscribe a URL to calsync's signed change messages (Standard Webhooks: headers "
            "webhook-id, webhook-timestamp, webhook-signature). Needs a key with "
            "MANAGE_ALL_EXTERNAL_CALENDAR_CONNECTIONS.",
            tag=TAG,
            request_body=body(ref("WebhookCreate"), CREATE_EXAMPLE),
            responses={**created, **errors(400, 401, 403)},
        ),
        "get": operation(
            "listWebhooks",
            "List webhooks",
            "The tenant's webhooks, oldest first.",
            tag=TAG,
            responses={
                **ok(
                    wrap("webhooks", {"type": "array", "items": ref("Webhook")}),
                    {"webhooks": [WEBHOOK_EXAMPLE]},
                ),
                **errors(401, 403),
            },
        ),
    }


def _item() -> dict[str, Any]:
    return {
        "get": operation(
            "getWebhook",
            "Get a webhook",
            "One of the tenant's webhooks.",
            tag=TAG,
            parameters=[_ID],
            responses={**_one(), **errors(*_COMMON_ERRORS)},
        ),
        "patch": operation(
            "updateWebhook",
            "Update a webhook",
            "Change url, eventTypes, description or enabled. Enabling a disabled webhook "
            "clears disabledReason; messages it missed can be redelivered from its log.",
            tag=TAG,
            parameters=[_ID],
            request_body=body(ref("WebhookUpdate"), {"enabled": True}),
            responses={**_one(), **errors(*_COMMON_ERRORS)},
        ),
        "delete": operation(
            "deleteWebhook",
            "Delete a webhook",
            "The webhook and its delivery log; nothing more is delivered to it.",
            tag=TAG,
            parameters=[_ID],
            responses={**ok({"type": "object"}, {}), **errors(*_COMMON_ERRORS)},
        ),
    }


def _actions() -> dict[str, dict[str, Any]]:
    disabled = error(428, "WEBHOOK_DISABLED", "The webhook is disabled; enable it first.")
    return {
        "/v1/webhooks/{webhookId}:rotateSecret": {
            "post": operation(
                "rotateWebhookSecret",
                "Rotate a webhook's secret",
                "A new secret, shown only here; for 24 hours messages carry signatures by "
                "both the old and the new one.",
                tag=TAG,
                parameters=[_ID],
                responses={
                    **ok(wrap("secret", _SECRET), {"secret": SECRET}),
                    **errors(*_COMMON_ERRORS),
                },
            )
        },
        "/v1/webhooks/{webhookId}:test": {
            "post": operation(
                "testWebhook",
                "Send a test message",
                "Queues a webhook.test message to this webhook now (whatever its eventTypes). "
                "428 WEBHOOK_DISABLED while it is disabled.",
                tag=TAG,
                parameters=[_ID],
                responses={
                    **ok(wrap("deliveryId", {"type": "string"}), {"deliveryId": MESSAGE_ID}),
                    **errors(*_COMMON_ERRORS),
                    "428": disabled,
                },
            )
        },
        "/v1/webhooks/{webhookId}/deliveries": {
            "get": operation(
                "listWebhookDeliveries",
                "List a webhook's deliveries",
                "Its delivery log, newest first; kept 30 days after a message is done.",
                tag=TAG,
                parameters=[
                    _ID,
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 100},
                        "Page size (20).",
                    ),
                    query("cursor", {"type": "string", "maxLength": 1000}, "nextCursor of a page."),
                ],
                responses={
                    **ok(
                        {
                            "type": "object",
                            "properties": {
                                "deliveries": {"type": "array", "items": ref("WebhookDelivery")},
                                "nextCursor": {"type": ["string", "null"]},
                            },
                            "required": ["deliveries"],
                        },
                        {"deliveries": [DELIVERY_EXAMPLE], "nextCursor": None},
                    ),
                    **errors(*_COMMON_ERRORS),
                },
            )
        },
        "/v1/webhooks/{webhookId}/deliveries/{deliveryId}:redeliver": {
            "post": operation(
                "redeliverWebhookMessage",
                "Redeliver a message",
                "Queues the same message (same webhook-id) again now, with a new round of "
                "retries. 428 WEBHOOK_DISABLED while the webhook is disabled.",
                tag=TAG,
                parameters=[_ID, path_param("deliveryId", "Delivery (message) ID.")],
                responses={
                    **ok(wrap("delivery", ref("WebhookDelivery")), {"delivery": DELIVERY_EXAMPLE}),
                    **errors(*_COMMON_ERRORS),
                    "428": disabled,
                },
            )
        },
    }


def webhook_paths() -> dict[str, dict[str, Any]]:
    return {
        "/v1/webhooks": _collection(),
        "/v1/webhooks/{webhookId}": _item(),
        **_actions(),
    }
