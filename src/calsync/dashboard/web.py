"""What every dashboard route shares: the signed-in browser, its CSRF check, form bodies,
cookies and running service calls off the event loop."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from calsync.dashboard import browser_sessions
from calsync.domain import Identity, IdentityType
from calsync.service.runtime import Runtime

T = TypeVar("T")
SESSION_COOKIE = "calsync_dashboard"
# Before sign-in: a throw-away token that the sign-in forms' CSRF tokens are tied to.
PRESESSION_COOKIE = "calsync_dashboard_pre"
COOKIE_PATH = "/dashboard"
MAX_FORM_BYTES = 64 * 1024


class CsrfRefused(Exception):
    """A POST without the CSRF token of the browser's session."""


class SignInRequired(Exception):
    """No valid session: the browser is sent to the sign-in page."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in browser: who it is, and the CSRF token its forms carry."""

    identity: Identity
    csrf: str

    @property
    def who(self) -> str:
        identity = self.identity
        if identity.type is IdentityType.USER:
            return f"User {identity.user_id} of {identity.tenant_id}"
        return f"Admin of {identity.tenant_id}"


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def call(fn: Callable[[], T]) -> T:
    """Service functions do blocking I/O: run them in a worker thread."""
    return await run_in_threadpool(fn)


async def viewer(request: Request) -> Viewer:
    """The signed-in browser, or SignInRequired."""
    rt = runtime(request)
    token = request.cookies.get(SESSION_COOKIE)
    identity = await call(lambda: browser_sessions.identity_of(rt, token))
    if identity is None or token is None:
        raise SignInRequired()
    return Viewer(identity=identity, csrf=browser_sessions.csrf_token(rt, token))


async def form(request: Request, *, cookie: str = SESSION_COOKIE) -> dict[str, list[str]]:
    """The url-encoded body of a POST whose CSRF token matches the ``cookie`` token."""
    body = await request.body()
    fields: dict[str, list[str]] = {}
    if len(body) <= MAX_FORM_BYTES:
        for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            fields.setdefault(name, []).append(value)
    given = fields.get("csrf", [None])[0]
    if not browser_sessions.csrf_valid(runtime(request), request.cookies.get(cookie), given):
        raise CsrfRefused()
    return fields


def first(fields: dict[str, list[str]], name: str, default: str = "") -> str:
    return fields.get(name, [default])[0]


def presession(request: Request) -> str:
    """The pre-sign-in token of this browser (a new one if it has none)."""
    return request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(32)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Lax, limited to /dashboard; Secure when served over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=runtime(request).settings.public_url.lower().startswith("https://"),
    )


def redirect(url: str) -> RedirectResponse:
    """After a POST, the browser GETs the next page (303 See Other)."""
    return RedirectResponse(url, status_code=303)
