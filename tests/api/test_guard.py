"""The front door (api.guard, api.ratelimit): body caps on the stream, authentication before
the body, rate limits on failed authentication, bad input that used to be a 500, headers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from calsync.api.app import create_app
from calsync.api.guard import body_cap
from calsync.api.ratelimit import Buckets, RateLimits
from calsync.service.runtime import Runtime
from tests.conftest import EXT, Api, new_key, random_guid

MIB = 1024 * 1024


class Drip:
    """A request body handed out in chunks, counting what the server pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.pulled = total, chunk, 0

    def __iter__(self) -> Iterator[bytes]:
        while self.pulled < self.total:
            self.pulled += self.chunk
            yield b" " * self.chunk


def schedule_body(owner_name: str = "Ada") -> dict[str, str]:
    return {"ownerUserId": random_guid(), "ownerName": owner_name, "timeZone": "Europe/Berlin"}


def assert_envelope(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.json()["details"]["applicationError"]["code"] == code
    assert response.headers["x-content-type-options"] == "nosniff"


async def call_asgi(
    app: object, method: str, path: str, body: Drip, headers: dict[str, str]
) -> tuple[int, dict[str, str]]:
    """One request straight into the ASGI app (TestClient would read the whole body before
    the app sees it): the body is pulled chunk by chunk, as a real server hands it over."""
    chunks = iter(body)
    started: dict[str, object] = {}

    async def receive() -> dict[str, object]:
        chunk = next(chunks, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await app(scope, receive, send)  # type: ignore[operator]
    raw_headers = started.get("headers", [])
    return int(started["status"]), {  # type: ignore[call-overload]
        k.decode(): v.decode()
        for k, v in raw_headers  # type: ignore[attr-defined]
    }


@pytest.mark.parametrize(
    ("method", "path", "with_key", "status"),
    [
        ("PUT", "/v1/schedules/3e9b3c55-6a0f-4bd4-8d1e-6a2d2a8f0c11", True, 413),
        ("PUT", "/v1/schedules/3e9b3c55-6a0f-4bd4-8d1e-6a2d2a8f0c11", False, 401),
        ("POST", f"{EXT}/connections:connectByCredentials", True, 413),
        ("POST", "/dashboard/signin", False, 413),
        ("POST", "/push/microsoft", False, 413),
    ],
)
def test_a_streamed_body_is_cut_off_at_the_cap(
    api: Api, method: str, path: str, with_key: bool, status: int
) -> None:
    body = Drip(100 * MIB)  # no Content-Length: nothing to refuse up front
    headers = {"content-type": "application/json", **(api.headers() if with_key else {})}
    got, response_headers = asyncio.run(call_asgi(api.client.app, method, path, body, headers))
    assert got == status
    assert response_headers["x-content-type-options"] == "nosniff"
    limit = 0 if status == 401 else body_cap(path) + body.chunk
    assert body.pulled <= limit + body.chunk, body.pulled  # memory stays bounded


def test_a_declared_huge_body_is_refused_before_it_is_read(api: Api) -> None:
    body = Drip(100 * MIB)
    headers = {**api.headers(), "content-length": str(100 * MIB)}
    path = "/v1/schedules/3e9b3c55-6a0f-4bd4-8d1e-6a2d2a8f0c11"
    assert asyncio.run(call_asgi(api.client.app, "PUT", path, body, headers))[0] == 413
    assert body.pulled == 0


def test_no_key_is_refused_in_the_envelope(api: Api) -> None:
    response = api.client.put(f"/v1/schedules/{random_guid()}", json=schedule_body())
    assert_envelope(response, 401, "UNAUTHENTICATED")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert api.client.get("/v1/health").status_code == 200  # open routes stay open


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deeply_nested_json_is_a_400(api: Api, depth: int) -> None:
    raw = b'{"ownerName": ' + b"[" * depth + b"]" * depth + b"}"
    response = api.client.put(
        f"/v1/schedules/{random_guid()}",
        content=raw,
        headers={**api.headers(), "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert "nest" in response.text


def test_a_lone_surrogate_is_a_400_and_stores_nothing(api: Api) -> None:
    schedule_id = random_guid()
    raw = (
        b'{"ownerUserId": "%s", "ownerName": "x\\ud800", "timeZone": "Europe/Berlin"}'
        % random_guid().encode()
    )
    response = api.client.put(
        f"/v1/schedules/{schedule_id}",
        content=raw,
        headers={**api.headers(), "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert "surrogate" in response.text
    assert api.get(f"/v1/schedules/{schedule_id}").status_code == 404


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        ("2026-12-01T00:00:00Z", "9999-12-31T23:59:59Z"),
        ("0001-01-01T00:00:00+01:00", "2026-12-01T00:00:00Z"),
    ],
)
def test_list_events_far_out_of_range_is_a_400(api: Api, start: str, end: str) -> None:
    response = api.get(f"{EXT}/events", params={"from": start, "to": end})
    assert response.status_code == 400, response.text
    assert "between the years" in response.text


def test_a_method_the_path_lacks_says_which_it_has(api: Api) -> None:
    response = api.client.delete("/v1/health")
    assert response.status_code == 405
    assert "GET" in response.headers["allow"]


def test_wrong_keys_are_limited_per_address(make_runtime, fake_provider) -> None:  # type: ignore[no-untyped-def]
    rt: Runtime = make_runtime(adapter_factory=lambda _c: fake_provider, auth_failures_per_minute=5)
    with TestClient(create_app(rt)) as client:
        statuses = [
            client.get(f"{EXT}/providers", headers={"Authorization": f"csk_wrong{i}"}).status_code
            for i in range(8)
        ]
        assert statuses[:5] == [401] * 5
        assert statuses[5:] == [429] * 3
        limited = client.get(f"{EXT}/providers", headers={"Authorization": "csk_other"})
        assert_envelope(limited, 429, "RESOURCE_EXHAUSTED")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        # Health checks and metrics of that address are never blocked (no key to guess).
        assert client.get("/v1/health").status_code == 200
        assert client.get("/openapi.json").status_code == 200


def test_guessed_signin_links_are_limited(make_runtime, fake_provider) -> None:  # type: ignore[no-untyped-def]
    rt: Runtime = make_runtime(adapter_factory=lambda _c: fake_provider, auth_failures_per_minute=3)
    with TestClient(create_app(rt)) as client:
        statuses = [client.get(f"/dashboard/signin/guess{i}").status_code for i in range(5)]
    assert statuses == [410, 410, 410, 429, 429]


def test_a_tenant_over_its_request_rate_gets_429_and_others_do_not(
    make_runtime, fake_provider
) -> None:  # type: ignore[no-untyped-def]
    rt: Runtime = make_runtime(
        adapter_factory=lambda _c: fake_provider, tenant_requests_per_second=2
    )
    busy, calm = new_key(rt, "busy-site"), new_key(rt, "calm-site")
    with TestClient(create_app(rt)) as client:
        statuses = [
            client.get(f"{EXT}/providers", headers={"Authorization": busy}).status_code
            for _ in range(6)
        ]
        limited = client.get(f"{EXT}/providers", headers={"Authorization": busy})
        other = client.get(f"{EXT}/providers", headers={"Authorization": calm})
    assert statuses[:4] == [200] * 4  # a burst of twice the rate
    assert 429 in statuses[4:]
    assert_envelope(limited, 429, "RESOURCE_EXHAUSTED")
    assert "CALSYNC_TENANT_REQUESTS_PER_SECOND" in limited.json()["message"]
    assert int(limited.headers["retry-after"]) >= 1
    assert other.status_code == 200


def test_buckets_refill_and_stay_bounded() -> None:
    buckets = Buckets(capacity=2, per_second=1, max_keys=3)
    assert [buckets.take("a", now=0.0) for _ in range(2)] == [None, None]
    assert buckets.take("a", now=0.0) == pytest.approx(1.0)
    assert buckets.take("a", now=1.0) is None  # refilled one token after a second
    for key in "bcdefg":
        buckets.take(key, now=2.0)
    assert len(buckets._buckets) == 3  # the least recently used keys are forgotten


def test_limits_are_per_address_and_key_prefix() -> None:
    limits = RateLimits(auth_failures_per_minute=2, tenant_requests_per_second=0)

    def scope(address: str, key: str) -> dict[str, object]:
        return {"client": (address, 1), "headers": [(b"authorization", key.encode())]}

    for _ in range(2):
        limits.record_outcome(scope("10.0.0.1", "csk_aaaaaaaaaaaa1"), "/v1/x", 401)
    assert limits.blocked_for(scope("10.0.0.1", "csk_zzz"), "/v1/x") is not None  # the address
    # another address guessing with the same key prefix is blocked too
    assert limits.blocked_for(scope("10.0.0.2", "csk_aaaaaaaaaaaa9"), "/v1/x") is not None
    assert limits.blocked_for(scope("10.0.0.3", "csk_bbb"), "/v1/x") is None
    assert limits.tenant_call("t") is None  # 0: no tenant limit


GOOGLE_TOML = """
[[providers]]
id = "6f1c1f8e-3c1a-4a40-9a49-0f2b2a6f1b01"
kind = "google"
client_id = "client"
client_secret = "secret"
authorize_url = "https://accounts.example.test:8443/o/oauth2/auth"
"""


def test_html_pages_name_only_the_oauth_servers_as_form_targets(
    make_runtime, fake_provider
) -> None:  # type: ignore[no-untyped-def]
    rt: Runtime = make_runtime(adapter_factory=lambda _c: fake_provider, extra_toml=GOOGLE_TOML)
    with TestClient(create_app(rt)) as client:
        pages = [client.get("/dashboard/signin"), client.get("/oauth/callback?state=nope")]
        for page in pages:
            assert page.headers["content-type"].startswith("text/html"), page.text
            policy = page.headers["content-security-policy"]
            assert "form-action 'self' https://accounts.example.test:8443;" in policy
            assert "frame-ancestors 'none'" in policy
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["x-content-type-options"] == "nosniff"
        api_answer = client.get("/v1/health")
        assert "content-security-policy" not in api_answer.headers  # JSON is not a page


def test_an_overlong_url_is_a_414_and_huge_headers_a_431(api: Api) -> None:
    long_url = api.get(f"{EXT}/events", params={"from": "x" * 20_000})
    assert_envelope(long_url, 414, "URI_TOO_LONG")
    many = {f"x-filler-{i}": "a" * 100 for i in range(400)}
    huge = api.client.get("/v1/health", headers=many)
    assert_envelope(huge, 431, "REQUEST_HEADER_FIELDS_TOO_LARGE")
    ids = "&".join(f"scheduleIds={random_guid()}" for _ in range(100))
    allowed = api.get(f"{EXT}/events?{ids}")  # the longest URL a client needs still passes
    assert allowed.status_code != 414


def test_a_deeply_nested_push_body_is_a_400_without_a_key(api: Api) -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    response = api.client.post("/push/microsoft", content=raw)
    assert response.status_code == 400, response.text
