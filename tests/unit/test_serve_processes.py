"""`calsync serve --processes N`: several server processes on one port and one database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from calsync.api.processes import HandedServer, listening_socket
from tests.peers.tls import write_self_signed_cert
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
            if httpx.get(f"{base}/v1/health", timeout=2, verify=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


def test_two_processes_share_the_port_and_the_database(tmp_path: Path, database_url: str) -> None:
    with _two_processes(tmp_path, database_url) as serving:
        base, process = serving.base, serving.process
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
            for _ in range(20):  # until both have answered
                for read in pool.map(lambda _: _read(base, headers), range(16)):
                    assert read.status_code == 200 and read.json()["schedule"]["ownerName"] == "Ada"
                answered = _access_log_pids(serving.log)
                if answered == servers:
                    break
        assert answered == servers  # both processes served, from the one database
    assert _children(process.pid) == []


def _read(base: str, headers: dict[str, str]) -> httpx.Response:
    # A new TCP connection per request, so either process may accept it.
    return httpx.get(f"{base}/v1/schedules/{SCHEDULE}", headers=headers)


def _access_log_pids(log: Path) -> set[int]:
    return {entry["pid"] for entry in _log_entries(log) if entry.get("logger") == "calsync.access"}


def _log_entries(log: Path) -> list[dict[str, Any]]:
    """The JSON lines written so far (a line a process is still writing is left out)."""
    entries = []
    for line in log.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


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


@dataclass
class Serving:
    port: int
    base: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def _two_processes(tmp_path: Path, database_url: str, *options: str) -> Iterator[Serving]:
    """``calsync serve --no-worker --processes 2`` answering on a free port; SIGTERM at the end
    must stop it cleanly. With ``--ssl-certfile`` among ``options``, over https."""
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "CALSYNC_DATA_DIR": str(tmp_path), "CALSYNC_DATABASE_URL": database_url}
    argv = [sys.executable, "-m", "calsync.cli", "serve", "--no-worker", "--processes", "2"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*argv, "--port", str(port), *options], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    scheme = "https" if "--ssl-certfile" in options else "http"
    base = f"{scheme}://127.0.0.1:{port}"
    try:
        _wait_healthy(base, process, log)
        yield Serving(port, base, process, log)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def _four_at_once(port: int, path: str, status: int) -> None:
    """Open four connections, then send one GET of ``path`` on each: dealt in turn, two go to
    each of two processes."""
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    for connection in connections:  # all four open before the first request
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    for connection in connections:
        assert connection.recv(65536).startswith(f"HTTP/1.1 {status}".encode())
        connection.close()


def test_keep_alive_connections_are_dealt_to_the_processes_in_turn(
    tmp_path: Path, database_url: str
) -> None:
    """Four connections opened together go two and two. With one shared listening socket
    (uvicorn's own --workers) the first process to wake took all four, and the second core
    idled."""
    with _two_processes(tmp_path, database_url) as serving:
        _four_at_once(serving.port, "/dealt", 404)
        deadline = time.monotonic() + 10
        while True:  # a process writes its access line after it has answered
            pids = [e["pid"] for e in _log_entries(serving.log) if e.get("path") == "/dealt"]
            if len(pids) == 4 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert sorted(pids.count(pid) for pid in set(pids)) == [2, 2]


def test_the_processes_serve_tls(tmp_path: Path, database_url: str) -> None:
    """The parent hands over plain sockets; each process does the TLS handshake itself."""
    cert, key = write_self_signed_cert(tmp_path)
    options = ("--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    with _two_processes(tmp_path, database_url, *options) as serving:
        context = ssl.create_default_context(cafile=str(cert))
        for _ in range(4):  # one new connection each: both processes answer
            answer = httpx.get(f"{serving.base}/v1/health", verify=context)
            assert answer.status_code == 200 and answer.json()["status"] == "ok"
        with pytest.raises(httpx.TransportError):  # no plain http on that port
            httpx.get(serving.base.replace("https://", "http://") + "/v1/health", timeout=5)
        assert len(_access_log_pids(serving.log)) == 2


def test_metrics_of_any_process_add_up_all_of_them(tmp_path: Path, database_url: str) -> None:
    """A scrape lands on one process (connections are dealt in turn), yet counts the requests
    every process served, and reports each scrape-time gauge once."""
    with _two_processes(tmp_path, database_url) as serving:
        before = _health_requests(httpx.get(f"{serving.base}/metrics").text)
        _four_at_once(serving.port, "/v1/health", 200)
        deadline = time.monotonic() + 10
        while True:  # a process counts a request as its response ends
            text = httpx.get(f"{serving.base}/metrics").text
            if _health_requests(text) - before >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert _health_requests(text) - before == 4
        database_up = [line for line in text.splitlines() if line.startswith("calsync_database_up")]
        assert database_up == ["calsync_database_up 1.0"]


def _health_requests(metrics_text: str) -> float:
    prefix = 'calsync_http_requests_total{method="GET",route="/v1/health",status="200"} '
    for line in metrics_text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def test_a_server_process_that_dies_is_replaced(tmp_path: Path, database_url: str) -> None:
    with _two_processes(tmp_path, database_url) as serving:
        process, log = serving.process, serving.log
        first = set(_children(process.pid)) - set(_multiprocessing_helpers(process.pid))
        assert len(first) == 2
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:  # every request is answered meanwhile, by the survivor or the newcomer
            assert httpx.get(f"{serving.base}/v1/health", timeout=10).status_code == 200
            now = set(_children(process.pid)) - set(_multiprocessing_helpers(process.pid))
            if len(now) == 2 and victim not in now:
                break
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        assert f"server process {victim} exited" in log.read_text()
    assert _children(process.pid) == []


def test_a_handed_connection_is_served_with_tcp_nodelay() -> None:
    """The parent accepts, the server process serves: the connection arrives as a descriptor
    and gets TCP_NODELAY (without it every response waited ~40 ms: Nagle's algorithm against
    the client's delayed ACK). Closing the channel, as a parent that dies does, stops it."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    listener = listening_socket("127.0.0.1", 0)
    listener.setblocking(True)
    nodelay: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            assert (await receive())["type"] == "lifespan.shutdown"
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = [(b"content-length", b"6")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"served"})

    server = HandedServer(uvicorn.Config(app, log_config=None, lifespan="on"), theirs)

    async def scenario() -> bytes:
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        accepted, _ = await asyncio.get_running_loop().sock_accept(listener)
        socket.send_fds(ours, [b"c"], [accepted.fileno()])
        accepted.close()
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await reader.read(65536)
        for connection in server.server_state.connections:
            sock = connection.transport.get_extra_info("socket")  # type: ignore[attr-defined]
            nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()
        ours.close()  # the parent is gone
        await asyncio.wait_for(serving, timeout=30)
        return answer

    listener.setblocking(False)
    answer = asyncio.run(scenario())
    listener.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"served")
    assert nodelay and all(nodelay)
