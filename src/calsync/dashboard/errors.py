"""Failures of dashboard routes as pages: a route class that turns the sign-in redirect, a
refused CSRF token and service errors into responses, for the dashboard's routes only."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from calsync.dashboard.pages import render
from calsync.dashboard.web import CsrfRefused, SignInRequired, redirect
from calsync.errors import CalsyncError, NotFound, PermissionDenied

SIGNIN_URL = "/dashboard/signin"


def error_page(request: Request, exc: Exception) -> Response:
    if isinstance(exc, SignInRequired):
        return redirect(SIGNIN_URL)
    if isinstance(exc, CsrfRefused):
        return render(
            "error.html",
            403,
            title="Form expired",
            message="This form was not sent from your current session. Go back, reload the "
            "page and try again.",
        )
    if isinstance(exc, NotFound):
        return render(
            "error.html",
            404,
            title="Not found",
            message="This page does not exist, or not any more.",
        )
    if isinstance(exc, PermissionDenied):
        return render(
            "error.html",
            403,
            title="Not allowed",
            message="Your sign-in does not allow this: " + exc.description + ".",
        )
    assert isinstance(exc, CalsyncError)
    return render(
        "error.html", exc.http_status, title="Something went wrong", message=exc.description
    )


class DashboardRoute(APIRoute):
    """Routes whose expected failures render as dashboard pages, never as API JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (SignInRequired, CsrfRefused, CalsyncError) as exc:
                return error_page(request, exc)

        return handle
