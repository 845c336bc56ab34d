"""Push end to end: calsync served over HTTPS subscribes to the Google and Graph fakes, their
notifications make connections due at once, forged ones do nothing, disconnect unsubscribes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select, update

from calsync.api.app import create_app
from calsync.domain import Identity, IdentityType, Permission
from calsync.providers.registry import GOOGLE_PROVIDER_ID, MICROSOFT_PROVIDER_ID
from calsync.service.connections.manage import disconnect
from calsync.service.runtime import Runtime
from calsync.service.sync.push import ensure_channels
from calsync.store.models import EventInstance, PushChannelRow
from tests.accounts import connect_oauth
from tests.conftest import random_guid
from tests.peers.google_fake import GoogleFake, start_google_fake
from tests.peers.graph_fake import GraphFake, start_graph_fake
from tests.peers.tls import free_port, write_self_signed_cert

ADMIN = Identity(
    tenant_id="site-one",
    type=IdentityType.APP,
    permissions=frozenset(Permission),
    app_id=random_guid(),
)
BASE = datetime(2027, 4, 6, 9, tzinfo=UTC)
# A change must show within 5 s of its notification; the wait below is that bound.
PUSH_TO_VISIBLE_SECONDS = 5.0


@pytest.fixture(scope="module")
def google() -> Iterator[GoogleFake]:
    fake = start_google_fake()
    yield fake
    assert fake.violations == [], fake.violations
    fake.stop()


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphFake]:
    fake = start_graph_fake()
    yield fake
    fake.stop()


@dataclass
class Calsync:
    rt: Runtime
    url: str


@pytest.fixture
def calsync(
    make_runtime: Callable[..., Runtime], google: GoogleFake, graph: GraphFake, tmp_path: Path
) -> Iterator[Calsync]:
    """calsync over HTTPS in this process, with its worker; polling is slow (an hour), so
    only notifications (and the first sync) make it read the fakes."""
    cert, key = write_self_signed_cert(tmp_path)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    toml = "\n".join(
        f'[[providers]]\nid = "{pid}"\nkind = "{kind}"\nclient_id = "cid"\n'
        f'client_secret = "secret"\napi_url = "{api}"\n'
        for pid, kind, api in (
            (GOOGLE_PROVIDER_ID, "google", google.api_url),
            (MICROSOFT_PROVIDER_ID, "microsoft", graph.api_url),
        )
    )
    rt = make_runtime(
        extra_toml=toml, public_url=url, poll_interval_seconds=3600, worker_tick_seconds=0.1
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(rt),
            host="127.0.0.1",
            port=port,
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            log_config=None,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "calsync did not start"
        time.sleep(0.05)
    yield Calsync(rt, url)
    server.should_exit = True
    thread.join(20)


def connect(rt: Runtime, provider_id: str, email: str, token: str) -> str:
    far = datetime.now(UTC) + timedelta(days=30)
    return connect_oauth(rt, ADMIN, provider_id, email, token, expires_at=far)


def titles(rt: Runtime, connection_id: str) -> list[str]:
    with rt.db() as session:
        return sorted(
            session.scalars(
                select(EventInstance.title).where(EventInstance.connection_id == connection_id)
            )
        )


def channels(rt: Runtime, connection_id: str) -> list[PushChannelRow]:
    with rt.db() as session:
        return list(
            session.scalars(
                select(PushChannelRow).where(PushChannelRow.connection_id == connection_id)
            )
        )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started


def test_google_notifications_make_changes_visible(calsync: Calsync, google: GoogleFake) -> None:
    email = f"{random_guid()[:8]}@example.com"
    token = google.add_account(email)
    google.add_calendar(email, email, "Calendar", primary=True)
    connection_id = connect(calsync.rt, GOOGLE_PROVIDER_ID, email, token)
    wait_for(lambda: len(channels(calsync.rt, connection_id)) == 1, 20, "a push channel")
    [channel] = channels(calsync.rt, connection_id)
    assert channel.channel_id in {c.id for c in google.channels}
    google.put_event(
        email,
        email,
        {
            "summary": "Pushed",
            "start": {"dateTime": BASE.isoformat()},
            "end": {"dateTime": (BASE + timedelta(hours=1)).isoformat()},
        },
    )
    wait_for(
        lambda: titles(calsync.rt, connection_id) == ["Pushed"],
        PUSH_TO_VISIBLE_SECONDS,
        "the pushed change in the store",
    )

    forged = httpx.post(
        f"{calsync.url}/push/google",
        verify=False,
        headers={
            "X-Goog-Channel-ID": channel.channel_id,
            "X-Goog-Channel-Token": "forged",
            "X-Goog-Resource-State": "exists",
            "X-Goog-Resource-ID": channel.resource_id,
        },
    )
    assert forged.status_code == 403

    disconnect(calsync.rt, identity=ADMIN, connection_id=connection_id)
    wait_for(
        lambda: channel.channel_id not in {c.id for c in google.channels},
        10,
        "the channel to be stopped",
    )


def test_graph_notifications_and_lifecycle(calsync: Calsync, graph: GraphFake) -> None:
    email = f"{random_guid()[:8]}@example.com"
    token = f"tok-{random_guid()}"
    graph.add_account(email, token=token)
    calendar_id = graph.default_calendar(email).id
    connection_id = connect(calsync.rt, MICROSOFT_PROVIDER_ID, email, token)
    wait_for(lambda: len(channels(calsync.rt, connection_id)) == 1, 20, "a subscription")
    [subscription] = channels(calsync.rt, connection_id)
    assert subscription.channel_id in {s["id"] for s in graph.subscriptions}
    graph.put_event(email, calendar_id, subject="Pushed", start=BASE, end=BASE + timedelta(hours=1))
    wait_for(
        lambda: titles(calsync.rt, connection_id) == ["Pushed"],
        PUSH_TO_VISIBLE_SECONDS,
        "the pushed change in the store",
    )

    forged = httpx.post(
        f"{calsync.url}/push/microsoft",
        verify=False,
        json={
            "value": [
                {
                    "subscriptionId": subscription.channel_id,
                    "clientState": "forged",
                    "changeType": "created",
                }
            ]
        },
    )
    assert forged.status_code == 202

    graph.send_lifecycle(subscription.channel_id, "subscriptionRemoved")
    wait_for(
        lambda: (
            {c.channel_id for c in channels(calsync.rt, connection_id)} - {subscription.channel_id}
            != set()
        ),
        20,
        "a new subscription after removal",
    )

    disconnect(calsync.rt, identity=ADMIN, connection_id=connection_id)
    wait_for(
        lambda: (
            not any(
                s.get("resource", "").endswith(f"{calendar_id}/events") for s in graph.subscriptions
            )
        ),
        10,
        "the subscription to be deleted",
    )


def _expire_soon(rt: Runtime, channel_id: str) -> None:
    with rt.db() as session, session.begin():
        session.execute(
            update(PushChannelRow)
            .where(PushChannelRow.channel_id == channel_id)
            .values(expires_at=datetime.now(UTC) + timedelta(minutes=1))
        )


def test_channels_are_renewed_before_they_expire(
    calsync: Calsync, google: GoogleFake, graph: GraphFake
) -> None:
    g_email = f"{random_guid()[:8]}@example.com"
    g_token = google.add_account(g_email)
    google.add_calendar(g_email, g_email, "Calendar", primary=True)
    m_email = f"{random_guid()[:8]}@example.com"
    m_token = f"tok-{random_guid()}"
    graph.add_account(m_email, token=m_token)
    google_id = connect(calsync.rt, GOOGLE_PROVIDER_ID, g_email, g_token)
    graph_id = connect(calsync.rt, MICROSOFT_PROVIDER_ID, m_email, m_token)
    wait_for(
        lambda: (
            len(channels(calsync.rt, google_id)) == 1 and len(channels(calsync.rt, graph_id)) == 1
        ),
        20,
        "channels",
    )
    [old_google] = channels(calsync.rt, google_id)
    [old_graph] = channels(calsync.rt, graph_id)
    _expire_soon(calsync.rt, old_google.channel_id)
    _expire_soon(calsync.rt, old_graph.channel_id)
    ensure_channels(calsync.rt, google_id)
    ensure_channels(calsync.rt, graph_id)
    # Google cannot extend a channel: a new one replaces it and the old one is stopped.
    [new_google] = channels(calsync.rt, google_id)
    assert new_google.channel_id != old_google.channel_id
    live = {c.id for c in google.channels}
    assert new_google.channel_id in live and old_google.channel_id not in live
    # Graph extends the same subscription.
    [new_graph] = channels(calsync.rt, graph_id)
    assert new_graph.channel_id == old_graph.channel_id
    assert new_graph.expires_at > datetime.now(UTC) + timedelta(days=1)


def test_one_push_route_answers_for_every_kind(calsync: Calsync) -> None:
    """``/push/{kind}``: a kind without push, an unknown kind or stream is 404; an unreadable
    Graph body 400; Graph's subscription check is echoed on both of its streams; a Google
    notification of no channel of ours is refused, a Graph one acknowledged (and ignored)."""

    def post(path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{calsync.url}{path}", verify=False, **kwargs)

    for path in ("/push/caldav", "/push/nope", "/push/google/lifecycle", "/push/microsoft/x"):
        assert post(path, content=b"{}").status_code == 404, path
    assert post("/push/microsoft", content=b"{").status_code == 400
    for path in ("/push/microsoft", "/push/microsoft/lifecycle"):
        check = post(path, params={"validationToken": "Validation: abc"})
        assert (check.status_code, check.text) == (200, "Validation: abc")
        assert check.headers["content-type"].startswith("text/plain")
    unknown = {"X-Goog-Channel-ID": "no-such-channel", "X-Goog-Channel-Token": "t"}
    assert post("/push/google", headers=unknown).status_code == 403
    assert post("/push/google").status_code == 403
    body = {"value": [{"subscriptionId": "no-such", "clientState": "x"}]}
    assert post("/push/microsoft", json=body).status_code == 202
    assert post("/push/microsoft/lifecycle", json=body).status_code == 202
    assert post("/push/microsoft", json=["not", "an", "object"]).status_code == 202


def test_a_live_channel_keeps_the_data_fresh_and_a_storm_makes_few_syncs(
    calsync: Calsync, google: GoogleFake
) -> None:
    """While every calendar has a live channel the data counts as fresh without a read of the
    provider (keptFresh PUSH, freshAsOf moving on); 200 notifications for one connection at
    once make a couple of syncs, not 200."""
    from calsync.service.sync.checks import PUSH_FRESHNESS_EVERY_SECONDS
    from calsync.service.sync.report import sync_report

    email = f"{random_guid()[:8]}@example.com"
    token = google.add_account(email)
    google.add_calendar(email, email, "Calendar", primary=True)
    connection_id = connect(calsync.rt, GOOGLE_PROVIDER_ID, email, token)
    wait_for(lambda: len(channels(calsync.rt, connection_id)) == 1, 20, "a push channel")
    first = sync_report(calsync.rt, identity=ADMIN, connection_id=connection_id)
    wait_for(
        lambda: (
            (r := sync_report(calsync.rt, identity=ADMIN, connection_id=connection_id)).fresh_as_of
            is not None
            and first.last_synced_at is not None
            and r.fresh_as_of > first.last_synced_at
            and r.last_synced_at == first.last_synced_at
        ),
        PUSH_FRESHNESS_EVERY_SECONDS * 3,
        "freshAsOf to move on without a sync",
    )
    report = sync_report(calsync.rt, identity=ADMIN, connection_id=connection_id)
    assert report.freshness is not None and report.freshness.method == "PUSH"
    assert report.freshness.live_push_channels == 1

    [channel] = [c for c in google.channels if c.email == email.lower()]
    runs = calsync.rt.metrics.sync_runs.labels(GOOGLE_PROVIDER_ID, "success")
    before = runs._value.get()
    headers = {
        "X-Goog-Channel-ID": channel.id,
        "X-Goog-Channel-Token": channel.token or "",
        "X-Goog-Resource-State": "exists",
        "X-Goog-Resource-ID": channel.resource_id,
    }
    with httpx.Client(verify=False, base_url=calsync.url) as client:
        answers = [client.post("/push/google", headers=headers).status_code for _ in range(200)]
    assert set(answers) <= {200, 202, 204}, answers
    wait_for(lambda: runs._value.get() > before, 10, "a sync after the storm")
    time.sleep(1.0)  # what else the storm leads to has started by now
    wait_for(lambda: not calsync.rt.refreshing, 10, "refreshes to end")
    assert 1 <= runs._value.get() - before <= 3
    # The storm's change-to-visible time was observed once, from its first notification.
    registry = calsync.rt.metrics.registry
    seen = registry.get_sample_value("calsync_change_visible_seconds_count", {"kind": "google"})
    took = registry.get_sample_value("calsync_change_visible_seconds_sum", {"kind": "google"})
    assert seen is not None and seen >= 1 and took is not None and 0 < took < 10 * seen
