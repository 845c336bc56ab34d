"""``POST /v1/connections:connectFeed``: subscribe a schedule to an iCalendar feed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from calsync.api import parse, wire
from calsync.api.calls import Call, serve
from calsync.errors import ViolationCollector
from calsync.service.connections import feeds

router = APIRouter(prefix="/v1")


@router.post("/connections:connectFeed")
async def connect_feed(request: Request) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        body = parse.json_body(call.body)
        v = ViolationCollector()
        schedule_id = parse.guid(v, "scheduleId", body.get("scheduleId"))
        provider_id = parse.guid(v, "providerId", body.get("providerId"))
        url = parse.text(v, "url", body.get("url"), max_len=2048)
        v.raise_if_any()
        assert schedule_id and provider_id and url
        view = feeds.connect_feed(
            call.rt,
            identity=call.identity,
            schedule_id=schedule_id,
            provider_id=provider_id,
            url=url,
        )
        return {"connection": wire.connection(view)}

    return await serve(request, work)
