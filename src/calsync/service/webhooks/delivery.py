"""Sending webhook messages: the worker's outbox reader.

Runs on threads of its own, apart from syncing: a receiver that hangs or fails never delays a
sync, and at most ``PER_WEBHOOK`` messages of one webhook are in flight, so it never delays
another receiver either. Each attempt has ``DELIVERY_TIMEOUT_SECONDS`` in all (a receiver
dripping bytes included); redirects are not followed; a host that resolves to a non-public
address is refused at each attempt (unless ``CALSYNC_WEBHOOK_ALLOW_PRIVATE``).

At least once: a claimed delivery's next attempt is pushed ``CLAIM_HOLD`` ahead before it is
sent, so if this process dies mid-attempt another worker (or this one, restarted) sends it
again after the hold. Receivers dedupe by ``webhook-id``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx

from calsync.addresses import resolves_public
from calsync.domain.webhooks import (
    DELIVERY_TIMEOUT_SECONDS,
    DISABLE_AFTER,
    KEEP_DELIVERIES,
    DeliveryStatus,
    disabled_reason,
    next_attempt,
)
from calsync.providers.deadline import DeadlineTransport
from calsync.providers.http import tls_context, transport_failure
from calsync.service.runtime import Runtime
from calsync.service.webhooks import signing
from calsync.store import webhooks as stored
from calsync.store.unit import Tx
from calsync.store.webhooks import DeliveryJob, WebhookRecord
from calsync.tz import utcnow

log = logging.getLogger(__name__)

PER_WEBHOOK = 2
# A claimed delivery is another worker's again after this long (longer than an attempt).
CLAIM_HOLD = timedelta(seconds=DELIVERY_TIMEOUT_SECONDS * 4)
PRUNE_EVERY_SECONDS = 3600.0


@dataclass(frozen=True)
class Attempt:
    """What one attempt found: a status code (None: no answer) or an error in words."""

    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Deliverer:
    """Claims due deliveries and sends them on its own threads; ``run_once`` is called by the
    worker's tick (and after an API call queues a message)."""

    def __init__(self, rt: Runtime, threads: int | None = None) -> None:
        self.rt = rt
        self.threads = max(1, threads or rt.settings.webhook_threads)
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="calsync-hook")
        self._guard = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self._pruned_at = 0.0
        self._client = httpx.Client(
            transport=DeadlineTransport(tls_context(), DELIVERY_TIMEOUT_SECONDS),
            timeout=httpx.Timeout(DELIVERY_TIMEOUT_SECONDS, connect=5.0),
            follow_redirects=False,
        )

    def run_once(self) -> int:
        """Start sending what is due; how many deliveries were claimed."""
        self._prune()
        now = utcnow()
        with self._guard:
            free = self.threads * 2 - sum(self._in_flight.values())
            in_flight = Counter(self._in_flight)
        with self.rt.store.transaction() as tx:
            jobs = stored.claim_due(
                tx,
                now=now,
                hold_until=now + CLAIM_HOLD,
                limit=free,
                in_flight=in_flight,
                per_webhook=PER_WEBHOOK,
            )
        for job in jobs:
            with self._guard:
                self._in_flight[job.webhook.id] += 1
            self._pool.submit(self._deliver, job)
        return len(jobs)

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def _deliver(self, job: DeliveryJob) -> None:
        try:
            attempt = self.attempt(job)
            self._record(job, attempt)
        except Exception:  # the delivery stays claimed: it is tried again after the hold
            log.exception("webhook delivery failed", extra={"delivery_id": job.id})
        finally:
            with self._guard:
                self._in_flight[job.webhook.id] -= 1
                if self._in_flight[job.webhook.id] <= 0:
                    del self._in_flight[job.webhook.id]

    def attempt(self, job: DeliveryJob) -> Attempt:
        """POST the message once, signed with every secret valid now."""
        refused = self._refused(job.webhook.url)
        if refused:
            return Attempt(None, refused)
        body = job.payload.encode()
        headers = signing.headers(self._secrets(job.webhook), job.id, int(time.time()), body)
        try:
            with self._client.stream("POST", job.webhook.url, content=body, headers=headers) as r:
                return Attempt(r.status_code, None if 200 <= r.status_code < 300 else _said(r))
        except httpx.HTTPError as exc:
            return Attempt(None, "the receiver " + transport_failure(exc))

    def _refused(self, url: str) -> str | None:
        if self.rt.settings.webhook_allow_private:
            return None
        parts = urlsplit(url)
        try:
            public = resolves_public(parts.hostname or "", parts.port or 443)
        except OSError:
            return "the receiver's host name did not resolve"
        return None if public else "the receiver's host resolved to a non-public address"

    def _secrets(self, webhook: WebhookRecord) -> list[str]:
        secrets = [self.rt.secrets.decrypt(webhook.secret)]
        until = webhook.previous_secret_until
        if webhook.previous_secret is not None and until is not None and until > utcnow():
            secrets.append(self.rt.secrets.decrypt(webhook.previous_secret))
        return secrets

    def _record(self, job: DeliveryJob, attempt: Attempt) -> None:
        now = utcnow()
        if attempt.delivered:
            status, retry_at = DeliveryStatus.DELIVERED, None
        else:
            retry_at = next_attempt(job.attempts + 1 - job.round_start, now)
            status = DeliveryStatus.FAILING if retry_at else DeliveryStatus.GAVE_UP
        with self.rt.store.transaction() as tx:
            stored.record_attempt(
                tx,
                job.id,
                now=now,
                status=status,
                status_code=attempt.status_code,
                error=attempt.error,
                next_attempt_at=retry_at,
            )
            self._note_health(tx, job.webhook, attempt.delivered, now)
        self.rt.metrics.webhook_attempts.labels(status.value).inc()
        if attempt.delivered:
            self.rt.metrics.webhook_latency.observe((now - job.created_at).total_seconds())
        log.info(
            "webhook delivery attempt",
            extra={
                "delivery_id": job.id,
                "webhook_id": job.webhook.id,
                "status": status.value,
                "status_code": attempt.status_code,
                "reason": attempt.error,
            },
        )

    def _note_health(self, tx: Tx, webhook: WebhookRecord, delivered: bool, now: datetime) -> None:
        """The failure clock: cleared by a success; 5 days of failures disable the webhook."""
        current = stored.get(tx, webhook.tenant_id, webhook.id)
        if current is None:
            return  # deleted meanwhile
        since = current.failing_since
        if delivered:
            if since is not None:
                stored.change(tx, webhook.tenant_id, webhook.id, now, failing_since=None)
        elif since is None:
            stored.change(tx, webhook.tenant_id, webhook.id, now, failing_since=now)
        elif current.enabled and now - since >= DISABLE_AFTER:
            reason = disabled_reason(since)
            stored.change(
                tx, webhook.tenant_id, webhook.id, now, enabled=False, disabled_reason=reason
            )
            log.warning(
                "webhook disabled after 5 days of failures", extra={"webhook_id": webhook.id}
            )

    def _prune(self) -> None:
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = time.monotonic()
        with self.rt.store.transaction() as tx:
            stored.prune(tx, utcnow() - KEEP_DELIVERIES)


def _said(response: httpx.Response) -> str:
    return f"the receiver answered HTTP {response.status_code}"
