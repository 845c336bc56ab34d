"""Where providers deliver change notifications (not part of the public API)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from calsync.service.runtime import Runtime
from calsync.service.sync import push

router = APIRouter()


@router.post(push.GOOGLE_PATH)
async def google_notification(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-goog")}
    status = await run_in_threadpool(push.on_google, rt, headers)
    return Response(status_code=status)


@router.post(push.GRAPH_PATH)
async def graph_notification(request: Request) -> Response:
    return await _graph(request, push.on_graph)


@router.post(push.GRAPH_LIFECYCLE_PATH)
async def graph_lifecycle(request: Request) -> Response:
    return await _graph(request, push.on_graph_lifecycle)


async def _graph(request: Request, handle: Callable[[Runtime, dict[str, Any]], None]) -> Response:
    token = request.query_params.get("validationToken")
    if token is not None:  # the subscription handshake: echo at once, touch nothing
        return PlainTextResponse(token, status_code=200)
    rt: Runtime = request.app.state.runtime
    try:
        body = json.loads(await request.body())
    except ValueError:
        return Response(status_code=400)
    if isinstance(body, dict):
        await run_in_threadpool(handle, rt, body)
    return Response(status_code=202)
