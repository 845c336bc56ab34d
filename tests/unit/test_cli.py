"""The calsync command: migrations, API keys (shown once, stored hashed, revocable), help."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from calsync.crypto import hash_api_key
from calsync.store.db import make_engine, make_session_factory
from calsync.store.models import ApiKey


def run(data_dir: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CALSYNC_DATA_DIR": str(data_dir), "CALSYNC_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "calsync.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_keys_lifecycle(tmp_path: Path, database_url: str) -> None:
    assert run(tmp_path, database_url, "db", "upgrade").returncode == 0
    created = run(tmp_path, database_url, "api-keys", "create", "--tenant", "site-a", "--json")
    assert created.returncode == 0, created.stderr
    info = json.loads(created.stdout)
    assert info["identityType"] == "APP" and info["tenant"] == "site-a"
    assert "CALENDAR.MANAGE_ALL_EXTERNAL_CALENDAR_CONNECTIONS" in info["permissions"]

    user = "0b5c2f7e-5d7b-4c8e-9f61-6a3e4e1b2c3d"
    created_user = run(
        tmp_path,
        database_url,
        "api-keys",
        "create",
        "--tenant",
        "site-a",
        "--user",
        user,
        "--permission",
        "CALENDAR.READ_EXTERNAL_CALENDAR_EVENTS",
        "--json",
    )
    user_info = json.loads(created_user.stdout)
    assert user_info["identityType"] == "USER" and user_info["userId"] == user
    assert user_info["permissions"] == ["CALENDAR.READ_EXTERNAL_CALENDAR_EVENTS"]

    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        rows = session.scalars(select(ApiKey)).all()
        assert {r.key_hash for r in rows} == {
            hash_api_key(info["key"]),
            hash_api_key(user_info["key"]),
        }
        assert all(info["key"] not in (r.key_hash, r.id) for r in rows)
    listed = run(tmp_path, database_url, "api-keys", "list", "--json")
    assert info["key"] not in listed.stdout and user_info["key"] not in listed.stdout
    assert len(listed.stdout.strip().splitlines()) == 2
    table = run(tmp_path, database_url, "api-keys", "list").stdout.splitlines()
    assert table[0].split() == ["id", "tenant", "type", "user", "name", "revoked", "created"]
    assert len(table) == 3 and "None" not in "\n".join(table)  # unnamed, no user: "-"

    assert run(tmp_path, database_url, "api-keys", "revoke", info["id"]).returncode == 0
    with make_session_factory(engine)() as session:
        row = session.get(ApiKey, info["id"])
        assert row is not None and row.revoked_at is not None
    engine.dispose()
    assert run(tmp_path, database_url, "api-keys", "revoke", "nope").returncode == 1


@pytest.mark.parametrize("args", [["--user", "bob"], ["--permission", "CALENDAR.EVERYTHING"]])
def test_create_rejects_bad_options(tmp_path: Path, args: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = run(tmp_path, url, "api-keys", "create", "--tenant", "t", *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def test_help_explains_every_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    top = run(tmp_path, url, "--help")
    assert top.returncode == 0
    for command in ("serve", "db", "api-keys"):
        assert command in top.stdout
    for args in (
        ["serve", "--help"],
        ["db", "upgrade", "--help"],
        ["api-keys", "create", "--help"],
    ):
        result = run(tmp_path, url, *args)
        assert result.returncode == 0 and "Usage" in result.stdout


def test_readme_settings_table_is_generated_from_the_settings_module() -> None:
    from calsync.settings import settings_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert settings_table() in readme


@pytest.mark.parametrize(
    ("public_url", "origins", "refused"),
    [
        ("https://calsync.example.com", None, True),
        ("https://calsync.example.com", '{"*": ["https://app.example.com"]}', False),
        ("https://127.0.0.1:8443", None, False),  # TLS on this machine: a test or a try-out
    ],
)
def test_production_without_redirect_origins_refuses_to_start(
    tmp_path: Path, public_url: str, origins: str | None, refused: bool
) -> None:
    env = {**os.environ, "CALSYNC_DATA_DIR": str(tmp_path), "CALSYNC_PUBLIC_URL": public_url}
    env.pop("CALSYNC_OAUTH_REDIRECT_ORIGINS", None)
    if origins is not None:
        env["CALSYNC_OAUTH_REDIRECT_ORIGINS"] = origins
    # A busy port makes an allowed start fail fast after the check, without serving.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-m", "calsync.cli", "serve", "--port", port, "--no-worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    said = "a public https address" in done.stderr
    assert said is refused, done.stderr
    if refused:
        assert done.returncode == 2
        assert "CALSYNC_OAUTH_REDIRECT_ORIGINS='" in done.stderr  # says what to do


def test_version_and_short_help(tmp_path: Path, database_url: str) -> None:
    from importlib.metadata import version

    printed = run(tmp_path, database_url, "--version")
    assert printed.returncode == 0 and printed.stdout.strip() == f"calsync {version('calsync')}"
    for args in (["-h"], ["serve", "-h"], ["api-keys", "create", "-h"]):
        shown = run(tmp_path, database_url, *args)
        assert shown.returncode == 0 and "Usage:" in shown.stdout, shown.stderr


def test_a_busy_port_is_one_plain_sentence_and_calsync_port_is_read(tmp_path: Path) -> None:
    env = {**os.environ, "CALSYNC_DATA_DIR": str(tmp_path)}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        for args, extra in ((["--port", port], {}), ([], {"CALSYNC_PORT": port})):
            done = subprocess.run(
                [sys.executable, "-m", "calsync.cli", "serve", "--no-worker", *args],
                env={**env, **extra},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 1, done.stderr
            said = done.stderr.strip()
            assert said == (
                f"calsync serve: port {port} on 127.0.0.1 is in use; stop the other program or "
                "choose another port with --port or CALSYNC_PORT (make run PORT=8080)"
            )
            assert "Traceback" not in done.stderr
