"""The nine methods of the External Calendar API v2. Each route parses, calls one service
function, renders; authentication and threading are in ``api.calls``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from calsync.api import parse, sync_config_wire, wire
from calsync.api.calls import Call, serve
from calsync.domain import Permission
from calsync.errors import FieldViolation, InvalidArgument, ViolationCollector
from calsync.service.access.auth import require_any
from calsync.service.connections import connect, oauth
from calsync.service.connections import manage as connections
from calsync.service.events import cursor
from calsync.service.events import list_events as events
from calsync.service.views import EventsPage
from calsync.tz import epoch_ms

router = APIRouter()
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@router.get("/providers")
async def list_providers(request: Request) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        require_any(call.identity, Permission.LIST_PROVIDERS)
        return {"providers": [wire.provider(p) for p in call.rt.providers.listed()]}

    return await serve(request, work)


@router.get("/connections")
async def list_connections(request: Request) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        v = ViolationCollector()
        schedule_ids = parse.guid_list(v, "scheduleIds", parse.repeated(call.query, "scheduleIds"))
        parse.boolean(v, "partialFailure", parse.single(call.query, "partialFailure"))
        v.raise_if_any()
        result = connections.list_connections(
            call.rt, identity=call.identity, schedule_ids=list(schedule_ids) or None
        )
        return {
            "connections": [wire.connection(c) for c in result.connections],
            "failedProviderIds": result.failed_provider_ids,
        }

    return await serve(request, work)


@router.post("/connections:connectByOAuth")
async def connect_by_oauth(request: Request) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        body = parse.json_body(call.body)
        v = ViolationCollector()
        schedule_id = parse.guid(v, "scheduleId", body.get("scheduleId"))
        provider_id = parse.guid(v, "providerId", body.get("providerId"))
        redirect_url = parse.web_url(v, "redirectUrl", body.get("redirectUrl"))
        v.raise_if_any()
        assert schedule_id and provider_id and redirect_url
        url = oauth.start(
            call.rt,
            identity=call.identity,
            schedule_id=schedule_id,
            provider_id=provider_id,
            redirect_url=redirect_url,
        )
        return {"oauthUrl": url}

    return await serve(request, work)


@router.post("/connections:connectByCredentials")
async def connect_by_credentials(request: Request) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        body = parse.json_body(call.body)
        v = ViolationCollector()
        schedule_id = parse.guid(v, "scheduleId", body.get("scheduleId"))
        provider_id = parse.guid(v, "providerId", body.get("providerId"))
        email = parse.email(v, "email", body.get("email"))
        password = parse.text(v, "password", body.get("password"), max_len=1024)
        v.raise_if_any()
        assert schedule_id and provider_id and email and password
        view = connect.connect_by_credentials(
            call.rt,
            identity=call.identity,
            schedule_id=schedule_id,
            provider_id=provider_id,
            email=email,
            password=password,
        )
        return {"connection": wire.connection(view)}

    return await serve(request, work)


@router.get("/connections/{connection_id}")
async def get_connection(request: Request, connection_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        view = connections.get_connection(
            call.rt, identity=call.identity, connection_id=connection_id
        )
        return {"connection": wire.connection(view)}

    return await serve(request, work)


@router.get("/connections/{connection_id}/calendars")
async def list_calendars(request: Request, connection_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        found = connections.list_calendars(
            call.rt, identity=call.identity, connection_id=connection_id
        )
        return {"calendars": [wire.calendar(c) for c in found]}

    return await serve(request, work)


@router.patch("/connections/{connection_id}/sync-config")
async def update_sync_config(request: Request, connection_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        body = parse.json_body(call.body)
        v = ViolationCollector()
        parse.path_echo(v, "connectionId", connection_id, body.get("connectionId"))
        requested, present = sync_config_wire.parse(v, body)
        field_mask = sync_config_wire.parse_field_mask(v, body.get("fieldMask"))
        v.raise_if_any()
        view = connections.update_sync_config(
            call.rt,
            identity=call.identity,
            connection_id=connection_id,
            requested=requested,
            present=present,
            field_mask=field_mask,
        )
        return {"connection": wire.connection(view)}

    return await serve(request, work)


@router.post("/connections/{connection_id}/disconnect")
async def disconnect(request: Request, connection_id: str) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        body = parse.json_body(call.body, allow_empty=True)
        v = ViolationCollector()
        parse.path_echo(v, "connectionId", connection_id, body.get("connectionId"))
        v.raise_if_any()
        view = connections.disconnect(call.rt, identity=call.identity, connection_id=connection_id)
        return {"connection": wire.connection(view)}

    return await serve(request, work)


@router.get("/events")
async def list_events(request: Request) -> JSONResponse:
    def work(call: Call) -> dict[str, Any]:
        query, limit = _event_query(call)
        page = events.list_events(call.rt, identity=call.identity, query=query, limit=limit)
        _fresh_as_of_header(call, page)
        return wire.events_page(page)

    def quick(call: Call) -> dict[str, Any] | None:
        assert call.rt.loop_engine is not None
        query, limit = _event_query(call)
        page = events.stored_events(
            call.rt, call.rt.loop_engine, identity=call.identity, query=query, limit=limit
        )
        if page is None:
            return None
        _fresh_as_of_header(call, page)
        return wire.events_page(page)

    return await serve(request, work, quick=quick)


FRESH_AS_OF_HEADER = "X-Calsync-Fresh-As-Of"


def _fresh_as_of_header(call: Call, page: EventsPage) -> None:
    """Up to when the answer is known to match every calendar it used (RFC 3339, UTC)."""
    if page.fresh_as_of is not None:
        call.headers[FRESH_AS_OF_HEADER] = wire.timestamp(page.fresh_as_of)


def _event_query(call: Call) -> tuple[cursor.EventQuery, int]:
    q = call.query
    v = ViolationCollector()
    limit = parse.integer(
        v, "cursorPaging.limit", parse.single(q, "cursorPaging.limit"), low=1, high=MAX_LIMIT
    )
    token = parse.single(q, "cursorPaging.cursor")
    if token:
        v.raise_if_any()
        query = cursor.decode(call.rt.cursor_key, call.identity.tenant_id, token)
        return query, limit or DEFAULT_LIMIT
    start = parse.rfc3339(v, "from", parse.single(q, "from"))
    end = parse.rfc3339(v, "to", parse.single(q, "to"))
    for name, value in (("from", start), ("to", end)):
        if value is None and not parse.single(q, name):
            v.add(name, "is required unless cursorPaging.cursor is set", "REQUIRED_FIELD")
    schedule_ids = parse.guid_list(v, "scheduleIds", parse.repeated(q, "scheduleIds"))
    user_ids = parse.guid_list(v, "userIds", parse.repeated(q, "userIds"))
    all_day = parse.boolean(v, "allDay", parse.single(q, "allDay"))
    partial = parse.boolean(v, "partialFailure", parse.single(q, "partialFailure"))
    include_pi = parse.boolean(v, "includePi", parse.single(q, "includePi"))
    fieldsets = parse.repeated(q, "fieldsets")
    for index, fieldset in enumerate(fieldsets):
        if fieldset not in ("NO_PI", "OWN_PI"):
            v.add(f"fieldsets[{index}]", "must be NO_PI or OWN_PI", "ONEOF")
    v.raise_if_any()
    assert start is not None and end is not None
    if start >= end:
        raise InvalidArgument([FieldViolation("to", "must be later than from", "OTHER")])
    query = cursor.EventQuery(
        from_ms=epoch_ms(start),
        to_ms=epoch_ms(end),
        schedule_ids=schedule_ids,
        user_ids=user_ids,
        all_day=all_day,
        own_pi="OWN_PI" in fieldsets or bool(include_pi),
        partial_failure=bool(partial),
    )
    return query, limit or DEFAULT_LIMIT
