"""Background refresh: a stale connection is re-read off the request path, once at a time.

List Events answers from the store whatever the data's age (``service.events.list_events``);
when a connection it used is older than ``CALSYNC_FRESHNESS_SECONDS`` it asks for a refresh
here. However many readers ask, a connection has at most one refresh in flight in this process,
and the sync's lease (``service.sync.leases``) keeps other processes from reading it again
meanwhile: a refresh that finds another process syncing the connection leaves it to that one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import Future
from functools import partial

from calsync.service.runtime import Runtime
from calsync.service.sync.run import SyncFailed, sync_connection

log = logging.getLogger(__name__)

# Refreshes of one tenant in flight at once (the pool has more threads: see runtime).
PER_TENANT_REFRESHES = 2
# How long a refresh waits for another process's sync of the same connection to finish.
_LEASE_WAIT_SECONDS = 1.0


def refresh_in_background(rt: Runtime, connection_ids: Iterable[str], *, tenant_id: str) -> int:
    """Start a refresh of each connection that has none in flight, at most
    ``PER_TENANT_REFRESHES`` of one tenant at a time (fewer than the pool's threads, so one
    tenant's slow servers never hold every thread); returns how many started. Those left out
    are asked for again by a later read.

    Never blocks: safe on the event loop (it only submits work to ``rt.refresh_pool``)."""
    started: list[tuple[str, Future[None]]] = []
    with rt.lock("refresh", "registry"):
        tenant_busy = sum(1 for t in rt.refreshing_tenants.values() if t == tenant_id)
        for connection_id in connection_ids:
            if connection_id in rt.refreshing:
                continue
            if tenant_busy >= PER_TENANT_REFRESHES:
                break
            tenant_busy += 1
            rt.refreshing_tenants[connection_id] = tenant_id
            try:
                future = rt.refresh_pool.submit(_refresh, rt, connection_id)
            except RuntimeError:  # the pool is shutting down: the process is stopping
                rt.refreshing_tenants.pop(connection_id, None)
                break
            rt.refreshing[connection_id] = future
            started.append((connection_id, future))
    # Outside the lock: a future already done runs its callback at once, in this thread.
    for connection_id, future in started:
        future.add_done_callback(partial(_done, rt, connection_id))
    if started:
        rt.metrics.background_refreshes.inc(len(started))
    return len(started)


def in_flight(rt: Runtime) -> list[Future[None]]:
    """The refreshes running or queued now (tests and shutdown wait on them)."""
    with rt.lock("refresh", "registry"):
        return list(rt.refreshing.values())


def _done(rt: Runtime, connection_id: str, _future: Future[None]) -> None:
    with rt.lock("refresh", "registry"):
        rt.refreshing.pop(connection_id, None)
        rt.refreshing_tenants.pop(connection_id, None)


def _refresh(rt: Runtime, connection_id: str) -> None:
    try:
        sync_connection(rt, connection_id, wait_seconds=_LEASE_WAIT_SECONDS)
    except SyncFailed as exc:  # recorded on the connection by the sync; the log says why
        log.info(
            "background refresh failed",
            extra={"connection_id": connection_id, "reason": str(exc)[:200]},
        )
    except Exception:
        log.exception("background refresh crashed", extra={"connection_id": connection_id})
