"""The push contract: what every provider's ``PushChannels`` and push receiver must do.

Parametrised over the Google Calendar fake and the Microsoft Graph fake, as the read contract
(``test_contract.py``) is over every adapter. Notifications travel for real: each fake POSTs
them to a small https receiver on 127.0.0.1, and the kind's own ``PushReceiver`` (from its
kind spec) reads what arrived. What only one provider does (Google's ``sync`` message and
channel lifetimes, Graph's validation handshake modes, lifecycle stream and expiration cap)
stays in ``test_google_push.py`` / ``test_graph_push.py``.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from calsync.providers import google, microsoft
from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarGone,
    ProviderError,
    ProviderUnreachable,
    PushChannel,
    PushChannels,
    RateLimitedByProvider,
)
from calsync.providers.google import GoogleCalendarProvider
from calsync.providers.kinds import (
    PushDelivery,
    PushReceiver,
    PushRequest,
    Signal,
    UnknownPushStream,
)
from calsync.providers.microsoft import GraphCalendarProvider
from tests.peers.google_fake import GoogleFake, start_google_fake
from tests.peers.graph_fake import GraphFake, start_graph_fake
from tests.peers.tls import write_self_signed_cert

EMAIL = "ada@example.com"
TOKEN = "ada-access-token-0123456789"
SECRET = "channel-secret-7Qm2vX9kLp"
ACCOUNT = AccountRef(EMAIL, access_token=TOKEN)


# --- an https receiver for every provider ------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def as_push_request(self, stream: str = "") -> PushRequest:
        return PushRequest(stream, self.headers, self.query, self.body)


class Receiver(ThreadingHTTPServer):
    """Records every POST. Echoes a ``validationToken`` as text (Graph's handshake); answers
    anything else with ``status``."""

    daemon_threads = False  # so that server_close() joins the request threads

    def __init__(self, context: ssl.SSLContext, status: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.status = status
        self.received: list[Received] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}{path}"

    def record(self, request: Received) -> None:
        with self._changed:
            self.received.append(request)
            self._changed.notify_all()

    def wait_for(self, found: Callable[[list[Received]], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not found(list(self.received)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not received in time: {self.received}")
                self._changed.wait(left)

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.record(Received(parts.path, query, headers, body))
        token = query.get("validationToken")
        answer = token.encode() if token is not None else b""
        self.send_response(200 if token is not None else self.server.status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- the providers, behind one face ------------------------------------------------------------


class Peer:
    """A provider fake, its adapter's push channels and its kind's push receiver."""

    name: str
    push: PushChannels
    receiver: PushReceiver
    calendar_id: str
    missing_calendar_id: str
    can_renew: bool  # False: renew always answers None (watch anew instead)
    not_https_words: str  # what the refusal of an http address names

    def push_at(self, api_url: str) -> PushChannels:
        raise NotImplementedError

    def api_url_at(self, port: int) -> str:
        raise NotImplementedError

    def change(self) -> None:
        """Make an event change in ``calendar_id``."""
        raise NotImplementedError

    def channel_ids(self) -> set[str]:
        raise NotImplementedError

    def attempts_to_notify(self) -> int:
        """How many times the provider tried to reach a notification address (deliveries,
        subscription checks)."""
        raise NotImplementedError

    def expiry(self, channel_id: str) -> datetime:
        raise NotImplementedError

    def forget(self, channel_id: str) -> None:
        """The provider drops the channel on its own (expired, removed)."""
        raise NotImplementedError

    def fail_next_push_call(self, status: int, retry_after: float | None = None) -> None:
        raise NotImplementedError

    def wait_idle(self) -> None:
        raise NotImplementedError


def _receiver_of(receiver: PushReceiver | None) -> PushReceiver:
    assert receiver is not None, "a kind with push channels has a push receiver"
    return receiver


class GooglePeer(Peer):
    name = "google"
    missing_calendar_id = "gone@example.com"
    can_renew = False
    not_https_words = "push.webhookUrlNotHttps"

    def __init__(self, fake: GoogleFake) -> None:
        self.fake = fake
        self.receiver = _receiver_of(google.KIND_SPEC.push)
        self.calendar_id = EMAIL
        fake.add_account(EMAIL, token=TOKEN)
        fake.add_calendar(EMAIL, EMAIL, "Ada Lovelace", primary=True)
        self.push = self.push_at(fake.api_url)

    def push_at(self, api_url: str) -> PushChannels:
        channels = GoogleCalendarProvider(api_url, timeout=5.0).push
        assert channels is not None
        return channels

    def api_url_at(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/calendar/v3"

    def change(self) -> None:
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        self.fake.put_event(
            EMAIL,
            self.calendar_id,
            {
                "summary": "changed",
                "start": {"dateTime": start.isoformat()},
                "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
            },
        )

    def channel_ids(self) -> set[str]:
        return {c.id for c in self.fake.channels}

    def attempts_to_notify(self) -> int:
        return len(self.fake.wait_idle())

    def expiry(self, channel_id: str) -> datetime:
        return next(c.expiration for c in self.fake.channels if c.id == channel_id)

    def forget(self, channel_id: str) -> None:
        clock = self.fake.clock
        # Google drops a channel when it ends: move the fake's clock past every channel's end.
        self.fake.clock = lambda: clock() + timedelta(days=30)

    def fail_next_push_call(self, status: int, retry_after: float | None = None) -> None:
        self.fake.fail_next(status, retry_after=retry_after)

    def wait_idle(self) -> None:
        self.fake.wait_idle()
        assert self.fake.violations == []
        assert self.fake.response_violations == []
        assert self.fake.unimplemented == []


class GraphPeer(Peer):
    name = "microsoft"
    missing_calendar_id = "AAMkcalnosuchcalendar"
    can_renew = True
    not_https_words = "400 InvalidRequest"

    def __init__(self, fake: GraphFake) -> None:
        self.fake = fake
        self.receiver = _receiver_of(microsoft.KIND_SPEC.push)
        fake.add_account(EMAIL, token=TOKEN)
        self.calendar_id = fake.default_calendar(EMAIL).id
        self.push = self.push_at(fake.api_url)

    def push_at(self, api_url: str) -> PushChannels:
        channels = GraphCalendarProvider(api_url, timeout=5.0).push
        assert channels is not None
        return channels

    def api_url_at(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/v1.0"

    def change(self) -> None:
        start = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
        self.fake.put_event(
            EMAIL, self.calendar_id, subject="changed", start=start, end=start + timedelta(1)
        )

    def channel_ids(self) -> set[str]:
        return {s.id for s in self.fake.subscriptions}

    def attempts_to_notify(self) -> int:
        return len(self.fake.validations) + len(self.fake.wait_idle())

    def expiry(self, channel_id: str) -> datetime:
        return next(s.expires_at for s in self.fake.subscriptions if s.id == channel_id)

    def forget(self, channel_id: str) -> None:
        self.fake.remove_subscription(channel_id)

    def fail_next_push_call(self, status: int, retry_after: float | None = None) -> None:
        self.fake.fail_next(status, retry_after=retry_after, path_contains="/subscriptions")

    def wait_idle(self) -> None:
        self.fake.wait_idle()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    cert, key = write_self_signed_cert(Path(tmp_path_factory.mktemp("push-contract-tls")))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture(scope="module")
def google_server() -> Iterator[GoogleFake]:
    with start_google_fake() as fake:
        yield fake


@pytest.fixture(params=["google", "microsoft"])
def peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    if request.param == "google":
        fake: GoogleFake = request.getfixturevalue("google_server")
        fake.reset()
        clock = fake.clock
        google_peer = GooglePeer(fake)
        yield google_peer
        fake.clock = clock
        google_peer.wait_idle()
        return
    with start_graph_fake() as graph:
        graph_peer = GraphPeer(graph)
        yield graph_peer
        graph_peer.wait_idle()


@pytest.fixture
def receiver(tls: ssl.SSLContext, peer: Peer) -> Iterator[Receiver]:
    https = Receiver(tls, peer.receiver.acknowledge_status)
    try:
        yield https
    finally:
        try:
            peer.wait_idle()
        finally:
            https.close()


def watch(
    peer: Peer,
    receiver: Receiver,
    *,
    calendar_id: str | None = None,
    expires_in: timedelta = timedelta(hours=2),
    account: AccountRef = ACCOUNT,
    push: PushChannels | None = None,
) -> PushChannel:
    lifecycle = peer.receiver.lifecycle_stream
    return (push or peer.push).watch(
        account,
        calendar_id or peer.calendar_id,
        address=receiver.url(f"/push/{peer.name}"),
        secret=SECRET,
        lifecycle_address=receiver.url(f"/push/{peer.name}/{lifecycle}") if lifecycle else None,
        expires_at=datetime.now(UTC) + expires_in,
    )


def raises(kind: type[ProviderError], call: Callable[[], object]) -> ProviderError:
    """The error ``call`` raises; its message never carries the token or the secret."""
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert SECRET not in message and TOKEN not in message
    return caught.value


def parsed(peer: Peer, request: Received) -> PushDelivery:
    stream = request.path.removeprefix(f"/push/{peer.name}").strip("/")
    return peer.receiver.parse(request.as_push_request(stream))


def changes_for(peer: Peer, channel: PushChannel, received: list[Received]) -> int:
    """How many CHANGED notifications of ``channel`` the kind's receiver reads in ``received``."""
    return sum(
        1
        for request in received
        for n in parsed(peer, request).notifications
        if n.channel_id == channel.id and n.signal is Signal.CHANGED
    )


# --- subscribe ---------------------------------------------------------------------------------


def test_watch_returns_a_channel_the_provider_holds(peer: Peer, receiver: Receiver) -> None:
    asked = datetime.now(UTC) + timedelta(hours=2)
    channel = watch(peer, receiver)
    assert channel.id and peer.channel_ids() == {channel.id}
    assert abs(channel.expires_at - asked) < timedelta(seconds=5)
    assert abs(peer.expiry(channel.id) - channel.expires_at) < timedelta(seconds=1)
    second = watch(peer, receiver)
    assert second.id != channel.id and peer.channel_ids() == {channel.id, second.id}


def test_a_change_is_notified_and_read_by_the_kinds_receiver(
    peer: Peer, receiver: Receiver
) -> None:
    channel = watch(peer, receiver)
    peer.change()
    receiver.wait_for(lambda got: changes_for(peer, channel, got) >= 1)
    for request in receiver.received:
        delivery = parsed(peer, request)
        if delivery.handshake is not None:  # a subscription check names no channel
            assert delivery.notifications == ()
            assert delivery.handshake == request.query["validationToken"]
            continue
        assert delivery.notifications, request
        for notification in delivery.notifications:  # what the service then verifies
            assert (notification.channel_id, notification.secret) == (channel.id, SECRET)


def test_the_receiver_reads_a_forged_secret_as_presented(peer: Peer, receiver: Receiver) -> None:
    """The receiver reports the secret a delivery presents, so the service's check sees a
    forgery; a delivery to a stream the kind does not have is refused."""
    channel = watch(peer, receiver)
    peer.change()
    receiver.wait_for(lambda got: changes_for(peer, channel, got) >= 1)
    real = next(r for r in receiver.received if changes_for(peer, channel, [r]))
    forged = Received(
        real.path,
        real.query,
        {k: v.replace(SECRET, "forged") for k, v in real.headers.items()},
        real.body.replace(SECRET.encode(), b"forged"),
    )
    secrets_seen = {n.secret for n in parsed(peer, forged).notifications}
    assert secrets_seen == {"forged"}
    with pytest.raises(UnknownPushStream):
        peer.receiver.parse(real.as_push_request("no-such-stream"))


def test_an_http_address_is_refused(peer: Peer, receiver: Receiver) -> None:
    address = f"http://127.0.0.1:9/push/{peer.name}"

    def watch_http() -> PushChannel:
        return peer.push.watch(
            ACCOUNT,
            peer.calendar_id,
            address=address,
            secret=SECRET,
            lifecycle_address=None,
            expires_at=datetime.now(UTC) + timedelta(hours=2),
        )

    error = raises(ProviderError, watch_http)
    assert type(error) is ProviderError
    assert peer.not_https_words in str(error) and address not in str(error)
    assert peer.channel_ids() == set()
    assert peer.attempts_to_notify() == 0


def test_a_refused_or_missing_token_is_auth_rejected(peer: Peer, receiver: Receiver) -> None:
    stale = AccountRef(EMAIL, access_token="expired-token")
    error = raises(AuthRejected, lambda: watch(peer, receiver, account=stale))
    assert "expired-token" not in str(error)
    raises(AuthRejected, lambda: watch(peer, receiver, account=AccountRef(EMAIL)))
    peer.fail_next_push_call(401)
    raises(AuthRejected, lambda: watch(peer, receiver))
    assert peer.channel_ids() == set()
    assert receiver.received == []  # not even a subscription check


def test_watching_an_unknown_calendar_is_calendar_gone(peer: Peer, receiver: Receiver) -> None:
    raises(CalendarGone, lambda: watch(peer, receiver, calendar_id=peer.missing_calendar_id))
    assert peer.channel_ids() == set()


@pytest.mark.parametrize("operation", ["watch", "renew", "unwatch"])
def test_throttling_outages_and_refusals_map_to_provider_errors(
    peer: Peer, receiver: Receiver, operation: str
) -> None:
    if operation == "renew" and not peer.can_renew:
        pytest.skip("this provider renews without asking (renew is always None)")
    channel = watch(peer, receiver)

    def run() -> object:
        if operation == "watch":
            return watch(peer, receiver)
        if operation == "renew":
            return peer.push.renew(ACCOUNT, channel, expires_at=channel.expires_at)
        return peer.push.unwatch(ACCOUNT, channel)

    peer.fail_next_push_call(429, retry_after=7)
    throttled = raises(RateLimitedByProvider, run)
    assert isinstance(throttled, RateLimitedByProvider) and throttled.retry_after == 7
    peer.fail_next_push_call(503)
    raises(ProviderUnreachable, run)
    peer.fail_next_push_call(500)
    raises(ProviderUnreachable, run)
    peer.fail_next_push_call(401)
    raises(AuthRejected, run)
    assert channel.id in peer.channel_ids()


def test_an_unreachable_provider_is_provider_unreachable(peer: Peer, receiver: Receiver) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    push = peer.push_at(peer.api_url_at(port))
    error = raises(ProviderUnreachable, lambda: watch(peer, receiver, push=push))
    assert "Error" not in str(error)  # plain words, not an exception class name


# --- renew -------------------------------------------------------------------------------------


def test_renew_extends_the_channel_or_says_it_cannot(peer: Peer, receiver: Receiver) -> None:
    channel = watch(peer, receiver, expires_in=timedelta(hours=1))
    later = channel.expires_at + timedelta(hours=5)
    renewed = peer.push.renew(ACCOUNT, channel, expires_at=later)
    if renewed is None:  # the caller watches anew; the old channel is untouched meanwhile
        assert not peer.can_renew
        assert peer.expiry(channel.id) == channel.expires_at
        return
    assert renewed.id == channel.id
    assert abs(renewed.expires_at - later) < timedelta(seconds=1)
    assert abs(peer.expiry(channel.id) - renewed.expires_at) < timedelta(seconds=1)


def test_renewing_a_channel_the_provider_dropped_is_none(peer: Peer, receiver: Receiver) -> None:
    channel = watch(peer, receiver)
    peer.forget(channel.id)
    assert peer.channel_ids() == set()
    assert peer.push.renew(ACCOUNT, channel, expires_at=channel.expires_at) is None


# --- stop --------------------------------------------------------------------------------------


def test_unwatch_stops_notifications(peer: Peer, receiver: Receiver) -> None:
    channel = watch(peer, receiver)
    peer.wait_idle()
    peer.push.unwatch(ACCOUNT, channel)
    assert peer.channel_ids() == set()
    before = len(receiver.received)
    peer.change()
    peer.wait_idle()
    assert len(receiver.received) == before
    peer.push.unwatch(ACCOUNT, channel)  # stopped already: not an error
    assert peer.channel_ids() == set()
    assert peer.push.renew(ACCOUNT, channel, expires_at=channel.expires_at) is None


def test_unwatching_a_channel_the_provider_dropped_is_fine(peer: Peer, receiver: Receiver) -> None:
    channel = watch(peer, receiver)
    peer.forget(channel.id)
    peer.push.unwatch(ACCOUNT, channel)
    assert peer.channel_ids() == set()
