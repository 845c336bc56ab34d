"""Closed-loop load: ``concurrency`` requests in flight, each sent as soon as the previous answer
arrived; latency per request, wall time and client CPU per block. Two clients: ``LeanClient``
(asyncio, raw HTTP/1.1, the default) and ``HttpxClient`` (threads sharing one keep-alive httpx
client, what the first three rounds used)."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx


@dataclass
class Samples:
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    server_cpu_s: float = 0.0  # CPU time the server process used during these requests
    db_cpu_s: float = 0.0  # CPU time of the server's PostgreSQL backends (0 on SQLite)
    client_cpu_s: float = 0.0  # CPU time the load client (this process) used
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)

    def note(self, reply: Any, check: Callable[[Any], str | None] | None) -> None:
        """Count ``reply`` as an error if ``check`` finds a problem or it is not a 200."""
        problem = check(reply) if check else None
        if problem is None and reply.status_code != 200:
            problem = f"HTTP {reply.status_code}: {reply.text[:200]}"
        if problem:
            self.errors += 1
            if len(self.error_examples) < 3:
                self.error_examples.append(problem)

    def add(self, other: Samples) -> None:
        self.latencies_ms += other.latencies_ms
        self.wall_s += other.wall_s
        self.server_cpu_s += other.server_cpu_s
        self.db_cpu_s += other.db_cpu_s
        self.client_cpu_s += other.client_cpu_s
        self.errors += other.errors
        self.error_examples = (self.error_examples + other.error_examples)[:3]

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    def summary(self) -> dict[str, float | int]:
        lat = sorted(self.latencies_ms)
        return {
            "requests": self.count,
            "errors": self.errors,
            "p50_ms": round(percentile(lat, 50), 2),
            "p90_ms": round(percentile(lat, 90), 2),
            "p99_ms": round(percentile(lat, 99), 2),
            "mean_ms": round(statistics.fmean(lat), 2) if lat else 0.0,
            "rps": round(self.count / self.wall_s, 1) if self.wall_s else 0.0,
            "server_cpu_ms_per_req": (
                round(self.server_cpu_s * 1000 / self.count, 3) if self.count else 0.0
            ),
            "db_cpu_ms_per_req": round(self.db_cpu_s * 1000 / self.count, 3) if self.count else 0.0,
            "client_cpu_ms_per_req": (
                round(self.client_cpu_s * 1000 / self.count, 3) if self.count else 0.0
            ),
        }


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


class HttpxClient:
    """``concurrency`` threads share one keep-alive ``httpx.Client``; each sends its next request
    as soon as the previous answer arrived. Its latencies include the other threads' turns on
    the GIL, and it spends about a core of the 2 on its own work."""

    def __init__(self, base_url: str, concurrency: int, headers: dict[str, str]) -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.http = httpx.Client(base_url=base_url, headers=headers, limits=limits, timeout=60.0)

    def get(self, url: str) -> httpx.Response:
        return self.http.get(url)

    def run_block(
        self, urls: Sequence[str], concurrency: int, check: Callable[[Any], str | None] | None
    ) -> Samples:
        """Send every url once with ``concurrency`` requests in flight."""
        samples = Samples()
        lock = threading.Lock()
        position = iter(range(len(urls)))

        def worker() -> None:
            local: list[float] = []
            while True:
                with lock:
                    index = next(position, None)
                if index is None:
                    break
                started = time.perf_counter()
                response = self.http.get(urls[index])
                local.append((time.perf_counter() - started) * 1000)
                with lock:
                    samples.note(response, check)
            with lock:
                samples.latencies_ms.extend(local)

        cpu = time.process_time()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for future in [pool.submit(worker) for _ in range(concurrency)]:
                future.result()
        samples.wall_s = time.perf_counter() - started
        samples.client_cpu_s = time.process_time() - cpu
        return samples

    def close(self) -> None:
        self.http.close()


class Reply:
    """What a check reads of an answer (the part of ``httpx.Response`` the checks use)."""

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class LeanClient:
    """A closed-loop HTTP/1.1 load client on one asyncio loop: ``concurrency`` keep-alive
    connections, requests encoded once, answers read by ``Content-Length`` (or chunked).

    It costs the 2-core machine a fraction of what the threaded httpx client costs (its CPU per
    request is reported as ``client_cpu_ms_per_req``), and a request's latency does not include
    other client threads waiting for the GIL. Every block opens its connections before its
    clock starts (the server closes keep-alive connections idle for 5 s, as while other
    servers are measured)."""

    def __init__(self, base_url: str, concurrency: int, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.loop = asyncio.new_event_loop()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def request_bytes(self, url: str) -> bytes:
        return (
            f"GET {url} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.headers}\r\n"
        ).encode()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await reader.readexactly(max(length, 0))
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                return status, bytes(body[:-2])
            del body[-2:]

    def get(self, url: str) -> Reply:
        return self.loop.run_until_complete(self._get(self.request_bytes(url)))

    async def _get(self, request: bytes) -> Reply:
        self._close_idle()
        reader, writer = await self._connect()
        writer.write(request)
        status, body = await self._read(reader)
        self.idle.append((reader, writer))
        return Reply(status, body)

    def run_block(
        self, urls: Sequence[str], concurrency: int, check: Callable[[Any], str | None] | None
    ) -> Samples:
        return self.loop.run_until_complete(self._block(urls, concurrency, check))

    async def _block(
        self, urls: Sequence[str], concurrency: int, check: Callable[[Any], str | None] | None
    ) -> Samples:
        samples = Samples()
        requests = [self.request_bytes(u) for u in urls]
        position = iter(range(len(requests)))
        self._close_idle()
        fresh = [await self._connect() for _ in range(concurrency)]

        async def worker() -> None:
            reader, writer = fresh.pop()
            clock = time.perf_counter
            for index in position:
                started = clock()
                writer.write(requests[index])
                status, body = await self._read(reader)
                samples.latencies_ms.append((clock() - started) * 1000)
                samples.note(Reply(status, body), check)
            self.idle.append((reader, writer))

        cpu = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        samples.wall_s = time.perf_counter() - started
        samples.client_cpu_s = time.process_time() - cpu
        return samples

    def _close_idle(self) -> None:
        for _reader, writer in self.idle:
            writer.close()
        self.idle.clear()

    def close(self) -> None:
        self._close_idle()
        self.loop.run_until_complete(asyncio.sleep(0))  # let the transports close
        self.loop.close()


Client = LeanClient | HttpxClient
CLIENTS: dict[str, type[LeanClient] | type[HttpxClient]] = {
    "lean": LeanClient,
    "httpx": HttpxClient,
}
