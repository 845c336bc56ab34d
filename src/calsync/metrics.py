"""Prometheus metrics of one calsync process, kept in a registry of its own (one per runtime).

Under ``calsync serve --processes N`` every process records into files of one directory
(prometheus_client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``, set by the parent), and a
scrape of any process reports them all: counters and histograms summed, the scrape-time gauges
as last set by a live process.

Every label has a bounded set of values: HTTP route templates (never raw paths), status codes,
configured provider IDs, fixed outcome and error-class names. No secret, account, connection
or tenant ever becomes a label.

    calsync_http_requests_total{method, route, status}
    calsync_http_request_duration_seconds{method, route}          histogram
    calsync_sync_runs_total{provider, outcome}                    outcome: SYNC_OUTCOMES
    calsync_provider_errors_total{provider, code}                 code: error class, snake case
    calsync_export_events_total{provider, action}                 action: EXPORT_ACTIONS
    calsync_sync_lag_seconds                                      set at scrape
    calsync_sync_queue_depth                                      set at scrape
    calsync_connections{status}                                   set at scrape
    calsync_database_up                                           set at scrape
    calsync_provider_info{provider, name, kind}                   1 per configured provider
    calsync_build_info{version}                                   1
    calsync_background_refreshes_total                            stale data re-read off the read
    calsync_data_age_at_read_seconds                              histogram: List Events' data age
    calsync_change_checks_total{provider, outcome}                outcome: CHECK_OUTCOMES
    calsync_change_visible_seconds{kind}                          histogram: notice to commit
    calsync_webhook_attempts_total{status}                        status: a DeliveryStatus
    calsync_webhook_delivered_seconds                             histogram: message to delivery
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from calsync import __version__
from calsync.providers.base import ProviderError, RateLimitedByProvider

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Scrape-time gauges across processes: the value a live process set last.
GAUGE_MODE: Final = "livemostrecent"
SUCCESS = "success"
REVOKED = "revoked"
RATE_LIMITED = "rate_limited"
TRANSIENT_FAILURE = "transient_failure"
INTERNAL_ERROR = "internal_error"
SYNC_OUTCOMES = (SUCCESS, REVOKED, RATE_LIMITED, TRANSIENT_FAILURE, INTERNAL_ERROR)
EXPORT_ACTIONS = ("written", "deleted", "restored", "failed")
UNMATCHED_ROUTE = "unmatched"
CHECK_OUTCOMES = ("unchanged", "changed", "failed")
# From a change's notification (or the check that saw it) to its commit in the store.
VISIBLE_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
# Age of the stored data a read answered from: a change check's interval to a day.
AGE_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 86400.0)
# Latencies from a cached List Events page (ms) to a sync-first call bounded by its time budget.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class QueueSnapshot:
    """What the database says at scrape time (see ``service.operations.queue_snapshot``)."""

    lag_seconds: float
    due_now: int
    by_status: dict[str, int] = field(default_factory=dict)


class Metrics:
    """The metrics of one runtime; its registry is private, so several apps in one process
    (tests, an API process and a worker) never clash."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "calsync_http_requests",
            "HTTP requests by route template and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "calsync_http_request_duration_seconds",
            "Time from request to the end of the response, by route template.",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.sync_runs = Counter(
            "calsync_sync_runs",
            "Finished import runs by provider ID and outcome.",
            ["provider", "outcome"],
            registry=r,
        )
        self.provider_errors = Counter(
            "calsync_provider_errors",
            "Errors external calendar servers caused during syncs, by provider ID and error code.",
            ["provider", "code"],
            registry=r,
        )
        self.export_events = Counter(
            "calsync_export_events",
            "Exported events by provider ID and action (restored: put back after an edit or "
            "deletion in the external calendar).",
            ["provider", "action"],
            registry=r,
        )
        self.sync_lag = Gauge(
            "calsync_sync_lag_seconds",
            "Seconds since the least recently synced active connection was last synced "
            "(or connected, if it never was); 0 without active connections.",
            registry=r,
            multiprocess_mode=GAUGE_MODE,
        )
        self.queue_depth = Gauge(
            "calsync_sync_queue_depth",
            "Active connections that are due for a sync now.",
            registry=r,
            multiprocess_mode=GAUGE_MODE,
        )
        self.connections = Gauge(
            "calsync_connections",
            "Connections by status.",
            ["status"],
            registry=r,
            multiprocess_mode=GAUGE_MODE,
        )
        self.database_up = Gauge(
            "calsync_database_up",
            "1 if the database answered the last scrape's queries, else 0.",
            registry=r,
            multiprocess_mode=GAUGE_MODE,
        )
        self.provider_info = Gauge(
            "calsync_provider_info",
            "Configured providers: the name and kind behind each provider ID label.",
            ["provider", "name", "kind"],
            registry=r,
            multiprocess_mode=GAUGE_MODE,
        )

        self.build_info = Gauge(
            "calsync_build_info",
            "1, labelled with the running calsync's version.",
            ["version"],
            registry=r,
            multiprocess_mode=GAUGE_MODE,
        )
        self.build_info.labels(__version__).set(1)
        self.background_refreshes = Counter(
            "calsync_background_refreshes",
            "Refreshes of stale connections that reads started in the background.",
            registry=r,
        )
        self.data_age = Histogram(
            "calsync_data_age_at_read_seconds",
            "Age of the oldest stored data (now minus freshAsOf) a List Events answer used.",
            buckets=AGE_BUCKETS,
            registry=r,
        )
        self.change_checks = Counter(
            "calsync_change_checks",
            "Change checks (is anything new on the server?) by provider ID and outcome.",
            ["provider", "outcome"],
            registry=r,
        )

        self.change_visible = Histogram(
            "calsync_change_visible_seconds",
            "From a push notification or change check that announced a change to the commit "
            "of the sync that stored it, by provider kind.",
            ["kind"],
            buckets=VISIBLE_BUCKETS,
            registry=r,
        )

        self.webhook_attempts = Counter(
            "calsync_webhook_attempts",
            "Webhook delivery attempts by the delivery's status after them.",
            ["status"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            "calsync_webhook_delivered_seconds",
            "From a webhook message's creation (the commit of its change) to its delivery.",
            buckets=VISIBLE_BUCKETS,
            registry=r,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def sync_finished(
        self,
        provider_id: str,
        *,
        synced: bool,
        revoked: bool,
        failure: ProviderError | None,
    ) -> None:
        """Count one run's outcome; a failed run also counts its provider error."""
        outcome = sync_outcome(synced=synced, revoked=revoked, failure=failure)
        self.sync_runs.labels(provider_id, outcome).inc()
        if revoked:
            self.provider_errors.labels(provider_id, "auth_rejected").inc()
        elif failure is not None:
            self.provider_errors.labels(provider_id, error_code(failure)).inc()

    def export_finished(self, provider_id: str, counts: dict[str, int]) -> None:
        """Count one export run's events by action (``EXPORT_ACTIONS``)."""
        for action in EXPORT_ACTIONS:
            if counts.get(action):
                self.export_events.labels(provider_id, action).inc(counts[action])

    def set_queue(self, snapshot: QueueSnapshot | None) -> None:
        """The scrape-time gauges; None (database unreachable) only sets ``database_up`` to 0."""
        self.database_up.set(0 if snapshot is None else 1)
        if snapshot is None:
            return
        self.sync_lag.set(snapshot.lag_seconds)
        self.queue_depth.set(snapshot.due_now)
        for status, count in snapshot.by_status.items():
            self.connections.labels(status).set(count)

    def set_providers(self, providers: list[tuple[str, str, str]]) -> None:
        """(id, name, kind) of every configured provider."""
        for provider_id, name, kind in providers:
            self.provider_info.labels(provider_id, name, kind).set(1)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything in this registry, or, in multiprocess
        mode, of every process's files."""
        directory = os.environ.get(MULTIPROCESS_DIR_ENV)
        if not directory:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(merged)


def sync_outcome(*, synced: bool, revoked: bool, failure: ProviderError | None) -> str:
    if synced:
        return SUCCESS
    if revoked:
        return REVOKED
    if isinstance(failure, RateLimitedByProvider):
        return RATE_LIMITED
    return TRANSIENT_FAILURE if failure is not None else INTERNAL_ERROR


def error_code(error: ProviderError) -> str:
    """``ProviderUnreachable`` -> ``provider_unreachable``: one code per class of the tree."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()
