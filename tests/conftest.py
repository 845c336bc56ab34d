"""Shared fixtures: databases (SQLite and PostgreSQL), a runtime, an API client, fakes."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from calsync.api.app import create_app
from calsync.providers.registry import ProviderConfig
from calsync.service.access import api_keys
from calsync.service.runtime import Runtime, build_runtime
from calsync.settings import Settings
from calsync.store.db import upgrade
from tests.fakes import FakeProvider

pytest_plugins = ["tests.peers.fixtures"]

POSTGRES_URL = os.environ.get(
    "CALSYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("CALSYNC_REQUIRE_POSTGRES") == "1"
FAKE_PROVIDER_ID = "0f6c7f0e-1111-4222-8333-444455556666"
TENANT = "site-one"


def _postgres_reachable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'calsync.db'}"
        return
    problem = _postgres_reachable()
    if problem:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable: {problem}"
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    base = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}?options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def write_providers(path: Path, entries: list[tuple[str, str, str]]) -> Path:
    """A providers TOML with CalDAV entries (id, name, url)."""
    lines = []
    for provider_id, name, url in entries:
        lines += [
            "[[providers]]",
            f'id = "{provider_id}"',
            f'name = "{name}"',
            'kind = "caldav"',
            'calendar_type = "OTHER"',
            f'url = "{url}"',
            "",
        ]
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def make_runtime(tmp_path: Path, database_url: str) -> Iterator[Callable[..., Runtime]]:
    made: list[Runtime] = []

    def factory(
        providers: list[tuple[str, str, str]] | None = None,
        adapter_factory: Callable[[ProviderConfig], object] | None = None,
        extra_toml: str = "",
        **overrides: object,
    ) -> Runtime:
        entries = providers or [(FAKE_PROVIDER_ID, "Test CalDAV", "http://127.0.0.1:9/")]
        providers_file = write_providers(tmp_path / "providers.toml", entries)
        if extra_toml:
            providers_file.write_text(providers_file.read_text() + "\n" + extra_toml)
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            providers_file=providers_file,
            **overrides,  # type: ignore[arg-type]
        )
        rt = build_runtime(settings, adapter_factory=adapter_factory)  # type: ignore[arg-type]
        upgrade(rt.engine)
        made.append(rt)
        return rt

    yield factory
    for rt in made:
        rt.close()


@pytest.fixture
def fake_provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def runtime(make_runtime: Callable[..., Runtime], fake_provider: FakeProvider) -> Runtime:
    return make_runtime(adapter_factory=lambda _config: fake_provider)


def new_key(rt: Runtime, tenant: str = TENANT, **kwargs: object) -> str:
    with rt.store.transaction() as tx:
        return api_keys.create_key(tx, tenant_id=tenant, **kwargs).key  # type: ignore[arg-type]


class Api:
    """A TestClient bound to one API key; ``ext`` prefixes the External Calendar API path."""

    def __init__(self, client: TestClient, key: str) -> None:
        self.client = client
        self.key = key

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": key or self.key}

    def get(self, path: str, key: str | None = None, **kw: object):  # type: ignore[no-untyped-def]
        return self.client.get(path, headers=self.headers(key), **kw)  # type: ignore[arg-type]

    def post(self, path: str, json: object = None, key: str | None = None):  # type: ignore[no-untyped-def]
        return self.client.post(path, json=json, headers=self.headers(key))

    def patch(self, path: str, json: object = None, key: str | None = None):  # type: ignore[no-untyped-def]
        return self.client.patch(path, json=json, headers=self.headers(key))

    def put(self, path: str, json: object = None, key: str | None = None):  # type: ignore[no-untyped-def]
        return self.client.put(path, json=json, headers=self.headers(key))

    def delete(self, path: str, key: str | None = None):  # type: ignore[no-untyped-def]
        return self.client.delete(path, headers=self.headers(key))


EXT = "/bookings/v2/external-calendars"


@pytest.fixture
def api(runtime: Runtime) -> Iterator[Api]:
    with TestClient(create_app(runtime)) as client:
        yield Api(client, new_key(runtime))


def random_guid() -> str:
    return str(uuid.uuid4())


def random_password() -> str:
    return secrets.token_urlsafe(12)


def settle(rt: Runtime, timeout: float = 30.0) -> int:
    """Wait for the background refreshes that reads started (``service.sync.refresh``);
    returns how many there were."""
    import concurrent.futures

    from calsync.service.sync.refresh import in_flight

    futures = in_flight(rt)
    concurrent.futures.wait(futures, timeout=timeout)
    assert all(f.done() for f in futures), "a background refresh did not finish"
    return len(futures)
