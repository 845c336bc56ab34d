"""`calsync serve --processes N`: several server processes on one port and one database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from calsync.api.factory import FACTORY, _TcpConfig
from tests.unit.test_cli import run

SCHEDULE = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


def test_two_processes_share_the_port_and_the_database(tmp_path: Path, database_url: str) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "CALSYNC_DATA_DIR": str(tmp_path), "CALSYNC_DATABASE_URL": database_url}
    argv = [sys.executable, "-m", "calsync.cli", "serve", "--processes", "2", "--no-worker"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*argv, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, process, log)
        key = json.loads(
            run(tmp_path, database_url, "api-keys", "create", "--tenant", "t", "--json").stdout
        )["key"]
        headers = {"Authorization": key}
        created = httpx.put(
            f"{base}/v1/schedules/{SCHEDULE}", json={"ownerName": "Ada"}, headers=headers
        )
        assert created.status_code == 200, created.text
        servers = set(_children(process.pid)) - set(_multiprocessing_helpers(process.pid))
        assert len(servers) == 2
        answered: set[int] = set()
        with ThreadPoolExecutor(8) as pool:
            for _ in range(20):  # until both have answered (the kernel picks the acceptor)
                for read in pool.map(lambda _: _read(base, headers), range(16)):
                    assert read.status_code == 200 and read.json()["schedule"]["ownerName"] == "Ada"
                answered = _access_log_pids(log)
                if answered == servers:
                    break
        assert answered == servers  # both processes served, from the one database
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert _children(process.pid) == []


def _read(base: str, headers: dict[str, str]) -> httpx.Response:
    # A new TCP connection per request, so either process may accept it.
    return httpx.get(f"{base}/v1/schedules/{SCHEDULE}", headers=headers)


def _access_log_pids(log: Path) -> set[int]:
    return {
        entry["pid"]
        for entry in map(json.loads, filter(None, log.read_text().splitlines()))
        if entry.get("logger") == "calsync.access"
    }


def _multiprocessing_helpers(pid: int) -> list[int]:
    helpers = []
    for child in _children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" in command:
            helpers.append(child)
    return helpers


def test_demo_serves_one_process(tmp_path: Path) -> None:
    result = run(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", "serve", "--demo", "--processes", "2")
    assert result.returncode == 2
    assert "--demo serves one process" in result.stderr


def test_connections_accepted_by_the_processes_have_tcp_nodelay() -> None:
    """Without TCP_NODELAY every response waited ~40 ms (Nagle against delayed ACKs): asyncio
    sets it only on connections accepted from a socket labelled TCP, which uvicorn's own
    multi-process socket was not."""
    config = _TcpConfig(FACTORY, factory=True, host="127.0.0.1", port=0)
    listening = config.bind_socket()
    nodelay: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one() -> None:
        server = await asyncio.get_running_loop().create_server(Probe, sock=listening)
        async with server:
            port = listening.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(100):
                if nodelay:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(accept_one())
    assert nodelay and nodelay[0] != 0
