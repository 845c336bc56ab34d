"""A tenant's webhooks: create, change, rotate, test, and read their delivery log.

Managing webhooks is the tenant administrator's business: it takes a key with
``MANAGE_ALL_EXTERNAL_CALENDAR_CONNECTIONS`` (an app key, or an admin user's). Another tenant's
webhook is a 404, as everywhere in the API. The signing secret is encrypted at rest and
returned only by ``create`` and ``rotate``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from calsync import crypto
from calsync.addresses import resolves_public
from calsync.domain import Identity, Permission
from calsync.domain.webhooks import ROTATION_OVERLAP, EventType
from calsync.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from calsync.service.access.auth import require_any
from calsync.service.runtime import Runtime
from calsync.service.webhooks.signing import new_secret
from calsync.store import webhooks as stored
from calsync.store.webhooks import DeliveryRecord, WebhookRecord
from calsync.tz import utcnow

EVENT_TYPES = tuple(t.value for t in EventType)
MAX_DELIVERIES_PAGE = 100


class WebhookDisabled(FailedPrecondition):
    code = "WEBHOOK_DISABLED"


@dataclass(frozen=True)
class WebhookChange:
    """``PATCH`` fields; None: unchanged."""

    url: str | None = None
    event_types: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[DeliveryRecord]
    next_cursor: str | None


def _require_admin(identity: Identity) -> None:
    require_any(identity, Permission.MANAGE_ALL_CONNECTIONS)


def check_url(rt: Runtime, url: str) -> str:
    """The URL, if calsync may post to it: https, a host, no user name or password in it, and
    a host that resolves to public addresses only (``CALSYNC_WEBHOOK_ALLOW_PRIVATE`` lifts
    the last rule and admits http)."""
    allow_private = rt.settings.webhook_allow_private
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_private else ("https",)
    problem = None
    if parts.scheme.lower() not in schemes or not parts.hostname:
        problem = "must be an https:// URL" + (" (or http://)" if allow_private else "")
    elif parts.username is not None or parts.password is not None:
        problem = "must not carry a user name or password; put a token in the path instead"
    elif not allow_private:
        problem = _public_problem(parts.hostname, parts.port or 443)
    if problem:
        raise InvalidArgument([FieldViolation("url", problem, "FORMAT")])
    return url


def _public_problem(host: str, port: int) -> str | None:
    try:
        public = resolves_public(host, port)
    except OSError:
        return "names a host that does not resolve"
    if not public:
        return (
            "points at a loopback, private or link-local address; calsync posts only to "
            "public addresses unless CALSYNC_WEBHOOK_ALLOW_PRIVATE=true"
        )
    return None


def check_event_types(values: list[str]) -> list[str]:
    unknown = [(i, t) for i, t in enumerate(values) if t not in EVENT_TYPES]
    if unknown:
        raise InvalidArgument(
            [
                FieldViolation(f"eventTypes[{i}]", "must be one of " + ", ".join(EVENT_TYPES))
                for i, _ in unknown
            ]
        )
    return list(dict.fromkeys(values))


def create_webhook(
    rt: Runtime, identity: Identity, *, url: str, event_types: list[str], description: str
) -> tuple[WebhookRecord, str]:
    """The new webhook and its secret (shown this once)."""
    _require_admin(identity)
    url, types = check_url(rt, url), check_event_types(event_types)
    secret = new_secret()
    with rt.store.transaction() as tx:
        record = stored.create(
            tx,
            tenant_id=identity.tenant_id,
            url=url,
            event_types=types,
            description=description,
            secret=rt.secrets.encrypt(secret),
            now=utcnow(),
        )
    return record, secret


def list_webhooks(rt: Runtime, identity: Identity) -> list[WebhookRecord]:
    _require_admin(identity)
    with rt.store.reading() as tx:
        return stored.of_tenant(tx, identity.tenant_id)


def _missing(webhook_id: str) -> NotFound:
    return NotFound(f"webhook {webhook_id} not found; GET /v1/webhooks lists this tenant's")


def get_webhook(rt: Runtime, identity: Identity, webhook_id: str) -> WebhookRecord:
    _require_admin(identity)
    with rt.store.reading() as tx:
        record = stored.get(tx, identity.tenant_id, webhook_id)
    if record is None:
        raise _missing(webhook_id)
    return record


def update_webhook(
    rt: Runtime, identity: Identity, webhook_id: str, change: WebhookChange
) -> WebhookRecord:
    """Change what is given; enabling again clears ``disabledReason`` and the failure clock."""
    _require_admin(identity)
    values: dict[str, Any] = {}
    if change.url is not None:
        values["url"] = check_url(rt, change.url)
    if change.event_types is not None:
        values["event_types"] = check_event_types(change.event_types)
    if change.description is not None:
        values["description"] = change.description
    if change.enabled is not None:
        values["enabled"] = change.enabled
        if change.enabled:
            values["disabled_reason"], values["failing_since"] = None, None
    with rt.store.transaction() as tx:
        record = stored.change(tx, identity.tenant_id, webhook_id, utcnow(), **values)
    if record is None:
        raise _missing(webhook_id)
    return record


def delete_webhook(rt: Runtime, identity: Identity, webhook_id: str) -> None:
    """The webhook and its delivery log; nothing more is sent to it."""
    _require_admin(identity)
    with rt.store.transaction() as tx:
        found = stored.remove(tx, identity.tenant_id, webhook_id)
    if not found:
        raise _missing(webhook_id)


def rotate_secret(rt: Runtime, identity: Identity, webhook_id: str) -> str:
    """A new secret; the old one signs too for ``ROTATION_OVERLAP`` (24 h)."""
    _require_admin(identity)
    secret = new_secret()
    now = utcnow()
    with rt.store.transaction() as tx:
        current = stored.get(tx, identity.tenant_id, webhook_id)
        if current is None:
            raise _missing(webhook_id)
        stored.change(
            tx,
            identity.tenant_id,
            webhook_id,
            now,
            secret=rt.secrets.encrypt(secret),
            previous_secret=current.secret,
            previous_secret_until=now + ROTATION_OVERLAP,
        )
    return secret


def send_test(rt: Runtime, identity: Identity, webhook_id: str) -> str:
    """Queue a ``webhook.test`` message to this webhook now; its delivery id."""
    _require_admin(identity)
    with rt.store.transaction() as tx:
        record = stored.get(tx, identity.tenant_id, webhook_id)
        if record is None:
            raise _missing(webhook_id)
        _require_enabled(record)
        [delivery_id] = stored.enqueue(
            tx,
            identity.tenant_id,
            EventType.WEBHOOK_TEST,
            {"webhookId": webhook_id},
            utcnow(),
            webhook_ids=[webhook_id],
        )
    rt.work_available.set()
    return delivery_id


def _require_enabled(record: WebhookRecord) -> None:
    if not record.enabled:
        raise WebhookDisabled(
            f"webhook {record.id} is disabled; set enabled to true (PATCH /v1/webhooks/"
            f"{record.id}) first",
            data={"disabledReason": record.disabled_reason or ""},
        )


def list_deliveries(
    rt: Runtime, identity: Identity, webhook_id: str, *, limit: int, cursor: str | None
) -> DeliveryPage:
    """Newest first, ``limit`` at a time; ``cursor`` is a page's ``nextCursor``."""
    _require_admin(identity)
    after = _read_cursor(rt, webhook_id, cursor) if cursor else None
    with rt.store.reading() as tx:
        if stored.get(tx, identity.tenant_id, webhook_id) is None:
            raise _missing(webhook_id)
        page = stored.deliveries(tx, webhook_id, limit=limit + 1, after=after)
    more = len(page) > limit
    page = page[:limit]
    next_cursor = _make_cursor(rt, webhook_id, page[-1]) if more and page else None
    return DeliveryPage(page, next_cursor)


def _make_cursor(rt: Runtime, webhook_id: str, last: DeliveryRecord) -> str:
    payload = {"w": webhook_id, "c": last.created_at.isoformat(), "i": last.id}
    return crypto.sign(rt.cursor_key, json.dumps(payload).encode())


def _read_cursor(rt: Runtime, webhook_id: str, cursor: str) -> tuple[datetime, str]:
    raw = crypto.unsign(rt.cursor_key, cursor)
    try:
        payload = json.loads(raw) if raw is not None else None
        if isinstance(payload, dict) and payload.get("w") == webhook_id:
            return datetime.fromisoformat(payload["c"]), str(payload["i"])
    except (ValueError, KeyError, TypeError):
        pass
    raise InvalidArgument(
        [FieldViolation("cursor", "is not a cursor of this webhook's deliveries", "FORMAT")]
    )


def redeliver(rt: Runtime, identity: Identity, webhook_id: str, delivery_id: str) -> DeliveryRecord:
    """Queue the same message (same ``webhook-id``) again, now, with a new retry schedule."""
    _require_admin(identity)
    with rt.store.transaction() as tx:
        record = stored.get(tx, identity.tenant_id, webhook_id)
        if record is None:
            raise _missing(webhook_id)
        _require_enabled(record)
        delivery = stored.requeue(tx, webhook_id, delivery_id, utcnow())
    if delivery is None:
        raise NotFound(
            f"delivery {delivery_id} not found; GET /v1/webhooks/{webhook_id}/deliveries "
            "lists this webhook's"
        )
    rt.work_available.set()
    return delivery
