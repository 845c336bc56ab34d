"""The background worker: claims due connections and syncs them, a few at a time.

Runs inside ``calsync serve`` (default) or alone as ``calsync worker``; any number of workers
can share one PostgreSQL database (see ``leases``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from calsync.service.connections.retire import retire_due
from calsync.service.runtime import Runtime
from calsync.service.sync import leases
from calsync.service.sync.checks import ChangeChecker
from calsync.service.sync.push import ensure_channels
from calsync.service.sync.run import sync_connection_quietly
from calsync.service.webhooks.delivery import Deliverer
from calsync.store import connections as stored_connections
from calsync.store.unit import DatabaseError

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.threads = max(1, rt.settings.worker_threads)
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="calsync-sync")
        self._stop = threading.Event()
        self._in_flight: set[str] = set()
        self._guard = threading.Lock()
        self._per_provider: dict[str, threading.BoundedSemaphore] = {}
        self._thread: threading.Thread | None = None
        self.checker = ChangeChecker(rt)
        self.deliverer = Deliverer(rt)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="calsync-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self.rt.work_available.set()
        if self._thread is not None:
            self._thread.join(timeout)
        # Claimed work still runs (and releases its lease) rather than being dropped.
        self._pool.shutdown(wait=True)
        with contextlib.suppress(DatabaseError):
            self.checker.stop()
        self.deliverer.stop()

    def run_once(self) -> int:
        """Claim what is due (as many as there are free threads) and start syncing it."""
        with self._guard:
            free = self.threads - len(self._in_flight)
            busy = set(self._in_flight)
        claimed = leases.claim_due(self.rt, self.rt.instance_id, free, exclude=busy)
        for connection_id in claimed:
            with self._guard:
                self._in_flight.add(connection_id)
            self._pool.submit(self._sync, connection_id)
        return len(claimed)

    def _loop(self) -> None:
        tick = self.rt.settings.worker_tick_seconds
        while not self._stop.is_set():
            self.rt.work_available.clear()
            try:
                self.run_once()
                self.deliverer.run_once()  # webhook messages, on threads of their own
                self.checker.run_once()
                retire_due(self.rt)  # disconnect clean-ups left by a crash or waiting to retry
            except DatabaseError as exc:  # database restarting: wait and try again
                log.warning("worker cannot reach the database", extra={"reason": str(exc)[:200]})
            except Exception:  # a bug must not stop the worker: say so, go on next tick
                log.exception("worker tick failed")
            self.rt.work_available.wait(tick)

    def _sync(self, connection_id: str) -> None:
        try:
            with self._provider_slot(connection_id):
                sync_connection_quietly(self.rt, connection_id, claimed=True)
                ensure_channels(self.rt, connection_id)
        except DatabaseError as exc:
            log.warning("sync interrupted by the database", extra={"reason": str(exc)[:200]})
        finally:
            # If the database is down the lease stays ours: our next claim takes it back.
            with contextlib.suppress(DatabaseError):
                leases.release(self.rt, connection_id, self.rt.instance_id)
            with self._guard:
                self._in_flight.discard(connection_id)
            self.rt.work_available.set()

    def _provider_slot(self, connection_id: str) -> threading.BoundedSemaphore:
        with self.rt.store.reading() as tx:
            record = stored_connections.get(tx, connection_id)
            provider_id = record.provider_id if record else ""
        with self._guard:
            if provider_id not in self._per_provider:
                limit = max(1, self.rt.settings.provider_concurrency)
                self._per_provider[provider_id] = threading.BoundedSemaphore(limit)
            return self._per_provider[provider_id]
