"""Where providers deliver change notifications (not part of the public API).

One route for every kind: ``/push/{kind}`` (``/push/google``, ``/push/microsoft``) and
``/push/{kind}/{stream}`` for a kind's further streams (``/push/microsoft/lifecycle``). The
service reads and checks the delivery; its errors become statuses in ``api.errors``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from calsync.service.runtime import Runtime
from calsync.service.sync import push

router = APIRouter()


@router.post(push.PUSH_PATH)
@router.post(push.PUSH_PATH + "/{stream}")
async def notification(request: Request, kind: str, stream: str = "") -> Response:
    rt: Runtime = request.app.state.runtime
    delivery = push.PushRequest(
        stream=stream,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        body=await request.body(),
    )
    receipt = await run_in_threadpool(push.receive, rt, kind, delivery)
    if receipt.handshake is not None:
        return PlainTextResponse(receipt.handshake, status_code=200)
    return Response(status_code=receipt.acknowledge_status)
