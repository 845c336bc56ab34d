"""A ``calsync serve --no-worker`` subprocess on 127.0.0.1 (one process, or ``processes``
server processes under uvicorn's supervisor), running the working tree's calsync or another
revision's source tree (``src``: the bench's baseline)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and of its living children (the server processes of
    ``serve --processes N``; they live as long as the measurement)."""
    total = process_cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            total += process_cpu_seconds(int(entry.name))
    return total


class Server:
    """``calsync serve --no-worker`` of the working tree, or of the source tree ``src``."""

    def __init__(
        self, env: dict[str, str], log_path: Path, src: Path | None = None, processes: int = 1
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(self.port)]
        if processes > 1:
            args += ["--processes", str(processes)]
        argv = [sys.executable, "-m", "calsync.cli", *args]
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            argv,
            env={**os.environ, **env, "PYTHONPATH": str(src or REPO / "src")},
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=str(log_path.parent),
        )
        self._wait(log_path)

    def _wait(self, log_path: Path) -> None:
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"calsync serve exited:\n{tail}")
            try:
                if httpx.get(self.base_url + "/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("calsync serve did not answer within 60 s")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process(es) so far (Linux /proc)."""
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
