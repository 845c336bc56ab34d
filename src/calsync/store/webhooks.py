"""The webhooks aggregate: a tenant's subscriptions, and the outbox of their deliveries.

A message is written here in the transaction of the change that causes it (``enqueue``), one
delivery row per subscribed webhook, so a crash never loses one; the delivery worker claims due
rows (``claim_due``) by pushing their next attempt ahead, so a worker killed mid-attempt leaves
the row to be tried again.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, select, update

from calsync.domain.webhooks import DeliveryStatus, EventType, message, wants
from calsync.store.models import Webhook, WebhookDelivery
from calsync.store.unit import Tx

_OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILING.value)


@dataclass(frozen=True)
class WebhookRecord:
    id: str
    tenant_id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    secret: bytes  # sealed
    previous_secret: bytes | None  # sealed; signs too until previous_secret_until
    previous_secret_until: datetime | None
    failing_since: datetime | None


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    webhook_id: str
    event_type: str
    created_at: datetime
    status: str
    attempts: int
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class DeliveryJob:
    """A claimed delivery, with what sending it takes."""

    id: str
    webhook: WebhookRecord
    payload: str
    attempts: int
    round_start: int
    created_at: datetime


def _record(row: Webhook) -> WebhookRecord:
    return WebhookRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        url=row.url,
        event_types=list(row.event_types or []),
        description=row.description,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        secret=row.secret,
        previous_secret=row.previous_secret,
        previous_secret_until=row.previous_secret_until,
        failing_since=row.failing_since,
    )


def _delivery(row: WebhookDelivery) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id,
        webhook_id=row.webhook_id,
        event_type=row.event_type,
        created_at=row.created_at,
        status=row.status,
        attempts=row.attempts,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
    )


# --- subscriptions ---


def create(
    tx: Tx,
    *,
    tenant_id: str,
    url: str,
    event_types: list[str],
    description: str,
    secret: bytes,
    now: datetime,
) -> WebhookRecord:
    row = Webhook(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        url=url,
        event_types=event_types,
        description=description,
        enabled=True,
        secret=secret,
        created_at=now,
        updated_at=now,
    )
    tx.session.add(row)
    tx.session.flush()
    return _record(row)


def of_tenant(tx: Tx, tenant_id: str) -> list[WebhookRecord]:
    rows = tx.session.scalars(
        select(Webhook).where(Webhook.tenant_id == tenant_id).order_by(Webhook.created_at)
    )
    return [_record(r) for r in rows]


def _row(tx: Tx, tenant_id: str, webhook_id: str) -> Webhook | None:
    row = tx.session.get(Webhook, webhook_id)
    return row if row is not None and row.tenant_id == tenant_id else None


def get(tx: Tx, tenant_id: str, webhook_id: str) -> WebhookRecord | None:
    """The tenant's webhook; None when it does not exist or is another tenant's."""
    row = _row(tx, tenant_id, webhook_id)
    return _record(row) if row is not None else None


def change(
    tx: Tx, tenant_id: str, webhook_id: str, now: datetime, **values: Any
) -> WebhookRecord | None:
    """Set ``url``, ``event_types``, ``description``, ``enabled``, ``disabled_reason``,
    ``secret``, ``previous_secret``, ``previous_secret_until`` or ``failing_since``."""
    row = _row(tx, tenant_id, webhook_id)
    if row is None:
        return None
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = now
    return _record(row)


def remove(tx: Tx, tenant_id: str, webhook_id: str) -> bool:
    row = _row(tx, tenant_id, webhook_id)
    if row is None:
        return False
    tx.session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id))
    tx.session.delete(row)
    return True


# --- the outbox ---


def subscribed(tx: Tx, tenant_id: str, event_type: EventType) -> list[str]:
    """Ids of the tenant's enabled webhooks that take ``event_type``."""
    rows = tx.session.execute(
        select(Webhook.id, Webhook.event_types).where(
            Webhook.tenant_id == tenant_id, Webhook.enabled.is_(True)
        )
    ).all()
    return [wid for wid, types in rows if wants(list(types or []), event_type.value)]


def enqueue(
    tx: Tx,
    tenant_id: str,
    event_type: EventType,
    data: dict[str, object],
    now: datetime,
    *,
    webhook_ids: Collection[str] | None = None,
) -> list[str]:
    """Write the message for every subscribed webhook (or only ``webhook_ids``), due now, in
    ``tx``; the delivery ids (the messages' ``webhook-id``)."""
    targets = (
        list(webhook_ids) if webhook_ids is not None else subscribed(tx, tenant_id, event_type)
    )
    if not targets:
        return []
    body = json.dumps(message(event_type, data, now), separators=(",", ":"))
    rows = [
        WebhookDelivery(
            id=f"msg_{uuid.uuid4().hex}",
            webhook_id=wid,
            tenant_id=tenant_id,
            event_type=event_type.value,
            payload=body,
            created_at=now,
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            round_start=0,
            next_attempt_at=now,
        )
        for wid in targets
    ]
    tx.session.add_all(rows)
    tx.session.flush()
    return [r.id for r in rows]


def claim_due(
    tx: Tx,
    *,
    now: datetime,
    hold_until: datetime,
    limit: int,
    in_flight: Counter[str],
    per_webhook: int,
) -> list[DeliveryJob]:
    """Up to ``limit`` due deliveries of enabled webhooks, at most ``per_webhook`` in flight
    per webhook (counting ``in_flight``), the longest-waiting first; each is held (its next
    attempt moved to ``hold_until``) so that no other worker takes it meanwhile."""
    if limit <= 0:
        return []
    due = and_(WebhookDelivery.next_attempt_at <= now, WebhookDelivery.status.in_(_OPEN))
    candidates = tx.session.execute(
        select(WebhookDelivery.id, WebhookDelivery.webhook_id)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(due, Webhook.enabled.is_(True))
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit * 4)
    ).all()
    taken: Counter[str] = Counter(in_flight)
    chosen: list[str] = []
    for delivery_id, webhook_id in candidates:
        if taken[webhook_id] < per_webhook and len(chosen) < limit:
            taken[webhook_id] += 1
            chosen.append(delivery_id)
    if not chosen:
        return []
    claimed = set(
        tx.session.scalars(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(chosen), due)
            .values(next_attempt_at=hold_until)
            .returning(WebhookDelivery.id)
            .execution_options(synchronize_session=False)
        )
    )
    rows = tx.session.execute(
        select(WebhookDelivery, Webhook)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.id.in_(claimed))
    ).all()
    return [
        DeliveryJob(d.id, _record(w), d.payload, d.attempts, d.round_start, d.created_at)
        for d, w in sorted(rows, key=lambda pair: chosen.index(pair[0].id))
    ]


def record_attempt(
    tx: Tx,
    delivery_id: str,
    *,
    now: datetime,
    status: DeliveryStatus,
    status_code: int | None,
    error: str | None,
    next_attempt_at: datetime | None,
) -> None:
    """One attempt's outcome (the delivery may have been deleted with its webhook meanwhile)."""
    row = tx.session.get(WebhookDelivery, delivery_id)
    if row is None:
        return
    row.attempts += 1
    row.status = status.value
    row.last_attempt_at, row.last_status_code, row.last_error = now, status_code, error
    row.next_attempt_at = next_attempt_at


def deliveries(
    tx: Tx, webhook_id: str, *, limit: int, after: tuple[datetime, str] | None
) -> list[DeliveryRecord]:
    """The webhook's deliveries newest first, from after ``after`` (created_at, id)."""
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if after is not None:
        created, did = after
        query = query.where(
            (WebhookDelivery.created_at < created)
            | and_(WebhookDelivery.created_at == created, WebhookDelivery.id < did)
        )
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    return [_delivery(r) for r in tx.session.scalars(query.limit(limit))]


def delivery(tx: Tx, webhook_id: str, delivery_id: str) -> DeliveryRecord | None:
    row = tx.session.get(WebhookDelivery, delivery_id)
    return _delivery(row) if row is not None and row.webhook_id == webhook_id else None


def requeue(tx: Tx, webhook_id: str, delivery_id: str, now: datetime) -> DeliveryRecord | None:
    """Queue the same message again, due now, with a new round of the retry schedule."""
    row = tx.session.get(WebhookDelivery, delivery_id)
    if row is None or row.webhook_id != webhook_id:
        return None
    row.status, row.round_start, row.next_attempt_at = (
        DeliveryStatus.PENDING.value,
        row.attempts,
        now,
    )
    return _delivery(row)


def prune(tx: Tx, before: datetime) -> int:
    """Forget finished deliveries created before ``before``; how many."""
    result = tx.session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.created_at < before, WebhookDelivery.next_attempt_at.is_(None)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
