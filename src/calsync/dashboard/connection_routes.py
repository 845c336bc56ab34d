"""One connection: its state, which calendars block time and where bookings go, disconnect."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from calsync.dashboard import sync_choice
from calsync.dashboard.connection_cards import card
from calsync.dashboard.errors import DashboardRoute
from calsync.dashboard.pages import render
from calsync.dashboard.schedule_routes import schedule_url
from calsync.dashboard.web import Viewer, call, first, form, redirect, runtime, viewer
from calsync.domain import ConnectionStatus
from calsync.errors import (
    CalsyncError,
    ConnectionNotConnected,
    NotFound,
    NotSupportedByProvider,
    ProviderUnavailable,
)
from calsync.service.connections import manage as connections
from calsync.service.platform.schedules import visible_schedule
from calsync.service.runtime import Runtime
from calsync.service.views import CalendarView

router = APIRouter(route_class=DashboardRoute)


def connection_url(connection_id: str) -> str:
    return f"/dashboard/connections/{connection_id}"


async def _connection_page(
    request: Request, v: Viewer, connection_id: str, status: int = 200, **extra: Any
) -> Response:
    rt = runtime(request)

    def load() -> dict[str, Any]:
        view = connections.get_connection(rt, identity=v.identity, connection_id=connection_id)
        provider = rt.providers.get(view.provider_id)
        calendars: list[CalendarView] = []
        calendars_problem = None
        if view.status is not ConnectionStatus.DISCONNECTED:
            try:
                calendars = connections.list_calendars(
                    rt, identity=v.identity, connection_id=view.id
                )
            except NotSupportedByProvider:
                pass
            except (ConnectionNotConnected, ProviderUnavailable) as exc:
                calendars_problem = exc.description
        choice = sync_choice.current(view.sync_config, provider.features) if provider else None
        tz = _time_zone(rt, v, view.schedule_id)
        return {
            "card": card(rt, v.identity, view, tz),
            "tz": tz,
            "choice": choice,
            "calendars": calendars,
            "calendars_problem": calendars_problem,
            "import_labels": sync_choice.IMPORT_LABELS,
            "export_labels": sync_choice.EXPORT_LABELS,
        }

    data = await call(load)
    c = data["card"]
    return render(
        "connection.html",
        status,
        viewer=v,
        title=f"{c.provider_name} connection",
        schedule_link=schedule_url(c.connection.schedule_id),
        connected=request.query_params.get("connected") == "1",
        saved=request.query_params.get("saved") == "1",
        **{"errors": {}, **data, **extra},
    )


def _time_zone(rt: Runtime, v: Viewer, schedule_id: str) -> str:
    try:
        return visible_schedule(rt, identity=v.identity, schedule_id=schedule_id).time_zone
    except NotFound:
        return "UTC"


@router.get("/dashboard/connections/{connection_id}")
async def connection_page(request: Request, connection_id: str) -> Response:
    return await _connection_page(request, await viewer(request), connection_id)


@router.post("/dashboard/connections/{connection_id}/sync-config")
async def save_sync_config(request: Request, connection_id: str) -> Response:
    v = await viewer(request)
    fields = await form(request)
    rt = runtime(request)

    def save() -> None:
        view = connections.get_connection(rt, identity=v.identity, connection_id=connection_id)
        provider = rt.providers.get(view.provider_id)
        if provider is None:
            raise NotSupportedByProvider("this connection's provider is not configured any more")
        update = sync_choice.parse(
            sync_choice.current(view.sync_config, provider.features),
            first(fields, "import"),
            first(fields, "export"),
            fields.get("calendar", []),
        )
        connections.update_sync_config(
            rt,
            identity=v.identity,
            connection_id=connection_id,
            requested=update.requested,
            present=set(),
            field_mask=update.field_mask,
        )

    try:
        await call(save)
    except (NotSupportedByProvider, ConnectionNotConnected, ProviderUnavailable) as exc:
        return await _connection_page(
            request, v, connection_id, 400, errors={"form": exc.description}
        )
    except CalsyncError as exc:
        if exc.http_status != 400:
            raise
        errors = sync_choice.field_errors(exc)
        return await _connection_page(request, v, connection_id, 400, errors=errors)
    return redirect(connection_url(connection_id) + "?saved=1")


@router.get("/dashboard/connections/{connection_id}/disconnect")
async def disconnect_confirm(request: Request, connection_id: str) -> Response:
    v = await viewer(request)
    rt = runtime(request)
    c = await call(
        lambda: card(
            rt,
            v.identity,
            connections.get_connection(rt, identity=v.identity, connection_id=connection_id),
            "UTC",  # the confirmation shows no times
        )
    )
    return render(
        "disconnect.html",
        viewer=v,
        title="Disconnect",
        card=c,
        back=connection_url(connection_id),
    )


@router.post("/dashboard/connections/{connection_id}/disconnect")
async def disconnect(request: Request, connection_id: str) -> Response:
    v = await viewer(request)
    await form(request)
    rt = runtime(request)
    view = await call(
        lambda: connections.disconnect(rt, identity=v.identity, connection_id=connection_id)
    )
    return redirect(schedule_url(view.schedule_id) + "?disconnected=1")
