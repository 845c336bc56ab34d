"""``/v1/webhooks``: a tenant's webhook subscriptions and their delivery log (the extensions
contract, section 1). Parsing and wire shapes only; ``service.webhooks.manage`` decides."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from calsync.api import parse
from calsync.api.calls import Call, serve
from calsync.api.wire import timestamp
from calsync.errors import ViolationCollector
from calsync.service.webhooks import manage
from calsync.service.webhooks.manage import WebhookChange
from calsync.store.webhooks import DeliveryRecord, WebhookRecord

router = APIRouter(prefix="/v1")
MAX_EVENT_TYPES = 10
MAX_DESCRIPTION = 500
CREATE_FIELDS = frozenset({"url", "eventTypes", "description"})
PATCH_FIELDS = frozenset({"url", "eventTypes", "description", "enabled"})


def webhook_wire(record: WebhookRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "url": record.url,
        "eventTypes": record.event_types,
        "description": record.description,
        "enabled": record.enabled,
        "createdAt": timestamp(record.created_at),
        "disabledReason": record.disabled_reason,
    }


def delivery_wire(record: DeliveryRecord) -> dict[str, Any]:
    def time(value: Any) -> str | None:
        return timestamp(value) if value is not None else None

    return {
        "id": record.id,
        "eventType": record.event_type,
        "createdAt": timestamp(record.created_at),
        "status": record.status,
        "attempts": record.attempts,
        "lastAttemptAt": time(record.last_attempt_at),
        "lastStatusCode": record.last_status_code,
        "lastError": record.last_error,
        "nextAttemptAt": time(record.next_attempt_at),
    }


def _unknown_fields(v: ViolationCollector, body: dict[str, Any], known: frozenset[str]) -> None:
    for name in sorted(set(body) - known):
        v.add(name, "is not a field of a webhook (" + ", ".join(sorted(known)) + ")", "OTHER")


def _event_types(v: ViolationCollector, value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        v.add("eventTypes", "must be a list of event type names", "FORMAT")
        return None
    if len(value) > MAX_EVENT_TYPES:
        v.add("eventTypes", f"must hold at most {MAX_EVENT_TYPES} values", "MAX_SIZE")
        return None
    return list(value)


def _description(v: ViolationCollector, value: object) -> str | None:
    if value is None:
        return None
    return parse.text(v, "description", value, required=False, max_len=MAX_DESCRIPTION) or ""


def _url(v: ViolationCollector, value: object, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    return parse.web_url(v, "url", value)


@router.post("/webhooks")
async def create_webhook(request: Request) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        body = parse.json_body(call.body)
        v = ViolationCollector()
        _unknown_fields(v, body, CREATE_FIELDS)
        url = _url(v, body.get("url"), required=True)
        types = _event_types(v, body.get("eventTypes"))
        description = _description(v, body.get("description"))
        v.raise_if_any()
        assert url is not None
        record, secret = manage.create_webhook(
            call.rt, call.identity, url=url, event_types=types or [], description=description or ""
        )
        return {"webhook": webhook_wire(record), "secret": secret}

    return await serve(request, work, status_code=201)


@router.get("/webhooks")
async def list_webhooks(request: Request) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        return {"webhooks": [webhook_wire(r) for r in manage.list_webhooks(call.rt, call.identity)]}

    return await serve(request, work)


def _webhook_id(webhook_id: str) -> str:
    v = ViolationCollector()
    parsed = parse.guid(v, "id", webhook_id)
    v.raise_if_any()
    assert parsed is not None
    return parsed


@router.get("/webhooks/{webhook_id}")
async def get_webhook(request: Request, webhook_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        record = manage.get_webhook(call.rt, call.identity, _webhook_id(webhook_id))
        return {"webhook": webhook_wire(record)}

    return await serve(request, work)


@router.patch("/webhooks/{webhook_id}")
async def update_webhook(request: Request, webhook_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        wid = _webhook_id(webhook_id)
        body = parse.json_body(call.body)
        v = ViolationCollector()
        _unknown_fields(v, body, PATCH_FIELDS)
        change = WebhookChange(
            url=_url(v, body.get("url"), required=False),
            event_types=_event_types(v, body.get("eventTypes")),
            description=_description(v, body.get("description")),
            enabled=parse.boolean(v, "enabled", body.get("enabled")),
        )
        v.raise_if_any()
        return {"webhook": webhook_wire(manage.update_webhook(call.rt, call.identity, wid, change))}

    return await serve(request, work)


@router.delete("/webhooks/{webhook_id}")
async def delete_webhook(request: Request, webhook_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        manage.delete_webhook(call.rt, call.identity, _webhook_id(webhook_id))
        return {}

    return await serve(request, work)


@router.post("/webhooks/{webhook_id}:rotateSecret")
async def rotate_secret(request: Request, webhook_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        return {"secret": manage.rotate_secret(call.rt, call.identity, _webhook_id(webhook_id))}

    return await serve(request, work)


@router.post("/webhooks/{webhook_id}:test")
async def test_webhook(request: Request, webhook_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        return {"deliveryId": manage.send_test(call.rt, call.identity, _webhook_id(webhook_id))}

    return await serve(request, work)


@router.get("/webhooks/{webhook_id}/deliveries")
async def list_deliveries(request: Request, webhook_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        wid = _webhook_id(webhook_id)
        v = ViolationCollector()
        limit = parse.integer(
            v,
            "limit",
            parse.single(call.query, "limit"),
            low=1,
            high=manage.MAX_DELIVERIES_PAGE,
        )
        cursor = parse.single(call.query, "cursor") or None
        if cursor is not None and len(cursor) > 1000:
            v.add("cursor", "is not a cursor of this webhook's deliveries", "FORMAT")
        v.raise_if_any()
        page = manage.list_deliveries(call.rt, call.identity, wid, limit=limit or 20, cursor=cursor)
        return {
            "deliveries": [delivery_wire(d) for d in page.deliveries],
            "nextCursor": page.next_cursor,
        }

    return await serve(request, work)


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}:redeliver")
async def redeliver(request: Request, webhook_id: str, delivery_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        wid = _webhook_id(webhook_id)
        record = manage.redeliver(call.rt, call.identity, wid, delivery_id[:64])
        return {"delivery": delivery_wire(record)}

    return await serve(request, work)
