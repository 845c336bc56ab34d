"""Running one API call: read the request, authenticate, do the work off the event loop."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from calsync.domain import Identity
from calsync.errors import FieldViolation, InvalidArgument, RateLimited
from calsync.service.access.auth import authenticate_cached, cached_identity
from calsync.service.runtime import Runtime
from calsync.store.instances.page import ReadFailed

MAX_BODY_BYTES = 256 * 1024
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    rt: Runtime
    identity: Identity
    query: list[tuple[str, str]]
    body: bytes
    # Response headers the work adds (List Events: X-Calsync-Fresh-As-Of).
    headers: dict[str, str] = field(default_factory=dict)


def encode_json(content: Any) -> bytes:
    """Compact UTF-8 JSON, the bytes Starlette's ``JSONResponse`` writes, only faster."""
    encoded: bytes = orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
    return encoded


class EncodedJSON(JSONResponse):
    """A JSON response whose body may already be encoded (by ``serve``'s worker thread)."""

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else encode_json(content)


def _take_tenant_token(request: Request, identity: Identity) -> None:
    """One of the tenant's request tokens (``api.ratelimit``), or 429 with Retry-After."""
    limits = getattr(request.app.state, "rate_limits", None)
    wait = limits.tenant_call(identity.tenant_id) if limits is not None else None
    if wait is not None:
        raise RateLimited(
            "this tenant makes more API calls per second than the server allows "
            "(CALSYNC_TENANT_REQUESTS_PER_SECOND); wait and retry",
            data={"retryAfterSeconds": max(1, round(wait + 0.5))},
        )


async def serve(
    request: Request,
    work: Callable[[Call], dict[str, Any]],
    *,
    quick: Callable[[Call], dict[str, Any] | None] | None = None,
    status_code: int = 200,
) -> JSONResponse:
    """Authenticate the caller (through the key cache of ``service.auth``), then run ``work``
    and encode its answer in a worker thread; errors propagate to the handlers of
    ``api.errors``.

    ``quick`` is the same call's answer when a few reads of ``Call.rt.loop_engine`` give it,
    or None when it needs ``work``. Where there is a loop engine (SQLite, see
    ``store.db.make_loop_engine``) and the key is in the cache, ``quick`` runs on the event
    loop, without a thread; if its reads fail (``store.instances.page.ReadFailed``), ``work``
    does the call in a thread."""
    rt: Runtime = request.app.state.runtime
    body = await request.body() if request.method in ("POST", "PATCH", "PUT") else b""
    if len(body) > MAX_BODY_BYTES:
        raise InvalidArgument([FieldViolation("", "the body is too large", "MAX_SIZE")])
    query = list(request.query_params.multi_items())
    authorization = request.headers.get("authorization")
    site_id = request.headers.get("wix-site-id")
    if quick is not None and rt.loop_engine is not None:
        identity = cached_identity(rt.store, authorization, site_id)
        if identity is not None:
            _take_tenant_token(request, identity)
            call = Call(rt=rt, identity=identity, query=query, body=body)
            try:
                answer = quick(call)
            except ReadFailed as exc:  # e.g. locked for longer than the loop waits
                log.info(
                    "read on the event loop failed; a thread does the call",
                    extra={"reason": exc.reason[:200]},
                )
                answer = None
            if answer is not None:
                return EncodedJSON(encode_json(answer), headers=call.headers)

    headers: dict[str, str] = {}

    def run() -> bytes:
        identity = authenticate_cached(rt.store, authorization, site_id)
        _take_tenant_token(request, identity)
        call = Call(rt=rt, identity=identity, query=query, body=body, headers=headers)
        return encode_json(work(call))

    return EncodedJSON(await run_in_threadpool(run), status_code=status_code, headers=headers)
