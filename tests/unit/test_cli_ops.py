"""The operator's commands: providers, connections, sync, encryption-key rotation, and help
that explains every command and option."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import LargeBinary, select, update
from typer.testing import CliRunner

from calsync import cli_ops
from calsync.api.app import create_app
from calsync.cli import app
from calsync.crypto import KEY_FILE_NAME, SecretBox
from calsync.domain import ErrorReason
from calsync.providers.registry import GOOGLE_PROVIDER_ID
from calsync.service import runtime as runtime_module
from calsync.service.access import key_rotation
from calsync.service.runtime import Runtime
from calsync.settings import get_settings
from calsync.store import secrets as stored_secrets
from calsync.store.db import transaction
from calsync.store.models import Base, Connection, OAuthAttempt, utcnow
from tests.api.test_external_api import EMAIL, PASSWORD, account, connect, make_schedule
from tests.conftest import EXT, FAKE_PROVIDER_ID, Api, new_key
from tests.fakes import FakeProvider

__all__ = ["account"]  # the fixture, imported so that these tests can use it
runner = CliRunner()


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database_url: str,
    fake_provider: FakeProvider,
    runtime: Runtime,
) -> Iterator[Callable[..., Any]]:
    """Runs ``calsync ARGS`` in-process on the test database (the one ``runtime`` uses, with
    its providers file and key file), with the fake provider."""
    monkeypatch.setenv("CALSYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CALSYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("CALSYNC_PROVIDERS_FILE", str(tmp_path / "providers.toml"))
    monkeypatch.delenv("CALSYNC_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setattr(
        runtime_module, "default_adapter_factory", lambda _settings: lambda _c: fake_provider
    )
    get_settings.cache_clear()

    def invoke(*args: str) -> Any:
        get_settings.cache_clear()
        return runner.invoke(app, list(args))

    yield invoke
    get_settings.cache_clear()


@pytest.fixture
def api(runtime: Runtime) -> Iterator[Api]:
    """The API without a background worker: only the commands under test sync."""
    with TestClient(create_app(runtime, worker=False)) as client:
        yield Api(client, new_key(runtime))


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path under ``command`` (typer vendors click: duck typing, not classes)."""
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_every_command_and_option_explains_itself() -> None:
    root = typer.main.get_command(app)
    paths = list(_commands(root))
    names = {" ".join(p) for p in paths}
    assert {"providers list", "connections list", "sync", "keys rotate", "api-keys create"} <= names
    for path in paths:
        command = root
        for name in path:
            command = command.commands[name]
        assert (command.help or "").strip(), f"calsync {' '.join(path)} has no help"
        for param in command.params:
            if param.name != "help":
                assert (getattr(param, "help", "") or "").strip(), (path, param.name)
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, path


def test_providers_list_shows_connect_methods_and_features(cli: Callable[..., Any]) -> None:
    result = cli("providers", "list")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "KIND", "OFFERED", "CONNECT", "IMPORT", "EXPORT"]
    fake = next(r for r in rows if r.startswith(FAKE_PROVIDER_ID))
    assert fake.split()[-4:] == ["yes", "CREDENTIALS", "SPECIFIC_CALENDARS", "DEDICATED_CALENDAR"]
    google = next(r for r in rows if r.startswith(GOOGLE_PROVIDER_ID))
    assert " no " in google  # no client_id: not offered to API callers

    listed = [json.loads(line) for line in cli("providers", "list", "--json").stdout.splitlines()]
    entry = next(p for p in listed if p["id"] == FAKE_PROVIDER_ID)
    assert entry["name"] == "Test CalDAV" and entry["kind"] == "caldav" and entry["offered"]
    assert entry["connectMethods"] == ["CREDENTIALS"] and entry["export"] == "DEDICATED_CALENDAR"


def test_connections_list_across_tenants(
    cli: Callable[..., Any], api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    first = connect(api, make_schedule(api))["connection"]["id"]
    other = Api(api.client, new_key(runtime, tenant="site-two"))
    second = connect(other, make_schedule(other))["connection"]["id"]
    with transaction(runtime.db) as session:
        session.execute(
            update(Connection)
            .where(Connection.id == second)
            .values(status="ERROR", error_reason=ErrorReason.TOKEN_REVOKED.value)
        )

    result = cli("connections", "list")
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "ID",
        "TENANT",
        "SCHEDULE",
        "PROVIDER",
        "ACCOUNT",
        "STATUS",
        "ERROR",
        "LAST",
        "SYNCED",
    ]
    assert [r.split()[0] for r in rows] == [first, second]
    assert rows[0].split()[1] == "site-one" and "Test CalDAV" in rows[0]
    assert EMAIL in rows[0] and "CONNECTED" in rows[0] and rows[0].endswith("never")
    assert "TOKEN_REVOKED" in rows[1]
    assert PASSWORD not in result.stdout

    only = cli("connections", "list", "--tenant", "site-two", "--json")
    listed = [json.loads(line) for line in only.stdout.splitlines()]
    assert [(c["id"], c["tenant"], c["errorReason"]) for c in listed] == [
        (second, "site-two", "TOKEN_REVOKED")
    ]
    assert listed[0]["externalAccountEmail"] == EMAIL and listed[0]["lastSynced"] is None


def test_sync_one_or_all_and_fail_loudly(
    cli: Callable[..., Any], api: Api, account: FakeProvider
) -> None:
    schedule_id = make_schedule(api)
    first = connect(api, schedule_id)["connection"]["id"]
    account.add_account("grace@example.com", "pw-2")
    body = {"scheduleId": schedule_id, "providerId": FAKE_PROVIDER_ID}
    second_body = {**body, "email": "grace@example.com", "password": "pw-2"}
    second = api.post(f"{EXT}/connections:connectByCredentials", second_body).json()
    second_id = second["connection"]["id"]

    one = cli("sync", first)
    assert one.exit_code == 0, one.output
    assert f"ok {first}" in one.stdout and "synced 1 of 1" in one.stdout
    status = api.get(f"{EXT}/connections/{first}").json()["connection"]["status"]
    assert status == "SYNCED"

    everything = cli("sync", "--all")
    assert everything.exit_code == 0, everything.output
    assert f"ok {first}" in everything.stdout and f"ok {second_id}" in everything.stdout

    account.unreachable = True
    failing = cli("sync", "--all")
    assert failing.exit_code == 1
    assert "synced 0 of 2" in failing.stdout and f"failed {second_id}" in failing.stderr

    assert cli("sync", "no-such-connection").exit_code == 2
    assert cli("sync").exit_code != 0  # neither an id nor --all
    assert cli("sync", first, "--all").exit_code != 0
    assert api.post(f"{EXT}/connections/{first}/disconnect", {}).status_code == 200
    assert cli("sync", first).exit_code == 2


def test_sync_shows_a_progress_bar_on_a_terminal(
    cli: Callable[..., Any], api: Api, account: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection_id = connect(api, make_schedule(api))["connection"]["id"]
    monkeypatch.setattr(cli_ops, "on_terminal", lambda: True)
    result = cli("sync", "--all")
    assert result.exit_code == 0, result.output
    assert "1/1" in result.stdout and "syncing" in result.stdout
    assert f"ok {connection_id}" not in result.stdout  # the bar, not the plain lines


# -- encryption keys ---------------------------------------------------------------------------


def _secrets(rt: Runtime) -> list[bytes]:
    with rt.db() as session:
        stored = list(session.scalars(select(Connection.secret)))
        stored += list(session.scalars(select(OAuthAttempt.code_verifier)))
    return [s for s in stored if s is not None]


def _key_file(tmp_path: Path) -> list[bytes]:
    return [k.encode() for k in (tmp_path / "data" / KEY_FILE_NAME).read_text().split()]


@pytest.fixture
def five_secrets(api: Api, runtime: Runtime, account: FakeProvider) -> list[str]:
    """Four connections' credentials and an OAuth attempt's verifier, as plain text."""
    schedule_id = make_schedule(api)
    connect(api, schedule_id)
    for n in range(3):
        account.add_account(f"user{n}@example.com", f"pw-{n}")
        body = {"scheduleId": schedule_id, "providerId": FAKE_PROVIDER_ID}
        body |= {"email": f"user{n}@example.com", "password": f"pw-{n}"}
        assert api.post(f"{EXT}/connections:connectByCredentials", body).status_code == 200
    with transaction(runtime.db) as session:
        session.add(
            OAuthAttempt(
                state_hash="a" * 64,
                tenant_id="site-one",
                schedule_id=schedule_id,
                provider_id=GOOGLE_PROVIDER_ID,
                redirect_url="https://app.example.com/back",
                code_verifier=runtime.secrets.encrypt("verifier-123"),
                expires_at=utcnow(),
            )
        )
    plain = sorted(runtime.secrets.decrypt(s) for s in _secrets(runtime))
    assert len(plain) == 5
    return plain


def test_rotation_is_resumable_after_a_crash(
    cli: Callable[..., Any],
    runtime: Runtime,
    five_secrets: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [old_key] = _key_file(tmp_path)
    original = key_rotation._rotate_one
    calls = {"n": 0}

    def crash_in_second_batch(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("power cut")
        original(*args, **kwargs)

    monkeypatch.setattr(key_rotation, "_rotate_one", crash_in_second_batch)
    crashed = cli("keys", "rotate", "--generate", "--batch-size", "2")
    assert crashed.exit_code != 0 and isinstance(crashed.exception, RuntimeError)
    new_key, kept_old = _key_file(tmp_path)
    assert kept_old == old_key
    only_new, only_old = SecretBox([new_key]), SecretBox([old_key])
    stored = _secrets(runtime)
    assert sum(only_new.is_current(s) for s in stored) == 2  # the first batch committed
    assert sum(only_old.is_current(s) for s in stored) == 3

    monkeypatch.setattr(key_rotation, "_rotate_one", original)
    resumed = cli("keys", "rotate", "--drop-old", "--batch-size", "2")
    assert resumed.exit_code == 0, resumed.output
    assert "connections.secret: 2 re-encrypted, 2 already under the first key" in resumed.stdout
    assert "oauth_attempts.code_verifier: 1 re-encrypted, 0 already" in resumed.stdout
    assert _key_file(tmp_path) == [new_key]
    assert sorted(only_new.decrypt(s) for s in _secrets(runtime)) == five_secrets
    for secret in five_secrets:
        assert secret not in resumed.stdout

    again = cli("keys", "rotate")
    assert again.exit_code == 0
    assert "0 re-encrypted, 4 already under the first key" in again.stdout


def test_rotation_with_keys_from_the_environment(
    cli: Callable[..., Any],
    runtime: Runtime,
    five_secrets: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [old_key] = _key_file(tmp_path)
    new_key = Fernet.generate_key()
    monkeypatch.setenv("CALSYNC_ENCRYPTION_KEYS", f"{new_key.decode()},{old_key.decode()}")
    refused = cli("keys", "rotate", "--generate")
    assert refused.exit_code == 2 and "CALSYNC_ENCRYPTION_KEYS" in refused.stderr

    counted = cli("keys", "rotate", "--dry-run")
    assert counted.exit_code == 0 and "4 to re-encrypt" in counted.stdout
    assert not any(SecretBox([new_key]).is_current(s) for s in _secrets(runtime))

    done = cli("keys", "rotate", "--batch-size", "3")
    assert done.exit_code == 0, done.output
    assert "old keys can leave the variable" in done.stdout
    assert sorted(SecretBox([new_key]).decrypt(s) for s in _secrets(runtime)) == five_secrets
    assert _key_file(tmp_path) == [old_key]  # the key file is not the source of keys here


def test_secrets_no_key_can_read_are_reported_not_lost(
    cli: Callable[..., Any], runtime: Runtime, five_secrets: list[str], tmp_path: Path
) -> None:
    foreign = Fernet(Fernet.generate_key()).encrypt(b"from another deployment")
    with transaction(runtime.db) as session:
        first = session.scalars(select(Connection).order_by(Connection.id)).first()
        assert first is not None
        first.secret = foreign
    result = cli("keys", "rotate", "--generate", "--drop-old")
    assert result.exit_code == 1
    assert "1 unreadable" in result.stdout and "not complete" in result.stderr
    assert len(_key_file(tmp_path)) == 2  # the old key is kept: it is still needed
    assert foreign in _secrets(runtime)


def test_every_binary_column_is_rotated_or_known_not_to_be_a_secret() -> None:
    rotated = {(s.class_.__tablename__, s.key) for _, s in stored_secrets.ENCRYPTED_COLUMNS}
    binary = {
        (table.name, column.name)
        for table in Base.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    assert binary == rotated
