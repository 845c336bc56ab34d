"""The ASGI application: routers, the error mapper and the request-id middleware."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calsync import __version__, logs
from calsync.api import (
    errors,
    external,
    feeds,
    free_busy_routes,
    oauth_callback,
    own,
    push_routes,
    sessions_routes,
    webhooks,
)
from calsync.api import metrics as http_metrics
from calsync.api.guard import Guard, origin_of
from calsync.api.openapi import router as openapi_router
from calsync.api.ratelimit import RateLimits
from calsync.dashboard import router as dashboard_router
from calsync.domain import ConnectMethod
from calsync.service.runtime import Runtime
from calsync.service.sync.worker import Worker

EXTERNAL_PREFIXES = ("/bookings/v2/external-calendars", "/v2/external-calendars")
log = logging.getLogger("calsync.access")
# Nothing of the failure leaks: a fixed text, with the code official clients read.
INTERNAL_ERROR_BODY = json.dumps(
    {
        "message": "internal error",
        "details": {
            "applicationError": {"code": "INTERNAL", "description": "internal error", "data": {}}
        },
    }
).encode()


class RequestIdMiddleware:
    """Every response carries ``X-Wix-Request-Id``; unexpected errors become a bare 500
    envelope (never a stack trace); one access log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(12)
        bound = logs.bind_request_id(request_id)
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                headers = list(message.get("headers", []))
                headers.append((b"x-wix-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            if not status["sent"]:
                body = INTERNAL_ERROR_BODY
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method", ""),
                    "path": scope.get("path", ""),
                    "status": status["code"],
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            logs.unbind_request_id(bound)


def _oauth_origins(runtime: Runtime) -> list[str]:
    """Where a connect form may send the browser: the OAuth providers' authorization servers."""
    origins = []
    for provider in runtime.providers.listed():
        if ConnectMethod.OAUTH in provider.features.connect_methods:
            origin = origin_of(runtime.providers.oauth_client(provider).authorize_url)
            if origin is not None:
                origins.append(origin)
    return origins


def create_app(runtime: Runtime, *, worker: bool = True) -> FastAPI:
    """The application; with ``worker`` it also runs a sync worker while it serves."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        background = Worker(runtime) if worker else None
        if background is not None:
            background.start()
        try:
            yield
        finally:
            if background is not None:
                background.stop()

    app = FastAPI(
        title="calsync",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # api/openapi serves the document; the routes read raw requests
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    for prefix in EXTERNAL_PREFIXES:
        app.include_router(external.router, prefix=prefix)
    app.include_router(own.router)
    app.include_router(feeds.router)
    app.include_router(sessions_routes.router)
    app.include_router(free_busy_routes.router)
    app.include_router(webhooks.router)
    app.include_router(oauth_callback.router)
    app.include_router(push_routes.router)
    app.include_router(dashboard_router.router)
    app.include_router(http_metrics.router)
    app.include_router(openapi_router)
    errors.install(app)
    limits = RateLimits(
        auth_failures_per_minute=runtime.settings.auth_failures_per_minute,
        tenant_requests_per_second=runtime.settings.tenant_requests_per_second,
    )
    app.state.rate_limits = limits
    app.add_middleware(Guard, limits=limits, form_origins=_oauth_origins(runtime))
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(http_metrics.HttpMetricsMiddleware, runtime=runtime)
    return app
