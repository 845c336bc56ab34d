"""/openapi.json: a valid OpenAPI 3.1 document that covers every public route, whose examples
fit their schemas, and whose schemas fit what the routes really answer."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.openapi.utils import get_openapi
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from openapi_spec_validator import validate

from calsync.api.app import create_app
from calsync.api.openapi import openapi_document
from calsync.service.runtime import Runtime
from tests.api.test_external_api import EMAIL, PASSWORD, account, connect, make_schedule
from tests.conftest import EXT, FAKE_PROVIDER_ID, Api, random_guid
from tests.fakes import FakeProvider

__all__ = ["account"]  # the fixture, imported so that these tests can use it
# Served, but not part of the public API: browsers and providers call them, not platforms.
INTERNAL_PREFIXES = ("/oauth/", "/push/", "/dashboard", "/metrics", "/openapi.json")
METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document("https://calsync.example.com")


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)
    broken = copy.deepcopy(document)
    broken["paths"]["/v1/health"]["get"]["parameters"] = [{"name": "where-is-in"}]
    with pytest.raises(Exception, match="where-is-in"):
        validate(broken)


def test_document_covers_every_public_route_and_nothing_else(
    runtime: Runtime, document: dict[str, Any]
) -> None:
    app = create_app(runtime, worker=False)
    served = get_openapi(title="routes", version="0", routes=app.routes)["paths"]
    routes = {
        (_template(path), method)
        for path, operations in served.items()
        if not path.startswith(INTERNAL_PREFIXES)
        for method in operations
    }
    documented = {
        (_template(path), method)
        for path, operations in document["paths"].items()
        for method in operations
        if method in METHODS
    }
    assert routes - documented == set(), "served but not documented"
    assert documented - routes == set(), "documented but not served"
    external = {p for p, _ in documented if "external-calendars" in p}
    assert len(external) == 2 * 9
    assert {p for p, _ in documented if p.startswith("/v1/")} >= {
        "/v1/health",
        "/v1/schedules/{}",
        "/v1/schedules/{}/sessions/{}",
        "/v1/schedules/{}/sessions",
        "/v1/connections/{}/sync",
    }


def test_operations_are_described_secured_and_unique(document: dict[str, Any]) -> None:
    ids = []
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            ids.append(op["operationId"])
            assert op["summary"] and op["description"], (path, method)
            assert {"200", "201"} & set(op["responses"]), (path, method)
            if path != "/v1/health":
                assert "401" in op["responses"], (path, method)
    assert len(ids) == len(set(ids))
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"]["name"] == "Authorization"
    assert document["paths"]["/v1/health"]["get"]["security"] == []
    assert document["servers"] == [{"url": "https://calsync.example.com"}]


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    # "#/components/..." references resolve against the root: give it the components.
    root = {**schema, "components": document["components"]}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _examples(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(where, schema, example) for every example in the document."""
    for name, schema in document["components"]["schemas"].items():
        for index, example in enumerate(schema.get("examples", [])):
            yield f"schemas.{name}[{index}]", schema, example
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            media = [("request", op.get("requestBody", {}).get("content", {}))]
            media += [(status, r.get("content", {})) for status, r in op["responses"].items()]
            for where, content in media:
                for mime, item in content.items():
                    if "example" in item:
                        yield f"{method} {path} {where} {mime}", item["schema"], item["example"]


def test_every_example_fits_its_schema(document: dict[str, Any]) -> None:
    checked = 0
    for where, schema, example in _examples(document):
        errors = [e.message for e in _validator(document, schema).iter_errors(example)]
        assert errors == [], where
        checked += 1
    assert checked > 100


@pytest.mark.parametrize(
    ("schema", "change"),
    [
        ("Connection", {"providerId": "not-a-guid"}),
        ("Connection", {"status": "HAPPY"}),
        ("Event", {"start": "yesterday"}),
        (
            "ConnectionSyncConfig",
            {"syncToCalendar": {"primaryCalendar": {}, "dedicatedCalendar": {}}},
        ),
        ("Session", {"allDay": True}),  # an all-day session takes dates, not date-times
        ("Schedule", {"createdDate": None}),
    ],
)
def test_schemas_reject_what_the_wire_never_carries(
    document: dict[str, Any], schema: str, change: dict[str, Any]
) -> None:
    validator = _validator(document, {"$ref": f"#/components/schemas/{schema}"})
    example = document["components"]["schemas"][schema]["examples"][0]
    validator.validate(example)
    with pytest.raises(ValidationError):
        validator.validate({**example, **change})


def _check(
    document: dict[str, Any], response: Any, path: str, method: str, status: int = 200
) -> dict[str, Any]:
    """The response has the documented status and fits the documented schema."""
    assert response.status_code == status, response.text
    documented = document["paths"][path][method]["responses"][str(status)]
    schema = documented["content"]["application/json"]["schema"]
    body: dict[str, Any] = response.json()
    _validator(document, schema).validate(body)
    return body


def test_real_responses_fit_the_documented_schemas(
    api: Api, account: FakeProvider, document: dict[str, Any]
) -> None:
    d = document
    _check(d, api.client.get("/v1/health"), "/v1/health", "get")
    _check(d, api.get(f"{EXT}/providers"), f"{EXT}/providers", "get")
    schedule_id = make_schedule(api)
    _check(d, api.get("/v1/schedules"), "/v1/schedules", "get")
    _check(d, api.get(f"/v1/schedules/{schedule_id}"), "/v1/schedules/{scheduleId}", "get")
    connection = connect(api, schedule_id)["connection"]
    assert connection["externalAccountEmail"] == EMAIL and PASSWORD not in str(connection)
    cid = connection["id"]
    _check(d, api.get(f"{EXT}/connections/{cid}"), f"{EXT}/connections/{{connectionId}}", "get")
    _check(d, api.get(f"{EXT}/connections"), f"{EXT}/connections", "get")
    calendars = f"{EXT}/connections/{{connectionId}}/calendars"
    _check(d, api.get(f"{EXT}/connections/{cid}/calendars"), calendars, "get")
    config = {"syncConfig": {"listEventFromCalendars": {"enabled": True, "primaryCalendar": {}}}}
    patched = api.patch(f"{EXT}/connections/{cid}/sync-config", config)
    _check(d, patched, f"{EXT}/connections/{{connectionId}}/sync-config", "patch")
    window = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-31T00:00:00Z", "fieldsets": "OWN_PI"}
    events = _check(d, api.get(f"{EXT}/events", params=window), f"{EXT}/events", "get")
    assert events["events"], "the fake account has events in December 2026"
    report = api.get(f"/v1/connections/{cid}/sync")
    _check(d, report, "/v1/connections/{connectionId}/sync", "get")

    session_path = "/v1/schedules/{scheduleId}/sessions/{sessionId}"
    session = {
        "title": "Haircut",
        "status": "CONFIRMED",
        "start": "2026-12-02T10:00:00+01:00",
        "end": "2026-12-02T11:00:00+01:00",
    }
    put = api.put(f"/v1/schedules/{schedule_id}/sessions/s-1", session)
    _check(d, put, session_path, "put")
    all_day = {"title": "Offsite", "status": "CONFIRMED", "allDay": True}
    all_day |= {"start": "2026-12-07", "end": "2026-12-09"}
    _check(d, api.put(f"/v1/schedules/{schedule_id}/sessions/s-2", all_day), session_path, "put")
    listed = api.get(f"/v1/schedules/{schedule_id}/sessions")
    assert len(_check(d, listed, "/v1/schedules/{scheduleId}/sessions", "get")["sessions"]) == 2
    cancelled = api.delete(f"/v1/schedules/{schedule_id}/sessions/s-1")
    _check(d, cancelled, session_path, "delete")

    disconnect = f"{EXT}/connections/{{connectionId}}/disconnect"
    _check(d, api.post(f"{EXT}/connections/{cid}/disconnect", {}), disconnect, "post")
    again = api.post(f"{EXT}/connections/{cid}/disconnect", {})
    assert _check(d, again, disconnect, "post", 428)["details"]["applicationError"]["code"] == (
        "CONNECTION_ALREADY_DISCONNECTED"
    )
    _check(d, api.delete(f"/v1/schedules/{schedule_id}"), "/v1/schedules/{scheduleId}", "delete")


def test_error_responses_fit_the_envelope(api: Api, document: dict[str, Any]) -> None:
    d = document
    get_connection = f"{EXT}/connections/{{connectionId}}"
    _check(d, api.get(f"{EXT}/connections/nope"), get_connection, "get", 404)
    _check(d, api.get(f"{EXT}/connections/nope", key="wrong"), get_connection, "get", 401)
    bad = api.get(f"{EXT}/events", params={"from": "yesterday"})
    body = _check(d, bad, f"{EXT}/events", "get", 400)
    assert body["details"]["validationError"]["fieldViolations"]
    oauth = {"scheduleId": random_guid(), "providerId": FAKE_PROVIDER_ID, "redirectUrl": "x"}
    _check(
        d,
        api.post(f"{EXT}/connections:connectByOAuth", oauth),
        f"{EXT}/connections:connectByOAuth",
        "post",
        400,
    )


def test_served_at_openapi_json_and_fastapi_docs_are_off(runtime: Runtime) -> None:
    with TestClient(create_app(runtime, worker=False)) as client:
        response = client.get("/openapi.json")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        served = response.json()
        assert served == openapi_document(runtime.settings.public_url)
        # No Swagger UI (it would load scripts from a CDN): /docs leads to the document.
        docs = client.get("/docs", follow_redirects=False)
        assert docs.status_code == 307 and docs.headers["location"] == "/openapi.json"
        assert client.get("/redoc").status_code == 404
