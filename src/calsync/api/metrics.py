"""``GET /metrics`` (Prometheus text format) and the middleware that counts HTTP requests.

Requests are labelled by the route *template* the router matched
(``/v2/external-calendars/connections/{connection_id}``), never by the raw path, so the number
of series stays bounded whatever clients send; a path no route matches counts as ``unmatched``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calsync.errors import Unauthenticated
from calsync.metrics import CONTENT_TYPE, UNMATCHED_ROUTE
from calsync.service.connections.operations import queue_snapshot
from calsync.service.runtime import Runtime

METRICS_PATH = "/metrics"
router = APIRouter()


class HttpMetricsMiddleware:
    """Counts every HTTP request by method, route template and status, and times it."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.metrics = runtime.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        root_path = scope.get("root_path", "")

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.observe_request(
                scope.get("method", ""),
                route_template(scope, root_path),
                status["code"],
                time.perf_counter() - started,
            )


def route_template(scope: Scope, root_path: str = "") -> str:
    """The path template of the route that handled ``scope``, or ``unmatched``.

    The router leaves the matched route in ``scope["route"]``; where routers are included
    with a prefix, that route knows only its own part of the path, so the prefix is taken
    from the request path (prefixes are literal). A mount shows as ``<mount>/{path}``.
    """
    path: str = scope.get("path", "")
    route = scope.get("route")
    template = getattr(route, "path", None)
    regex = getattr(route, "path_regex", None)
    if isinstance(template, str) and isinstance(regex, re.Pattern):
        for start in [i for i, char in enumerate(path) if char == "/"]:
            if regex.match(path[start:]):
                return path[:start] + template
        return template
    mounted = scope.get("root_path", "")
    if isinstance(mounted, str) and mounted != root_path:
        return mounted + "/{path}"
    if "endpoint" in scope and not scope.get("path_params"):
        return path  # a literal route (no parameters), so one series per route
    return UNMATCHED_ROUTE


@router.get(METRICS_PATH, include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Counters since the process started, plus the queue as the database shows it now."""
    rt: Runtime = request.app.state.runtime
    _check_token(rt, request.headers.get("authorization"))
    snapshot = await run_in_threadpool(queue_snapshot, rt)
    rt.metrics.set_queue(snapshot)
    rt.metrics.set_providers([(p.id, p.name, p.kind.value) for p in rt.providers.all()])
    return Response(rt.metrics.render(), media_type=CONTENT_TYPE)


def _check_token(rt: Runtime, authorization: str | None) -> None:
    """With ``CALSYNC_METRICS_TOKEN`` set, the scraper must send it as a bearer token."""
    expected = rt.settings.metrics_token
    if expected is None or not expected.get_secret_value():
        return  # not set (an empty value counts as not set)
    scheme, _, given = (authorization or "").partition(" ")
    wanted = hashlib.sha256(expected.get_secret_value().encode()).digest()
    offered = hashlib.sha256(given.strip().encode()).digest()
    if scheme.lower() != "bearer" or not hmac.compare_digest(wanted, offered):
        raise Unauthenticated("GET /metrics needs 'Authorization: Bearer <CALSYNC_METRICS_TOKEN>'")
