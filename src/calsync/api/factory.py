"""The application of one of several server processes (``calsync serve --processes N``).

Uvicorn starts each process from an import string, so the process builds its own runtime
from the environment (its own engine, key cache and lease owner, the process id being part
of ``Runtime.instance_id``). ``calsync serve`` migrates the database before it starts them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from calsync import logs
from calsync.api.app import create_app
from calsync.service.runtime import build_runtime
from calsync.settings import get_settings

# Set by ``calsync serve --no-worker`` for the processes it starts.
NO_WORKER_ENV = "CALSYNC_SERVE_NO_WORKER"
FACTORY = f"{__name__}:app_from_environment"


def serve_processes(processes: int, *, worker: bool, options: dict[str, Any]) -> None:
    """Run ``processes`` server processes on one listening socket, supervised (a dead one is
    replaced; SIGTERM stops them all)."""
    os.environ[NO_WORKER_ENV] = "0" if worker else "1"
    config = _TcpConfig(FACTORY, factory=True, workers=processes, **options)
    Multiprocess(config, sockets=[config.bind_socket()]).run()


class _TcpConfig(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        """Uvicorn's listening socket, labelled as TCP: asyncio sets TCP_NODELAY only on
        connections accepted from a socket whose protocol says so, and without it each
        response waits ~40 ms (Nagle's algorithm against the client's delayed ACK)."""
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, sock.detach())
        return sock


def app_from_environment() -> FastAPI:
    settings = get_settings()
    logs.configure(settings.log_level)
    runtime = build_runtime(settings)
    app = create_app(runtime, worker=os.environ.get(NO_WORKER_ENV) != "1")
    serving = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(inner: FastAPI) -> AsyncIterator[None]:
        try:
            async with serving(inner):
                yield
        finally:
            runtime.close()

    app.router.lifespan_context = lifespan
    return app
