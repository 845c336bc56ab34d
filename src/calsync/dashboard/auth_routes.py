"""Sign in (API key form, one-time link) and sign out."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from calsync.dashboard import browser_sessions, signin
from calsync.dashboard.errors import DashboardRoute
from calsync.dashboard.pages import render
from calsync.dashboard.web import (
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    call,
    first,
    form,
    presession,
    redirect,
    runtime,
    set_cookie,
    viewer,
)
from calsync.errors import Unauthenticated

router = APIRouter(route_class=DashboardRoute)
PRESESSION_SECONDS = 3600


def _signin_page(request: Request, template: str, status: int = 200, **context: object) -> Response:
    """A sign-in page; its form's CSRF token is tied to the browser's pre-session cookie."""
    token = presession(request)
    csrf = browser_sessions.csrf_token(runtime(request), token)
    response = render(template, status, csrf=csrf, **context)
    set_cookie(request, response, PRESESSION_COOKIE, token, PRESESSION_SECONDS)
    return response


def _signed_in(request: Request, session_token: str) -> Response:
    response = redirect("/dashboard")
    set_cookie(
        request,
        response,
        SESSION_COOKIE,
        session_token,
        int(browser_sessions.SESSION_TTL.total_seconds()),
    )
    response.delete_cookie(PRESESSION_COOKIE, path="/dashboard")
    return response


@router.get("/dashboard/signin")
async def signin_form(request: Request) -> Response:
    signed_out = request.query_params.get("out") == "1"
    return _signin_page(request, "signin.html", title="Sign in", signed_out=signed_out)


@router.post("/dashboard/signin")
async def signin_with_key(request: Request) -> Response:
    fields = await form(request, cookie=PRESESSION_COOKIE)
    key = first(fields, "api_key").strip()
    rt = runtime(request)
    if not key:
        error = "Enter your API key."
    else:
        try:
            return _signed_in(request, await call(lambda: signin.sign_in_with_key(rt, key)))
        except Unauthenticated:
            error = "This API key is not valid (unknown or revoked)."
    return _signin_page(request, "signin.html", 401, title="Sign in", key_error=error)


@router.get("/dashboard/signin/{token}")
async def signin_link(request: Request, token: str) -> Response:
    usable = await call(lambda: signin.link_usable(runtime(request), token))
    status = 200 if usable else 410
    return _signin_page(request, "signin_link.html", status, title="Sign in", usable=usable)


@router.post("/dashboard/signin/{token}")
async def signin_with_link(request: Request, token: str) -> Response:
    await form(request, cookie=PRESESSION_COOKIE)
    rt = runtime(request)
    try:
        return _signed_in(request, await call(lambda: signin.sign_in_with_link(rt, token)))
    except Unauthenticated:
        return _signin_page(request, "signin_link.html", 410, title="Sign in", usable=False)


@router.post("/dashboard/signout")
async def signout(request: Request) -> Response:
    await viewer(request)
    await form(request)
    token = request.cookies.get(SESSION_COOKIE)
    await call(lambda: browser_sessions.end(runtime(request), token))
    response = redirect("/dashboard/signin?out=1")
    response.delete_cookie(SESSION_COOKIE, path="/dashboard")
    return response
