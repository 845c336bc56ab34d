"""The demo's CalDAV server: Radicale as a child process on a loopback port.

Everything lives under ``<data dir>/demo/``: the htpasswd file with the sample account, the
collections, the log, and ``demo.json`` (the account's password, the port and the demo API key,
so a restart finds the same server and the same data).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

DEMO_EMAIL = "demo@calsync.local"
_STARTUP_SECONDS = 20.0
_STOP_SECONDS = 5.0


class DemoUnavailable(RuntimeError):
    """The demo cannot start (Radicale missing or not starting); the message says why."""


@dataclass
class DemoCalDav:
    """A running Radicale with the sample account ``email``/``password``."""

    root: Path
    url: str
    email: str
    password: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self) -> None:
        """Terminate Radicale (kill it if it does not go) and wait for it; idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=_STOP_SECONDS)
        (self.root / "radicale.pid").unlink(missing_ok=True)
        log, self.log = self.log, None
        if log is not None:
            log.close()


def load_state(root: Path) -> dict[str, Any]:
    try:
        state = json.loads((root / "demo.json").read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def save_state(root: Path, state: dict[str, Any]) -> None:
    """Written with mode 0600: it holds the demo account's password and the demo API key."""
    path = root / "demo.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle, indent=2)


def start_radicale(root: Path) -> DemoCalDav:
    """Start Radicale with its storage under ``root``, on the port it had last time if free.

    Raises DemoUnavailable when Radicale is not installed or does not answer.
    """
    if importlib.util.find_spec("radicale") is None:
        raise DemoUnavailable(
            "the demo needs Radicale: pip install 'calsync[demo]' (make run does this)"
        )
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = load_state(root)
    password = str(state.get("password") or secrets.token_urlsafe(16))
    state["password"] = password
    htpasswd = root / "users"
    fd = os.open(htpasswd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{DEMO_EMAIL}:{password}\n")
    ports = [int(state["port"])] if state.get("port") else []
    for attempt in range(5):
        port = ports[attempt] if attempt < len(ports) and _port_free(ports[attempt]) else None
        port = port or _free_port()
        server = _spawn(root, port, htpasswd, password)
        if server is not None:
            state["port"] = port
            save_state(root, state)
            return server
    raise DemoUnavailable(f"Radicale did not start; see {root / 'radicale.log'}")


def _spawn(root: Path, port: int, htpasswd: Path, password: str) -> DemoCalDav | None:
    config = root / "radicale.conf"
    config.write_text(
        "[server]\n"
        f"hosts = 127.0.0.1:{port}\n"
        "[auth]\n"
        "type = htpasswd\n"
        f"htpasswd_filename = {htpasswd}\n"
        "htpasswd_encryption = plain\n"
        "delay = 0\n"
        "[rights]\n"
        "type = owner_only\n"
        "[storage]\n"
        f"filesystem_folder = {root / 'collections'}\n"
        "[web]\n"
        "type = none\n"
        "[logging]\n"
        "level = warning\n"
        "mask_passwords = True\n"
    )
    log = (root / "radicale.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    server = DemoCalDav(
        root=root,
        url=f"http://127.0.0.1:{port}/",
        email=DEMO_EMAIL,
        password=password,
        process=process,
        log=log,
    )
    deadline = time.monotonic() + _STARTUP_SECONDS
    with httpx.Client(timeout=2.0) as client:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                client.request("OPTIONS", server.url)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            (root / "radicale.pid").write_text(f"{process.pid}\n")
            return server
    server.stop()  # exited (e.g. the port was taken meanwhile) or never answered
    return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
