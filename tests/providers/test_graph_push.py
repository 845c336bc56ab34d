"""Graph change notifications: GraphCalendarProvider.push against the Graph fake, with a tiny
https receiver on 127.0.0.1 (http.server + ssl, a self-signed certificate made here). What only
Graph does: what every provider must do is the push contract, ``test_push_contract.py``."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from calsync.providers.base import (
    AccountRef,
    ProviderError,
    PushChannel,
)
from calsync.providers.microsoft import MAX_LIFETIME, GraphCalendarProvider
from tests.peers.graph_fake import GraphFake, start_graph_fake
from tests.peers.tls import write_self_signed_cert

ADA = "ada@example.com"
TOKEN = "ada-access-token-0123456789"
SECRET = "client-state-secret-4f1c9a"
START = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)  # a Monday
CAP = MAX_LIFETIME - timedelta(minutes=5)  # what the adapter asks for at most


# --- an https receiver -------------------------------------------------------------------------


class Receiver:
    """Answers Graph's validation handshake (per path: ``echo`` right, or ``wrong`` text,
    ``status`` 500, ``json`` content type) and records notifications, answering ``status``."""

    def __init__(self, cert: tuple[Path, Path]) -> None:
        self.handshake = "echo"
        self.handshake_by_path: dict[str, str] = {}
        self.status = 202
        self.handshakes: list[tuple[str, str]] = []  # (path, token)
        self.notifications: list[tuple[str, dict[str, Any]]] = []  # (path, body)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*cert)
        self._server = HTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._closed = False

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body["value"][0] for where, body in self.notifications if where == path]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            tokens = parse_qs(parts.query).get("validationToken")
            if tokens is None:
                receiver.notifications.append((parts.path, json.loads(raw)))
                self._answer(receiver.status, "text/plain", b"")
                return
            token = tokens[0]
            receiver.handshakes.append((parts.path, token))
            mode = receiver.handshake_by_path.get(parts.path, receiver.handshake)
            if mode == "echo":
                self._answer(200, "text/plain; charset=utf-8", token.encode())
            elif mode == "wrong":
                self._answer(200, "text/plain", b"not the token")
            elif mode == "status":
                self._answer(500, "text/plain", token.encode())
            else:  # json: the token, but not as text/plain
                self._answer(200, "application/json", token.encode())

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_self_signed_cert(tmp_path_factory.mktemp("receiver-tls"))


@pytest.fixture
def fake() -> Iterator[GraphFake]:
    with start_graph_fake() as server:
        server.add_account(ADA, token=TOKEN)
        yield server


@pytest.fixture
def receiver(cert: tuple[Path, Path]) -> Iterator[Receiver]:
    server = Receiver(cert)
    yield server
    server.close()


@pytest.fixture
def account() -> AccountRef:
    return AccountRef(email=ADA, access_token=TOKEN)


@pytest.fixture
def provider(fake: GraphFake) -> GraphCalendarProvider:
    return GraphCalendarProvider(fake.api_url)


def _push(provider: GraphCalendarProvider) -> Any:
    assert provider.push is not None
    return provider.push


def _watch(
    provider: GraphCalendarProvider,
    account: AccountRef,
    calendar_id: str,
    receiver: Receiver,
    *,
    lifecycle: bool = False,
    expires_at: datetime | None = None,
) -> PushChannel:
    channel: PushChannel = _push(provider).watch(
        account,
        calendar_id,
        address=receiver.url("/hook"),
        secret=SECRET,
        lifecycle_address=receiver.url("/lifecycle") if lifecycle else None,
        expires_at=expires_at or datetime.now(UTC) + timedelta(days=10),
    )
    return channel


def _event(fake: GraphFake, calendar_id: str, subject: str = "Standup") -> dict[str, Any]:
    return fake.put_event(ADA, calendar_id, subject=subject, start=START, end=START + timedelta(1))


def _bodies(fake: GraphFake, method: str) -> list[Any]:
    return [r.body for r in fake.requests if r.method == method and "subscriptions" in r.path]


# --- watch -------------------------------------------------------------------------------------


def test_watch_validates_the_receiver_and_caps_the_expiration(
    fake: GraphFake, provider: GraphCalendarProvider, account: AccountRef, receiver: Receiver
) -> None:
    calendar = fake.add_calendar(ADA, "Work")
    before = datetime.now(UTC)
    channel = _watch(provider, account, calendar.id, receiver)
    after = datetime.now(UTC)

    (subscription,) = fake.subscriptions
    assert channel == PushChannel(subscription.id, "", channel.expires_at)
    assert before + CAP - timedelta(seconds=1) <= channel.expires_at <= after + CAP
    assert abs(subscription.expires_at - channel.expires_at) < timedelta(seconds=1)
    assert subscription.resource == f"me/calendars/{calendar.id}/events"
    assert subscription.calendar_id == calendar.id
    assert subscription.change_types == {"created", "updated", "deleted"}
    assert subscription.client_state == SECRET
    assert subscription.notification_url == receiver.url("/hook")
    assert subscription.lifecycle_url is None
    (body,) = _bodies(fake, "POST")
    assert "lifecycleNotificationUrl" not in body
    assert body["changeType"] == "created,updated,deleted"
    assert body["expirationDateTime"].endswith("Z")
    # the handshake reached the receiver, URL-decoded, before the subscription existed
    ((path, token),) = receiver.handshakes
    assert path == "/hook" and token.startswith("Validation: ")
    assert [v.ok for v in fake.validations] == [True]
    assert receiver.notifications == []


def test_watch_keeps_an_expiration_graph_allows(
    fake: GraphFake, provider: GraphCalendarProvider, account: AccountRef, receiver: Receiver
) -> None:
    wanted = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    channel = _watch(provider, account, fake.default_calendar(ADA).id, receiver, expires_at=wanted)
    assert channel.expires_at == wanted


@pytest.mark.parametrize("mode", ["wrong", "status", "json", "unreachable"])
def test_a_failed_handshake_leaves_no_subscription(
    fake: GraphFake,
    provider: GraphCalendarProvider,
    account: AccountRef,
    receiver: Receiver,
    mode: str,
) -> None:
    if mode == "unreachable":
        receiver.close()
    receiver.handshake = mode
    with pytest.raises(ProviderError) as caught:
        _watch(provider, account, fake.default_calendar(ADA).id, receiver)
    assert type(caught.value) is ProviderError
    message = str(caught.value)
    assert "validation handshake" in message
    assert SECRET not in message and TOKEN not in message and receiver.url("/") not in message
    assert fake.subscriptions == []
    assert [v.ok for v in fake.validations] == [False]


def test_a_failed_lifecycle_handshake_leaves_no_subscription(
    fake: GraphFake, provider: GraphCalendarProvider, account: AccountRef, receiver: Receiver
) -> None:
    receiver.handshake_by_path["/lifecycle"] = "wrong"
    with pytest.raises(ProviderError, match="validation handshake"):
        _watch(provider, account, fake.default_calendar(ADA).id, receiver, lifecycle=True)
    assert [path for path, _ in receiver.handshakes] == ["/hook", "/lifecycle"]
    assert fake.subscriptions == []


def test_an_overlong_secret_is_refused_before_asking(
    fake: GraphFake, provider: GraphCalendarProvider, account: AccountRef, receiver: Receiver
) -> None:
    with pytest.raises(ValueError, match="255"):
        _push(provider).watch(
            account,
            fake.default_calendar(ADA).id,
            address=receiver.url("/hook"),
            secret="x" * 256,
            lifecycle_address=None,
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
    assert fake.requests == []


# --- notifications -----------------------------------------------------------------------------


def test_changes_are_notified_with_client_state_and_subscription_id(
    fake: GraphFake, provider: GraphCalendarProvider, account: AccountRef, receiver: Receiver
) -> None:
    work = fake.add_calendar(ADA, "Work")
    channel = _watch(provider, account, work.id, receiver)
    event = _event(fake, work.id)
    fake.update_event(ADA, work.id, event["id"], subject="Moved")
    fake.delete_event(ADA, work.id, event["id"])
    _event(fake, fake.default_calendar(ADA).id)  # another calendar: not watched

    deliveries = fake.wait_deliveries(3)
    fake.wait_idle()
    assert [(d.kind, d.status) for d in fake.deliveries] == [
        ("created", 202),
        ("updated", 202),
        ("deleted", 202),
    ]
    assert all(d.accepted and d.subscription_id == channel.id for d in deliveries)
    notes = receiver.bodies("/hook")
    user_id = fake.account(ADA).id
    assert [n["changeType"] for n in notes] == ["created", "updated", "deleted"]
    for note in notes:
        assert note["clientState"] == SECRET
        assert note["subscriptionId"] == channel.id
        assert note["tenantId"] == fake.tenant_id
        assert note["resource"] == f"Users/{user_id}/Events/{event['id']}"
        assert note["resourceData"]["id"] == event["id"]
        assert note["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"
        assert note["subscriptionExpirationDateTime"].endswith("Z")
    assert notes[1]["resourceData"]["@odata.etag"].startswith('W/"ck')
    assert "@odata.etag" not in notes[2]["resourceData"]


def test_occurrence_helpers_and_calendar_removal_notify(
    fake: GraphFake, provider: GraphCalendarProvider, account: AccountRef, receiver: Receiver
) -> None:
    work = fake.add_calendar(ADA, "Work")
    series = fake.put_event(
        ADA,
        work.id,
        subject="weekly",
        start=START,
        end=START + timedelta(hours=1),
        recurrence={
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "numbered", "numberOfOccurrences": 4, "startDate": "2030-03-04"},
        },
    )
    channel = _watch(provider, account, work.id, receiver)
    moved = fake.modify_occurrence(ADA, work.id, series["id"], date(2030, 3, 11), subject="x")
    fake.delete_occurrence(ADA, work.id, series["id"], date(2030, 3, 18))
    fake.remove_calendar(ADA, work.id)

    fake.wait_deliveries(4)
    fake.wait_idle()
    got = [(n["changeType"], n["resourceData"]["id"]) for n in receiver.bodies("/hook")]
    assert got == [
        ("updated", moved["id"]),
        ("deleted", fake.occurrence_id(series["id"], date(2030, 3, 18))),
        ("deleted", series["id"]),
        ("deleted", moved["id"]),
    ]
    assert {d.subscription_id for d in fake.deliveries} == {channel.id}


def test_refused_and_failed_deliveries_are_recorded(
    fake: GraphFake, provider: GraphCalendarProvider, account: AccountRef, receiver: Receiver
) -> None:
    calendar_id = fake.default_calendar(ADA).id
    _watch(provider, account, calendar_id, receiver)
    receiver.status = 500
    _event(fake, calendar_id, "refused")
    fake.wait_deliveries(1)
    receiver.close()
    _event(fake, calendar_id, "unreachable")
    first, second = fake.wait_deliveries(2)
    assert (first.status, first.error, first.accepted) == (500, None, False)
    assert second.status is None and second.error is not None and not second.accepted


def test_stop_ends_the_delivery_thread(cert: tuple[Path, Path]) -> None:
    receiver = Receiver(cert)
    try:
        with start_graph_fake() as fake:
            fake.add_account(ADA, token=TOKEN)
            provider = GraphCalendarProvider(fake.api_url)
            account = AccountRef(email=ADA, access_token=TOKEN)
            _watch(provider, account, fake.default_calendar(ADA).id, receiver)
            _event(fake, fake.default_calendar(ADA).id)
            fake.wait_deliveries(1)
        assert not [t for t in threading.enumerate() if t.name == "graph-fake-deliveries"]
        _event(fake, fake.default_calendar(ADA).id)  # after stop: nothing is sent
        assert len(fake.deliveries) == 1
    finally:
        receiver.close()


# --- renew / unwatch ---------------------------------------------------------------------------


def test_renew_extends_up_to_the_cap(
    fake: GraphFake, provider: GraphCalendarProvider, account: AccountRef, receiver: Receiver
) -> None:
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    channel = _watch(provider, account, fake.default_calendar(ADA).id, receiver, expires_at=soon)
    push = _push(provider)

    later = soon + timedelta(days=1)
    renewed = push.renew(account, channel, expires_at=later)
    assert renewed == PushChannel(channel.id, "", later)
    assert fake.subscriptions[0].expires_at == later

    before = datetime.now(UTC)
    capped = push.renew(account, channel, expires_at=soon + timedelta(days=30))
    after = datetime.now(UTC)
    assert capped is not None and capped.id == channel.id
    assert before + CAP - timedelta(seconds=1) <= capped.expires_at <= after + CAP
    assert [set(b) for b in _bodies(fake, "PATCH")] == [{"expirationDateTime"}] * 2
    assert receiver.handshakes == [("/hook", receiver.handshakes[0][1])]  # no new handshake


# --- lifecycle ---------------------------------------------------------------------------------


def test_lifecycle_notifications_reach_the_lifecycle_url(
    fake: GraphFake, provider: GraphCalendarProvider, account: AccountRef, receiver: Receiver
) -> None:
    channel = _watch(provider, account, fake.default_calendar(ADA).id, receiver, lifecycle=True)
    assert [path for path, _ in receiver.handshakes] == ["/hook", "/lifecycle"]
    assert fake.subscriptions[0].lifecycle_url == receiver.url("/lifecycle")
    assert _bodies(fake, "POST")[0]["lifecycleNotificationUrl"] == receiver.url("/lifecycle")

    for event in ("reauthorizationRequired", "missed", "subscriptionRemoved"):
        fake.send_lifecycle(channel.id, event)
    deliveries = fake.wait_deliveries(3)
    assert [(d.kind, d.status) for d in deliveries] == [
        ("reauthorizationRequired", 202),
        ("missed", 202),
        ("subscriptionRemoved", 202),
    ]
    notes = receiver.bodies("/lifecycle")
    assert [n["lifecycleEvent"] for n in notes] == [d.kind for d in deliveries]
    for note in notes:
        assert note["subscriptionId"] == channel.id
        assert note["clientState"] == SECRET
        assert note["tenantId"] == fake.tenant_id
        assert "changeType" not in note
    assert receiver.bodies("/hook") == []
    assert fake.subscriptions == []  # subscriptionRemoved deleted it
    assert _push(provider).renew(account, channel, expires_at=channel.expires_at) is None


def test_send_lifecycle_needs_a_lifecycle_url(
    fake: GraphFake, provider: GraphCalendarProvider, account: AccountRef, receiver: Receiver
) -> None:
    channel = _watch(provider, account, fake.default_calendar(ADA).id, receiver)
    with pytest.raises(ValueError, match="lifecycleNotificationUrl"):
        fake.send_lifecycle(channel.id, "missed")
    with pytest.raises(ValueError):
        fake.send_lifecycle(channel.id, "somethingElse")
    with pytest.raises(KeyError):
        fake.send_lifecycle("no-such-subscription", "missed")


# --- the fake's subscription endpoints ---------------------------------------------------------


@pytest.fixture
def client(fake: GraphFake) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=fake.api_url + "/", headers=headers, timeout=15.0) as http:
        yield http


def _subscription_body(fake: GraphFake, receiver: Receiver, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.url("/hook"),
        "resource": f"me/calendars/{fake.default_calendar(ADA).id}/events",
        "expirationDateTime": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        "clientState": SECRET,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"changeType": None}, "changeType"),
        ({"changeType": "created,moved"}, "changeType"),
        ({"resource": "me/messages"}, "not supported"),
        ({"resource": "me/calendars/x/events/y"}, "not supported"),
        ({"notificationUrl": "http://127.0.0.1:9/hook"}, "https"),
        ({"lifecycleNotificationUrl": "ftp://127.0.0.1/x"}, "https"),
        ({"expirationDateTime": "2000-01-01T00:00:00Z"}, "future"),
        ({"expirationDateTime": "tomorrow"}, "valid date-time"),
        ({"clientState": "x" * 256}, "255"),
        ({"includeResourceData": False, "bogus": 1}, "bogus"),
    ],
)
def test_fake_refuses_bad_subscriptions(
    fake: GraphFake,
    client: httpx.Client,
    receiver: Receiver,
    changes: dict[str, Any],
    says: str,
) -> None:
    response = client.post("subscriptions", json=_subscription_body(fake, receiver, **changes))
    assert response.status_code == 400
    assert says in response.json()["error"]["message"]
    assert fake.subscriptions == [] and receiver.handshakes == []


def test_fake_caps_event_subscriptions_at_4230_minutes(
    fake: GraphFake, client: httpx.Client, receiver: Receiver
) -> None:
    too_far = datetime.now(UTC) + timedelta(minutes=4231)
    response = client.post(
        "subscriptions",
        json=_subscription_body(fake, receiver, expirationDateTime=too_far.isoformat()),
    )
    assert response.status_code == 400
    assert "4230 minutes" in response.json()["error"]["message"]
    almost = (datetime.now(UTC) + timedelta(minutes=4229)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    created = client.post(
        "subscriptions", json=_subscription_body(fake, receiver, expirationDateTime=almost)
    )
    assert created.status_code == 201
    data = created.json()
    assert data["expirationDateTime"] == almost
    assert {"id", "applicationId", "creatorId", "clientState", "lifecycleNotificationUrl"} <= set(
        data
    )
    assert data["creatorId"] == fake.account(ADA).id
    sub_id = data["id"]
    patched = client.patch(
        f"subscriptions/{sub_id}", json={"expirationDateTime": too_far.isoformat()}
    )
    assert patched.status_code == 400
    assert client.get(f"subscriptions/{sub_id}").json()["expirationDateTime"] == almost
    assert [s["id"] for s in client.get("subscriptions").json()["value"]] == [sub_id]
    assert client.post(f"subscriptions/{sub_id}/reauthorize").status_code == 204
    assert client.delete(f"subscriptions/{sub_id}").status_code == 204
    assert client.get(f"subscriptions/{sub_id}").status_code == 404
    assert client.delete(f"subscriptions/{sub_id}").status_code == 404


def test_fake_keeps_subscriptions_per_mailbox(
    fake: GraphFake, client: httpx.Client, receiver: Receiver
) -> None:
    created = client.post("subscriptions", json=_subscription_body(fake, receiver))
    sub_id = created.json()["id"]
    fake.add_account("bob@example.com", token="tok-bob")
    bob = {"Authorization": "Bearer tok-bob"}
    assert client.get(f"subscriptions/{sub_id}", headers=bob).status_code == 404
    assert client.delete(f"subscriptions/{sub_id}", headers=bob).status_code == 404
    assert client.get("subscriptions", headers=bob).json()["value"] == []
    assert len(fake.subscriptions) == 1


def test_fake_me_events_watches_the_default_calendar(
    fake: GraphFake, client: httpx.Client, receiver: Receiver
) -> None:
    response = client.post(
        "subscriptions",
        json=_subscription_body(fake, receiver, resource="/me/events", changeType="created"),
    )
    assert response.status_code == 201
    work = fake.add_calendar(ADA, "Work")
    _event(fake, work.id)  # not the default calendar
    event = _event(fake, fake.default_calendar(ADA).id)
    fake.update_event(ADA, fake.default_calendar(ADA).id, event["id"], subject="y")  # not asked
    assert [(d.kind, d.status) for d in fake.wait_idle()] == [("created", 202)]
    assert receiver.bodies("/hook")[0]["resourceData"]["id"] == event["id"]


def test_fake_expired_subscriptions_disappear(
    fake: GraphFake, client: httpx.Client, receiver: Receiver
) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    response = client.post(
        "subscriptions",
        json=_subscription_body(fake, receiver, expirationDateTime=soon.isoformat()),
    )
    assert response.status_code == 201
    (subscription,) = fake.subscriptions
    subscription_id = subscription.id
    fake.remove_subscription("unknown")  # no-op
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while fake.subscriptions and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    assert fake.subscriptions == []
    assert client.get(f"subscriptions/{subscription_id}").status_code == 404


def test_refusal_messages_never_carry_secrets() -> None:
    from calsync.providers.microsoft.push import _scrubbed

    said = "Bad clientState 'long-secret-value' for https://host/hook?k=v\nsee\tdocs"
    assert (
        _scrubbed(said, ["long-secret-value", None])
        == "Bad clientState '[hidden]' for [url] see docs"
    )
    assert (
        _scrubbed("validationToken mismatch", ["T"]) == ""
    )  # a short one: Graph's text is left out
    assert _scrubbed("x" * 300, []).endswith("...") and len(_scrubbed("x" * 300, [])) == 200


def test_fake_subscriptions_read_as_graph_resources(
    fake: GraphFake, provider: GraphCalendarProvider, account: AccountRef, receiver: Receiver
) -> None:
    calendar_id = fake.default_calendar(ADA).id
    channel = _watch(provider, account, calendar_id, receiver)
    (subscription,) = fake.subscriptions
    assert subscription["id"] == channel.id
    assert subscription.get("resource", "").endswith(f"{calendar_id}/events")
    assert subscription["clientState"] == SECRET and subscription.get("nope") is None
    assert subscription["applicationId"] == fake.application_id
