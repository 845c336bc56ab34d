"""A burst of 1,000 session changes on one schedule, exported through the Google and Graph
fakes with their batch APIs (50 and 20 calls per batch), within their rate limits (a throttled
part of a batch is retried later), and without a single duplicate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from calsync.domain import Identity, IdentityType, Permission
from calsync.providers.google.events import EXPORT_PROPERTY
from calsync.providers.microsoft.convert import EXPORT_PROPERTY_ID
from calsync.providers.registry import GOOGLE_PROVIDER_ID, MICROSOFT_PROVIDER_ID
from calsync.service.platform import sessions
from calsync.service.runtime import Runtime
from calsync.service.sync.run import SyncFailed, sync_connection
from calsync.store.models import Connection
from tests.accounts import connect_oauth, new_schedule
from tests.conftest import random_guid
from tests.peers.google_fake import GoogleFake, start_google_fake
from tests.peers.graph_fake import GraphFake, start_graph_fake

ADMIN = Identity(
    tenant_id="site-burst",
    type=IdentityType.APP,
    permissions=frozenset(Permission),
    app_id=random_guid(),
)
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
BURST = 1000


@pytest.fixture(scope="module")
def google() -> Iterator[GoogleFake]:
    fake = start_google_fake()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphFake]:
    fake = start_graph_fake()
    yield fake
    fake.stop()


def toml(provider_id: str, kind: str, api_url: str) -> str:
    return "\n".join(
        [
            "[[providers]]",
            f'id = "{provider_id}"',
            f'kind = "{kind}"',
            'client_id = "cid"',
            'client_secret = "secret"',
            f'api_url = "{api_url}"',
            "",
        ]
    )


@dataclass
class Account:
    email: str
    connection_id: str
    schedule_id: str
    exported: Callable[[], list[dict[str, Any]]]
    fail_writes: Callable[[int], None]
    batches: Callable[[], int]


def connect(rt: Runtime, provider_id: str, email: str, token: str) -> tuple[str, str]:
    schedule_id = new_schedule(rt, ADMIN, "Europe/Berlin")
    return connect_oauth(rt, ADMIN, provider_id, email, token, schedule_id=schedule_id), schedule_id


def google_account(rt: Runtime, google: GoogleFake) -> Account:
    email = f"{random_guid()[:8]}@example.com"
    token = google.add_account(email)
    google.add_calendar(email, email, email, primary=True, time_zone="Europe/Berlin")
    connection_id, schedule_id = connect(rt, GOOGLE_PROVIDER_ID, email, token)

    def exported() -> list[dict[str, Any]]:
        calendar = google.accounts[email].calendars[email]
        return [
            s.event
            for s in calendar.events.values()
            if not s.deleted
            and EXPORT_PROPERTY in ((s.event.get("extendedProperties") or {}).get("private") or {})
        ]

    return Account(
        email,
        connection_id,
        schedule_id,
        exported,
        lambda n: google.fail_next(
            429, count=n, retry_after=1, method="calendar.events.insert", after=100
        ),
        lambda: len({r.batch for r in google.requests if r.batch is not None}),
    )


def graph_account(rt: Runtime, graph: GraphFake) -> Account:
    email = f"{random_guid()[:8]}@example.com"
    token = f"tok-{random_guid()}"
    graph.add_account(email, token=token)
    calendar_id = graph.default_calendar(email).id
    connection_id, schedule_id = connect(rt, MICROSOFT_PROVIDER_ID, email, token)

    def exported() -> list[dict[str, Any]]:
        calendar = graph.account(email).calendars[calendar_id]
        return [
            e
            for e in calendar.events.values()
            if any(
                str(p.get("id", "")).casefold() == EXPORT_PROPERTY_ID.casefold()
                for p in e.get("singleValueExtendedProperties") or []
            )
        ]

    return Account(
        email,
        connection_id,
        schedule_id,
        exported,
        lambda n: graph.fail_next(
            429, count=n, retry_after=1, method="POST", path_contains="/events", after=100
        ),
        lambda: sum(1 for r in graph.requests if r.path.endswith("/$batch")),
    )


@pytest.fixture(params=["google", "microsoft"])
def account(
    request: pytest.FixtureRequest, make_runtime: Callable[..., Runtime]
) -> tuple[Runtime, Account]:
    if request.param == "google":
        google: GoogleFake = request.getfixturevalue("google")
        rt = make_runtime(extra_toml=toml(GOOGLE_PROVIDER_ID, "google", google.api_url))
        return rt, google_account(rt, google)
    graph: GraphFake = request.getfixturevalue("graph")
    rt = make_runtime(extra_toml=toml(MICROSOFT_PROVIDER_ID, "microsoft", graph.api_url))
    return rt, graph_account(rt, graph)


def test_burst_of_a_thousand_sessions(account: tuple[Runtime, Account]) -> None:
    rt, acc = account
    for n in range(BURST):
        start = BASE + timedelta(minutes=30 * n)
        sessions.put_session(
            rt,
            identity=ADMIN,
            schedule_id=acc.schedule_id,
            session_id=f"burst-{n}",
            data=sessions.SessionInput(
                title=f"Session {n}",
                status="CONFIRMED",
                start=start,
                end=start + timedelta(minutes=25),
            ),
        )
    batches_before = acc.batches()
    acc.fail_writes(5)  # the provider throttles a few creates after the first hundred
    with pytest.raises(SyncFailed):
        sync_connection(rt, acc.connection_id, export=True)
    with rt.db() as session:
        row = session.get(Connection, acc.connection_id)
        assert row is not None and row.failure_count == 1 and row.status != "ERROR"
    assert 100 <= len(acc.exported()) < BURST  # progress kept; the rest waits for the backoff
    sync_connection(rt, acc.connection_id, export=True)
    titles = sorted(str(e.get("summary") or e.get("subject")) for e in acc.exported())
    assert titles == sorted(f"Session {n}" for n in range(BURST))  # all there, none twice
    assert acc.batches() - batches_before < BURST / 10  # batched, not one request per event
