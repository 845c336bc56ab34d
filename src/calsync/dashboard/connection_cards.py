"""A schedule's connections as the dashboard shows them: provider, account, state in words,
last successful and next sync, the current problem."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from calsync.dashboard.plain_words import STATUS_TONE, STATUS_WORDS, Problem, problem
from calsync.domain import ConnectionStatus, Identity
from calsync.service import connections
from calsync.service.runtime import Runtime
from calsync.service.sync_report import sync_report
from calsync.service.views import ConnectionView


@dataclass(frozen=True)
class ConnectionCard:
    connection: ConnectionView
    provider_name: str
    status_text: str
    tone: str
    last_synced_at: datetime | None
    next_sync_at: datetime | None
    problem: Problem | None


def provider_name(rt: Runtime, provider_id: str) -> str:
    provider = rt.providers.get(provider_id)
    return provider.name if provider else "The calendar provider"


def card(rt: Runtime, identity: Identity, view: ConnectionView) -> ConnectionCard:
    report = sync_report(rt, identity=identity, connection_id=view.id)
    name = provider_name(rt, view.provider_id)
    return ConnectionCard(
        connection=view,
        provider_name=name,
        status_text=STATUS_WORDS[report.status],
        tone=STATUS_TONE[report.status],
        last_synced_at=report.last_synced_at,
        next_sync_at=report.next_sync_at,
        problem=problem(report, name),
    )


def schedule_cards(rt: Runtime, *, identity: Identity, schedule_id: str) -> list[ConnectionCard]:
    """The schedule's connections that are not disconnected, oldest first."""
    listed = connections.list_connections(rt, identity=identity, schedule_ids=[schedule_id])
    return [
        card(rt, identity, view)
        for view in listed.connections
        if view.status is not ConnectionStatus.DISCONNECTED
    ]
