"""calsync's own /v1 API: schedules (the platform's data) and health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from calsync import __version__
from calsync.api import parse, wire
from calsync.api.calls import Call, serve
from calsync.errors import ViolationCollector
from calsync.service.platform import schedules
from calsync.service.runtime import Runtime
from calsync.service.sync.report import sync_report
from calsync.store import database
from calsync.tz import zone_exists

router = APIRouter(prefix="/v1")


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    rt: Runtime = request.app.state.runtime
    up = await run_in_threadpool(database.ping, rt.store)
    body = {
        "status": "ok" if up else "degraded",
        "database": "ok" if up else "down",
        "version": __version__,
    }
    return JSONResponse(body, status_code=200 if up else 503)


@router.put("/schedules/{schedule_id}")
async def put_schedule(request: Request, schedule_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        body = parse.json_body(call.body)
        v = ViolationCollector()
        sid = parse.guid(v, "scheduleId", schedule_id)
        parse.path_echo(v, "id", schedule_id.lower(), (body.get("id") or "").lower() or None)
        owner = parse.guid(v, "ownerUserId", body.get("ownerUserId"), required=False)
        name = parse.text(v, "ownerName", body.get("ownerName"), required=False, max_len=300)
        tz = parse.text(v, "timeZone", body.get("timeZone"), required=False, max_len=64) or "UTC"
        if not zone_exists(tz):
            v.add("timeZone", "must be an IANA time zone name such as Europe/Berlin", "FORMAT")
        v.raise_if_any()
        assert sid is not None
        view = schedules.put_schedule(
            call.rt,
            identity=call.identity,
            schedule_id=sid,
            owner_user_id=owner,
            owner_name=name or "",
            time_zone=tz,
        )
        return {"schedule": wire.schedule(view)}

    return await serve(request, work)


@router.get("/schedules/{schedule_id}")
async def get_schedule(request: Request, schedule_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        v = ViolationCollector()
        sid = parse.guid(v, "scheduleId", schedule_id)
        v.raise_if_any()
        assert sid is not None
        view = schedules.get_schedule(call.rt, identity=call.identity, schedule_id=sid)
        return {"schedule": wire.schedule(view)}

    return await serve(request, work)


@router.get("/schedules")
async def list_schedules(request: Request) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        found = schedules.list_schedules(call.rt, identity=call.identity)
        return {"schedules": [wire.schedule(s) for s in found]}

    return await serve(request, work)


@router.delete("/schedules/{schedule_id}")
async def delete_schedule(request: Request, schedule_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        v = ViolationCollector()
        sid = parse.guid(v, "scheduleId", schedule_id)
        v.raise_if_any()
        assert sid is not None
        view = schedules.delete_schedule(call.rt, identity=call.identity, schedule_id=sid)
        return {"schedule": wire.schedule(view)}

    return await serve(request, work)


@router.get("/connections/{connection_id}/sync")
async def connection_sync(request: Request, connection_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        report = sync_report(call.rt, identity=call.identity, connection_id=connection_id)
        return {"sync": wire.sync_report(report)}

    return await serve(request, work)
