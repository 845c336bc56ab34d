"""Closed-loop load: ``concurrency`` threads share one keep-alive httpx client, each sends its
next request as soon as the previous answer arrived; latency per request, wall time per block."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx


@dataclass
class Samples:
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    server_cpu_s: float = 0.0  # CPU time the server process used during these requests
    db_cpu_s: float = 0.0  # CPU time of the server's PostgreSQL backends (0 on SQLite)
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)

    def add(self, other: Samples) -> None:
        self.latencies_ms += other.latencies_ms
        self.wall_s += other.wall_s
        self.server_cpu_s += other.server_cpu_s
        self.db_cpu_s += other.db_cpu_s
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
        }


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def client(base_url: str, concurrency: int, headers: dict[str, str]) -> httpx.Client:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.Client(base_url=base_url, headers=headers, limits=limits, timeout=60.0)


def run_block(
    http: httpx.Client,
    urls: Sequence[str],
    concurrency: int,
    check: Callable[[httpx.Response], str | None] | None = None,
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
            response = http.get(urls[index])
            local.append((time.perf_counter() - started) * 1000)
            problem = check(response) if check else None
            if problem is None and response.status_code != 200:
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
            if problem:
                with lock:
                    samples.errors += 1
                    if len(samples.error_examples) < 3:
                        samples.error_examples.append(problem)
        with lock:
            samples.latencies_ms.extend(local)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    samples.wall_s = time.perf_counter() - started
    return samples


def interleaved(
    http: httpx.Client,
    series: dict[str, Sequence[str]],
    concurrency: int,
    blocks: int,
    checks: dict[str, Callable[[httpx.Response], str | None]] | None = None,
    cpu_probe: Callable[[], tuple[float, float]] | None = None,
) -> dict[str, Samples]:
    """Each series split into ``blocks`` parts, run A1 B1 A2 B2 ... so drift hits all alike.
    ``cpu_probe`` returns cumulative CPU seconds (server process, its database backends),
    read around each block."""
    out = {name: Samples() for name in series}
    for b in range(blocks):
        for name, urls in series.items():
            n = len(urls)
            part = urls[b * n // blocks : (b + 1) * n // blocks]
            before = cpu_probe() if cpu_probe else (0.0, 0.0)
            samples = run_block(http, part, concurrency, (checks or {}).get(name))
            after = cpu_probe() if cpu_probe else (0.0, 0.0)
            samples.server_cpu_s, samples.db_cpu_s = after[0] - before[0], after[1] - before[1]
            out[name].add(samples)
    return out
