"""Rate limits held in this process: token buckets keyed by client address, key prefix or
tenant, in a bounded table (the least recently used keys are forgotten first), so a flood of
distinct keys cannot grow memory.

Each server process limits on its own (``calsync serve --processes N`` allows N times the
rate); that bounds guessing, which is what these limits are for.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import Scope

MAX_KEYS = 10_000
# Failures that count against the address that caused them, by route family.
SIGNIN_PATHS = ("/dashboard/signin",)
# Never blocked: what load balancers and monitoring ask, with no key to guess.
UNBLOCKED_PATHS = frozenset({"/v1/health", "/metrics", "/openapi.json"})
API_MISSES = frozenset({401})  # an unknown or revoked key
SIGNIN_MISSES = frozenset({401, 410})  # a refused key, an unknown or used sign-in link
KEY_PREFIX_CHARS = 12


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class Buckets:
    """``capacity`` tokens, refilled at ``per_second``; thread-safe."""

    def __init__(self, *, capacity: float, per_second: float, max_keys: int = MAX_KEYS) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self.capacity, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            refill = (now - bucket.stamp) * self.per_second
            bucket.tokens = min(self.capacity, bucket.tokens + refill)
            bucket.stamp = now
        return bucket

    def take(self, key: str, now: float | None = None) -> float | None:
        """Take a token: None when there was one, else the seconds until there is."""
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._bucket(key, now)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return None
            return (1 - bucket.tokens) / self.per_second

    def empty_for(self, key: str, now: float | None = None) -> float | None:
        """Seconds until ``key`` has a token again, or None if it has one (takes nothing)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if key not in self._buckets:
                return None
            bucket = self._bucket(key, now)
            return None if bucket.tokens >= 1 else (1 - bucket.tokens) / self.per_second


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def key_prefix(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            token = bytes(value).decode("latin-1").strip()
            if token.lower().startswith("bearer "):
                token = token[7:].strip()
            return token[:KEY_PREFIX_CHARS] or None
    return None


class RateLimits:
    """The limits of one process (see ``Settings``: ``auth_failures_per_minute``,
    ``tenant_requests_per_second``)."""

    def __init__(self, *, auth_failures_per_minute: int, tenant_requests_per_second: float):
        per_second = auth_failures_per_minute / 60
        self.failures = Buckets(capacity=auth_failures_per_minute, per_second=per_second)
        self.tenants = Buckets(
            capacity=max(1.0, tenant_requests_per_second * 2),
            per_second=tenant_requests_per_second,
        )
        self.enabled = auth_failures_per_minute > 0
        self.tenants_enabled = tenant_requests_per_second > 0

    def _keys(self, scope: Scope, path: str) -> list[str]:
        keys = [f"addr:{client_address(scope)}"]
        prefix = key_prefix(scope)
        if prefix is not None and not path.startswith(SIGNIN_PATHS):
            keys.append(f"key:{prefix}")
        return keys

    def blocked_for(self, scope: Scope, path: str) -> float | None:
        """Seconds this request must wait, if its address or key prefix used up its failures."""
        if not self.enabled or path in UNBLOCKED_PATHS:
            return None
        waits = [self.failures.empty_for(k) for k in self._keys(scope, path)]
        blocked = [w for w in waits if w is not None]
        return max(blocked) if blocked else None

    def record_outcome(self, scope: Scope, path: str, status: int) -> None:
        """A refused key, sign-in or sign-in link costs its address (and key prefix) a token."""
        counted = SIGNIN_MISSES if path.startswith(SIGNIN_PATHS) else API_MISSES
        if self.enabled and status in counted:
            for key in self._keys(scope, path):
                self.failures.take(key)

    def tenant_call(self, tenant_id: str) -> float | None:
        """Take one of the tenant's request tokens: None, or the seconds to wait (429)."""
        if not self.tenants_enabled:
            return None
        return self.tenants.take(f"tenant:{tenant_id}")
