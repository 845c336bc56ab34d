"""The schedule list, a schedule's page (connections, Connect) and the Connect actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from calsync.dashboard import connect_forms
from calsync.dashboard.connection_cards import provider_name, schedule_cards
from calsync.dashboard.errors import DashboardRoute
from calsync.dashboard.pages import render
from calsync.dashboard.web import Viewer, call, first, form, redirect, runtime, viewer
from calsync.domain import ConnectMethod
from calsync.errors import CalsyncError, NotFound
from calsync.providers.registry import ProviderConfig
from calsync.service.connections import connect, oauth
from calsync.service.connections import manage as connections
from calsync.service.platform.schedules import visible_schedule, visible_schedules

router = APIRouter(route_class=DashboardRoute)
# What the OAuth callback's ``error=`` values mean for the person who tried.
OAUTH_ERRORS = {
    "reject": "The connection was cancelled at the provider's consent page.",
    "unsupported": "This kind of account cannot be connected.",
    "internal": "The provider did not complete the connection. Try again.",
}


def schedule_url(schedule_id: str) -> str:
    return f"/dashboard/schedules/{schedule_id}"


@router.get("/dashboard")
async def schedule_list(request: Request) -> Response:
    v = await viewer(request)
    found = await call(lambda: visible_schedules(runtime(request), identity=v.identity))
    return render("schedules.html", viewer=v, title="Schedules", schedules=found)


async def _schedule_page(
    request: Request, v: Viewer, schedule_id: str, status: int = 200, **extra: Any
) -> Response:
    rt = runtime(request)

    def load() -> dict[str, Any]:
        schedule = visible_schedule(rt, identity=v.identity, schedule_id=schedule_id)
        return {
            "schedule": schedule,
            "cards": schedule_cards(
                rt, identity=v.identity, schedule_id=schedule.id, time_zone=schedule.time_zone
            ),
            "options": connect_forms.connect_options(rt),
            "notice": _notice(request, v),
        }

    data = await call(load)
    title = data["schedule"].owner_name or "Schedule"
    return render("schedule.html", status, viewer=v, title=title, **data, **extra)


def _notice(request: Request, v: Viewer) -> str | None:
    """The message of a return from OAuth or a disconnect (query parameters)."""
    params = request.query_params
    if params.get("error"):
        return OAUTH_ERRORS.get(params["error"], OAUTH_ERRORS["internal"])
    if params.get("disconnected"):
        return "The calendar account was disconnected."
    connection_id = params.get("connectionId")
    if connection_id:
        rt = runtime(request)
        try:
            view = connections.get_connection(rt, identity=v.identity, connection_id=connection_id)
        except CalsyncError:
            return None
        name = provider_name(rt, view.provider_id)
        return f"Connected: {name} account {view.external_account_email or ''}".strip() + "."
    return None


@router.get("/dashboard/schedules/{schedule_id}")
async def schedule_page(request: Request, schedule_id: str) -> Response:
    return await _schedule_page(request, await viewer(request), schedule_id)


@router.post("/dashboard/schedules/{schedule_id}/connect/oauth")
async def connect_by_oauth(request: Request, schedule_id: str) -> Response:
    v = await viewer(request)
    fields = await form(request)
    rt = runtime(request)
    back = rt.settings.public_url.rstrip("/") + schedule_url(schedule_id.lower())
    try:
        url = await call(
            lambda: oauth.start(
                rt,
                identity=v.identity,
                schedule_id=schedule_id.lower(),
                provider_id=first(fields, "provider_id"),
                redirect_url=back,
            )
        )
    except CalsyncError as exc:
        return await _schedule_page(request, v, schedule_id, 400, oauth_error=exc.description)
    return redirect(url)


def _credentials_provider(request: Request, provider_id: str) -> ProviderConfig:
    provider = runtime(request).providers.get(provider_id)
    if provider is None or ConnectMethod.CREDENTIALS not in provider.features.connect_methods:
        raise NotFound(f"provider {provider_id} not found")
    return provider


async def _credentials_page(
    request: Request, v: Viewer, schedule_id: str, provider: ProviderConfig, **extra: Any
) -> Response:
    rt = runtime(request)
    schedule = await call(
        lambda: visible_schedule(rt, identity=v.identity, schedule_id=schedule_id)
    )
    status = 400 if extra.get("errors") else 200
    return render(
        "connect_credentials.html",
        status,
        viewer=v,
        title=f"Connect {provider.name}",
        schedule=schedule,
        provider=provider,
        icloud=connect_forms.is_icloud(provider),
        apple_id_url=connect_forms.APPLE_ID_URL,
        **extra,
    )


@router.get("/dashboard/schedules/{schedule_id}/connect/{provider_id}")
async def credentials_form(request: Request, schedule_id: str, provider_id: str) -> Response:
    v = await viewer(request)
    provider = _credentials_provider(request, provider_id)
    return await _credentials_page(request, v, schedule_id, provider, errors={}, email="")


@router.post("/dashboard/schedules/{schedule_id}/connect/{provider_id}")
async def connect_by_credentials(request: Request, schedule_id: str, provider_id: str) -> Response:
    v = await viewer(request)
    fields = await form(request)
    provider = _credentials_provider(request, provider_id)
    email, password = first(fields, "email").strip(), first(fields, "password")
    errors = connect_forms.missing_fields(email, password)
    if not errors:
        rt = runtime(request)
        try:
            view = await call(
                lambda: connect.connect_by_credentials(
                    rt,
                    identity=v.identity,
                    schedule_id=schedule_id,
                    provider_id=provider.id,
                    email=email,
                    password=password,
                )
            )
        except CalsyncError as exc:
            errors = connect_forms.field_errors(exc, provider)
        else:
            return redirect(f"/dashboard/connections/{view.id}?connected=1")
    return await _credentials_page(request, v, schedule_id, provider, errors=errors, email=email)
