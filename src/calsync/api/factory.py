"""The application of one of several server processes (``calsync serve --processes N``).

Each process loads it from an import string (``FACTORY``), so it builds its own runtime from
the environment (its own engine, key cache and lease owner, the process id being part of
``Runtime.instance_id``). ``calsync serve`` migrates the database before it starts them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from calsync import logs
from calsync.api.app import create_app
from calsync.service.runtime import build_runtime
from calsync.settings import get_settings

# Set by ``calsync serve --no-worker`` for the processes it starts.
NO_WORKER_ENV = "CALSYNC_SERVE_NO_WORKER"
FACTORY = f"{__name__}:app_from_environment"


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
