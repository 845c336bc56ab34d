"""The browser's return from the provider's consent page (not part of the public API)."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from calsync.service.connections import oauth
from calsync.service.runtime import Runtime

router = APIRouter()


@router.get(oauth.CALLBACK_PATH)
async def oauth_callback(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    params = {k: v for k, v in request.query_params.items()}
    outcome = await run_in_threadpool(oauth.complete, rt, params)
    if outcome.location is not None:
        return RedirectResponse(outcome.location, status_code=302)
    page = (
        "<!doctype html><meta charset=utf-8><title>calsync</title>"
        f"<p>{html.escape(outcome.text)}</p>"
    )
    return HTMLResponse(page, status_code=outcome.status)
