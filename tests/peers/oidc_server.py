"""Run a real OAuth 2.0 / OpenID Connect authorization server (oidc-provider) on loopback.

``start_oidc_provider(root, clients=..., accounts=...)`` writes ``<root>/oidc-config.json``,
spawns ``node tests/peers/oidc/server.mjs`` on a free 127.0.0.1 port (its stderr goes to
``<root>/server.log``), waits for the JSON line it prints when listening, reads the discovery
document and returns an ``OidcServer``. ``npm ci`` runs in ``tests/peers/oidc`` first when its
``node_modules`` is missing or older than ``package-lock.json``.

Without node/npm the calling test is skipped, or failed when ``CALSYNC_REQUIRE_NODE=1``.

What the server does (details in ``tests/peers/oidc/README.md``):

* authorization code flow only, PKCE required, ``S256`` only; refresh tokens rotate on every use
  (a reused one is ``invalid_grant`` and revokes the grant); revocation (RFC 7009) and
  introspection (RFC 7662) endpoints; opaque access tokens valid at the userinfo endpoint.
* a refresh token is issued when ``offline_access`` is granted (also implied by Google's
  ``access_type=offline``); ``refresh_tokens="always"`` issues one on every code exchange.
* the login page accepts a configured login (any password); an unknown login gets the login page
  again with an error; a login in ``deny_accounts`` ends the request with
  ``error=unauthorized_client`` (``deny_error``) at the redirect_uri; the consent page's Cancel
  link ends it with ``error=access_denied``.
* ``set_token_failure(True)`` makes ``POST /token`` answer HTTP 500 ``{"error": "server_error"}``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import queue
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
import pytest

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
_STARTUP_TIMEOUT = 30.0
_NPM_TIMEOUT = 300.0
REQUIRE_NODE = "CALSYNC_REQUIRE_NODE"

#: The standard OAuth error code a ``deny_accounts`` login ends with (RFC 6749 section 4.1.2.1;
#: what Microsoft's identity platform answers when an account type is not enabled for the app).
UNSUPPORTED_ACCOUNT_ERROR = "unauthorized_client"
#: The code a user's "Cancel" at the login or consent page ends with.
DENIED_ERROR = "access_denied"


def _unavailable(message: str) -> None:
    if os.environ.get(REQUIRE_NODE) == "1":
        pytest.fail(f"{message} ({REQUIRE_NODE}=1)")
    pytest.skip(message)


def account_sub(login: str) -> str:
    """The stable subject identifier the server gives a login (unless a ``sub`` is configured)."""
    return "acct-" + hashlib.sha256(login.encode()).hexdigest()[:20]


def ensure_node_modules() -> None:
    """``npm ci`` in tests/peers/oidc when node_modules is missing or stale (under a file lock)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None:
        _unavailable("node is not installed: the oidc-provider authorization server cannot run")
    lock_path = Path(tempfile.gettempdir()) / "calsync-oidc-npm-ci.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _node_modules_stale():
            return
        if npm is None:
            _unavailable(f"npm is not installed and {OIDC_DIR / 'node_modules'} is missing")
        result = subprocess.run(
            [str(npm), "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=OIDC_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            # A broken install is a real failure, not a missing tool.
            pytest.fail(f"npm ci in {OIDC_DIR} failed:\n{result.stdout}\n{result.stderr}")


def _node_modules_stale() -> bool:
    marker = OIDC_DIR / "node_modules" / ".package-lock.json"
    if not (OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        return True
    if not marker.is_file():
        return True
    return marker.stat().st_mtime < (OIDC_DIR / "package-lock.json").stat().st_mtime


@dataclass
class OidcServer:
    issuer: str
    port: int
    discovery: dict[str, Any]
    root: Path
    introspection_client: tuple[str, str]
    config: dict[str, Any] = field(repr=False)
    _process: subprocess.Popen[str] | None = field(repr=False, default=None)
    _log: IO[str] | None = field(repr=False, default=None)

    # --- endpoints, from the discovery document ---------------------------------------------

    @property
    def authorize_url(self) -> str:
        return str(self.discovery["authorization_endpoint"])

    @property
    def token_url(self) -> str:
        return str(self.discovery["token_endpoint"])

    @property
    def revoke_url(self) -> str:
        return str(self.discovery["revocation_endpoint"])

    @property
    def introspection_url(self) -> str:
        return str(self.discovery["introspection_endpoint"])

    @property
    def userinfo_url(self) -> str:
        return str(self.discovery["userinfo_endpoint"])

    @property
    def jwks_url(self) -> str:
        return str(self.discovery["jwks_uri"])

    # --- test controls ------------------------------------------------------------------------

    def introspect(
        self, token: str, *, token_type_hint: str | None = None
    ) -> dict[str, Any] | None:
        """RFC 7662 introspection: the answer when the token is active, else None."""
        form = {"token": token}
        if token_type_hint:
            form["token_type_hint"] = token_type_hint
        response = httpx.post(
            self.introspection_url, data=form, auth=self.introspection_client, timeout=10.0
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer if answer.get("active") is True else None

    def set_token_failure(self, on: bool, *, status: int = 500) -> None:
        """While on, ``POST /token`` answers ``status`` with ``{"error": "server_error"}``."""
        response = httpx.post(
            f"{self.issuer}/__admin/token-failure",
            json={"on": on, "status": status},
            timeout=10.0,
        )
        response.raise_for_status()

    # --- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process is not None and process.stdout is not None:
            process.stdout.close()
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def log_text(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> OidcServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _account_entry(login: str, value: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(value, Mapping):
        entry = dict(value)
        entry.setdefault("sub", account_sub(login))
        return entry
    return {"sub": account_sub(login), "email": value, "email_verified": True}


def start_oidc_provider(
    root: Path,
    *,
    clients: list[dict[str, Any]],
    accounts: Mapping[str, str | Mapping[str, Any] | None],
    access_token_ttl: int = 3600,
    refresh_token_ttl: int = 14 * 24 * 3600,
    id_token_ttl: int = 3600,
    rotate_refresh_token: bool = True,
    refresh_tokens: str = "offline_access",
    scopes: Iterable[str] = (),
    deny_accounts: Iterable[str] = (),
    deny_error: str = UNSUPPORTED_ACCOUNT_ERROR,
    token_failure: bool = False,
) -> OidcServer:
    """Start the authorization server; ``.stop()`` it (or use it as a context manager).

    ``clients``: oidc-provider client metadata; ``client_id``, ``client_secret`` and
    ``redirect_uris`` are needed; ``grant_types`` defaults to authorization_code + refresh_token,
    ``token_endpoint_auth_method`` to client_secret_basic (client_secret_post is the other value
    allowed; oidc-provider accepts either method from such a client whichever is registered).
    ``accounts``: login -> e-mail (None: an account without
    an e-mail claim), or login -> ``{"sub", "email", "email_verified"}``. ``scopes``: accepted
    beyond the built-in list (openid, offline_access, email, profile, Google's calendar scopes,
    Calendars.Read/ReadWrite, User.Read).
    """
    ensure_node_modules()
    root.mkdir(parents=True, exist_ok=True)
    introspector = ("harness-introspector", secrets.token_urlsafe(24))
    config: dict[str, Any] = {
        "clients": [dict(client) for client in clients],
        "accounts": {login: _account_entry(login, value) for login, value in accounts.items()},
        "access_token_ttl": access_token_ttl,
        "refresh_token_ttl": refresh_token_ttl,
        "id_token_ttl": id_token_ttl,
        "rotate_refresh_token": rotate_refresh_token,
        "refresh_tokens": refresh_tokens,
        "scopes": list(scopes),
        "deny_accounts": list(deny_accounts),
        "deny_error": deny_error,
        "token_failure": token_failure,
        "introspection_client": {"client_id": introspector[0], "client_secret": introspector[1]},
    }
    config_path = root / "oidc-config.json"
    config_path.write_text(json.dumps(config, indent=2))
    node = shutil.which("node")
    assert node is not None  # ensure_node_modules skipped otherwise
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [node, str(OIDC_DIR / "server.mjs")],
        cwd=OIDC_DIR,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "OIDC_CONFIG": str(config_path), "PORT": "0"},
    )
    server = OidcServer(
        issuer="",
        port=0,
        discovery={},
        root=root,
        introspection_client=introspector,
        config=config,
        _process=process,
        _log=log,
    )
    try:
        announced = _wait_for_announcement(process, server)
        server.issuer, server.port = str(announced["issuer"]), int(announced["port"])
        response = httpx.get(f"{server.issuer}/.well-known/openid-configuration", timeout=10.0)
        response.raise_for_status()
        server.discovery = response.json()
        return server
    except BaseException:
        server.stop()
        raise


def _wait_for_announcement(process: subprocess.Popen[str], server: OidcServer) -> dict[str, Any]:
    """The ``{"issuer", "port"}`` line from stdout (read on a thread, so the wait can time out)."""
    lines: queue.Queue[str | None] = queue.Queue()
    stdout = process.stdout
    assert stdout is not None

    def pump() -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in stdout:
                lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True, name="oidc-provider-stdout").start()
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"oidc-provider did not start in time:\n{server.log_text()[-4000:]}")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            process.wait(timeout=5)
            raise RuntimeError(
                f"oidc-provider exited ({process.returncode}):\n{server.log_text()[-4000:]}"
            )
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "issuer" in value and "port" in value:
            return value
