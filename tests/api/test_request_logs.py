"""Every request writes one JSON access line, and every line logged while serving it carries
the request id that the response returns in X-Wix-Request-Id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from calsync.api import own
from calsync.api.app import create_app
from calsync.errors import NotFound
from calsync.logs import JsonFormatter
from calsync.service.runtime import Runtime
from tests.conftest import EXT, new_key


@contextmanager
def json_logs() -> Iterator[io.StringIO]:
    """Capture what calsync logs at INFO and above, formatted as ``calsync serve`` writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_request_logs_one_access_line_with_its_request_id(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key(runtime)

    def report_that_logs(*_args: Any, **_kwargs: Any) -> Any:
        logging.getLogger("calsync.service.sync.report").warning("looking for the connection")
        raise NotFound("connection nope not found")

    monkeypatch.setattr(own, "sync_report", report_that_logs)
    with json_logs() as stream, TestClient(create_app(runtime, worker=False)) as client:
        providers = client.get(f"{EXT}/providers", headers={"Authorization": key})
        missing = client.get("/v1/connections/nope/sync", headers={"Authorization": key})
        logging.getLogger("calsync.test").info("between requests")
    lines = lines_of(stream)

    first, second = providers.headers["x-wix-request-id"], missing.headers["x-wix-request-id"]
    assert first and second and first != second
    access = [line for line in lines if line["logger"] == "calsync.access"]
    assert [(a["request_id"], a["path"], a["status"]) for a in access] == [
        (first, f"{EXT}/providers", 200),
        (second, "/v1/connections/nope/sync", 404),
    ]
    assert all(a["method"] == "GET" and a["ms"] >= 0 for a in access)
    inside = next(line for line in lines if line["message"] == "looking for the connection")
    assert inside["request_id"] == second  # logged in the worker thread that ran the call
    outside = next(line for line in lines if line["message"] == "between requests")
    assert "request_id" not in outside
    assert key not in stream.getvalue()


def test_an_unexpected_error_is_logged_with_the_request_id_it_returns(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(own, "sync_report", broken)
    key = new_key(runtime)
    with json_logs() as stream, TestClient(create_app(runtime, worker=False)) as client:
        response = client.get("/v1/connections/x/sync", headers={"Authorization": key})
    assert response.status_code == 500
    assert response.json()["details"]["applicationError"]["code"] == "INTERNAL"
    error = next(line for line in lines_of(stream) if line["message"] == "unhandled error")
    assert error["request_id"] == response.headers["x-wix-request-id"]
    assert "RuntimeError: bug" in error["exception"]
