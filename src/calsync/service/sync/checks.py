"""Change detection: keep every connection fresh without anyone reading it.

Every ``CALSYNC_CHECK_INTERVAL_SECONDS`` (30 by default, jittered so many connections never
fire in one second) a connection whose provider has a cheap change check (CalDAV, iCloud: one
Depth 1 PROPFIND of the calendar home, ``providers.caldav.changes``) is asked whether anything
moved. Nothing: the store is fresh up to the moment the check asked (``fresh_as_of``), and no
sync runs. Something: the connection is due at once and the worker syncs it. A connection
whose every calendar has a live push channel (Google, Microsoft) is fresh until a notification
says otherwise; its safety re-read stays at the poll interval.

Failures back off per connection (doubling up to the poll interval); a server's
``Retry-After`` holds every check of that provider until it has passed. Checks run in a pool
of their own, so a hanging server never delays a sync.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from calsync.providers.base import AuthRejected, ChangeCheck, ProviderError, RateLimitedByProvider
from calsync.providers.registry import ProviderConfig
from calsync.service.connections.accounts import with_account
from calsync.service.runtime import Runtime
from calsync.store import checks as stored
from calsync.store import connections as stored_connections
from calsync.store.connections import mark_notified
from calsync.tz import utcnow

log = logging.getLogger(__name__)


# Checks claimed per check thread at most (each takes a round trip to its server).
QUEUED_PER_THREAD = 25
# How often the push-fed connections' freshness is brought forward.
PUSH_FRESHNESS_EVERY_SECONDS = 5.0


def adapter_feature(rt: Runtime, provider: ProviderConfig, name: str) -> Any:
    """The provider's adapter's ``change_check`` or ``push``: None when it has none or cannot
    be built here (a provider left unconfigured, whose connections the sync reports on)."""
    try:
        return getattr(rt.providers.adapter(provider), name, None)
    except Exception as exc:  # any failure to build it means: no such feature here
        log.info(
            "provider has no adapter here",
            extra={"provider_id": provider.id, "reason": str(exc)[:200]},
        )
        return None


class ChangeChecker:
    """Runs due change checks on its own threads; ``run_once`` is called by the worker's tick."""

    def __init__(self, rt: Runtime, threads: int = 16) -> None:
        self.rt = rt
        self.threads = max(1, threads)
        self._pool = ThreadPoolExecutor(
            max_workers=self.threads, thread_name_prefix="calsync-check"
        )
        self._guard = threading.Lock()
        self._in_flight = 0
        self._done: list[stored.CheckResult] = []
        self._failures: dict[str, int] = {}  # connection id -> consecutive failed checks
        self._held_until: dict[str, float] = {}  # provider id -> monotonic time (Retry-After)
        self._push_marked_at = 0.0
        self._features: dict[tuple[str, str], Any] = {}

    @property
    def interval(self) -> float:
        return self.rt.settings.check_interval_seconds

    def run_once(self) -> int:
        """Record finished checks, freshen push-fed connections, start the due checks."""
        self.flush()
        if self.interval <= 0:
            return 0
        now = utcnow()
        self._mark_push_fresh(now)
        checks = self._checks()
        with self._guard:
            # Claimed checks queue on the threads: enough for a whole tick of them (a tick is a
            # second in the worker), fewer than can wait out their hold.
            free = self.threads * QUEUED_PER_THREAD - self._in_flight
        hold = timedelta(seconds=max(self.interval, 3 * self.rt.settings.provider_timeout_seconds))
        with self.rt.store.transaction() as tx:
            claimed = stored.claim_checks(
                tx, provider_ids=checks.keys(), now=now, hold_until=now + hold, limit=free
            )
        for connection_id, provider_id in claimed:
            with self._guard:
                self._in_flight += 1
            self._pool.submit(self._check, connection_id, provider_id, checks[provider_id])
        return len(claimed)

    def flush(self) -> None:
        with self._guard:
            done, self._done = self._done, []
        if done:
            with self.rt.store.transaction() as tx:
                stored.finish_checks(tx, done)

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.flush()

    def _checks(self) -> dict[str, ChangeCheck]:
        """Provider id -> its change check, for providers not held by a Retry-After."""
        now = time.monotonic()
        out: dict[str, ChangeCheck] = {}
        for provider in self.rt.providers.all():
            check = self._feature(provider, "change_check")
            if check is not None and self._held_until.get(provider.id, 0.0) <= now:
                out[provider.id] = check
        return out

    def _feature(self, provider: ProviderConfig, name: str) -> Any:
        key = (provider.id, name)
        if key not in self._features:
            self._features[key] = adapter_feature(self.rt, provider, name)
        return self._features[key]

    def _mark_push_fresh(self, now: datetime) -> None:
        if time.monotonic() - self._push_marked_at < PUSH_FRESHNESS_EVERY_SECONDS:
            return
        self._push_marked_at = time.monotonic()
        pushed = [p.id for p in self.rt.providers.all() if self._feature(p, "push") is not None]
        if pushed:
            with self.rt.store.transaction() as tx:
                stored.mark_push_fresh(tx, provider_ids=pushed, now=now)

    def _next(self, connection_id: str) -> datetime:
        """The next check: the interval with jitter, doubled per consecutive failure."""
        failures = self._failures.get(connection_id, 0)
        base = min(self.interval * 2**failures, self.rt.settings.poll_interval_seconds)
        return utcnow() + timedelta(seconds=base * random.uniform(0.8, 1.0))

    def _check(self, connection_id: str, provider_id: str, check: ChangeCheck) -> None:
        asked = utcnow()
        fresh: datetime | None = None
        outcome = "failed"
        try:
            changed = self._ask(connection_id, check)
            self._failures.pop(connection_id, None)
            if changed:
                outcome = "changed"
                with self.rt.store.transaction() as tx:
                    mark_notified(tx, connection_id, utcnow())
                self.rt.heard_of_change(connection_id, asked)
                self.rt.work_available.set()
            else:
                outcome, fresh = "unchanged", asked
        except AuthRejected:  # the sync refreshes the token, or records the revocation
            with self.rt.store.transaction() as tx:
                mark_notified(tx, connection_id, utcnow())
            self.rt.work_available.set()
        except ProviderError as exc:
            self._failed(connection_id, provider_id, exc)
        except Exception:
            log.exception("change check crashed", extra={"connection_id": connection_id})
            self._failed(connection_id, provider_id, None)
        finally:
            self.rt.metrics.change_checks.labels(provider_id, outcome).inc()
            result = stored.CheckResult(connection_id, self._next(connection_id), fresh)
            with self._guard:
                self._done.append(result)
                self._in_flight -= 1

    def _ask(self, connection_id: str, check: ChangeCheck) -> set[str]:
        with self.rt.store.reading() as tx:
            cursors = stored.calendar_cursors(tx, connection_id)
            rows = stored_connections.rows_of(tx, [connection_id])
        if not rows:
            return set()
        return with_account(
            self.rt, rows[0], lambda account: check.changed_calendars(account, cursors)
        )

    def _failed(self, connection_id: str, provider_id: str, exc: ProviderError | None) -> None:
        self._failures[connection_id] = min(self._failures.get(connection_id, 0) + 1, 16)
        if isinstance(exc, RateLimitedByProvider) and exc.retry_after:
            self._held_until[provider_id] = time.monotonic() + exc.retry_after
        log.info(
            "change check failed",
            extra={
                "connection_id": connection_id,
                "provider_id": provider_id,
                "reason": str(exc)[:200] if exc else "internal error",
            },
        )
