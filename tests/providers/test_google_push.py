"""Google push channels (events.watch / channels.stop) against the Google Calendar fake: what
only Google does (what every provider must do is the push contract, ``test_push_contract.py``).

Notifications travel for real: the fake POSTs them from its delivery thread to a tiny https
receiver started here on 127.0.0.1 (``http.server`` with a self-signed certificate made with
``cryptography``), which records every request. Each test's fixture checks at the end that
the adapter's requests conformed to Google's discovery document.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarGone,
    ProviderError,
    PushChannel,
    PushChannels,
    RateLimitedByProvider,
)
from calsync.providers.google import GoogleCalendarProvider
from tests.peers.google_fake import GoogleFake, start_google_fake
from tests.peers.tls import write_self_signed_cert

EMAIL = "ada@example.com"
TOKEN = "ya29.secret-access-token-ada"
CAL = EMAIL
OTHER = "team@group.calendar.google.com"
SECRET = "channel-secret-7Qm2vX9kLp"
ACCOUNT = AccountRef(EMAIL, access_token=TOKEN)
WEEK = timedelta(seconds=604800)


# --- an https receiver -------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.record(Received("POST", self.path, headers, body))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Receiver(ThreadingHTTPServer):
    """Records every POST; answers ``status``. ``close()`` joins its threads."""

    daemon_threads = False  # so that server_close() joins the request threads

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.status = 200
        self.received: list[Received] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}/push/google"

    def record(self, request: Received) -> None:
        with self._changed:
            self.received.append(request)
            self._changed.notify_all()

    def wait(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.received)} of {count} notifications came")
                self._changed.wait(left)
            return list(self.received)

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    cert, key = write_self_signed_cert(tmp_path_factory.mktemp("receiver-tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


# --- the fake and the adapter ------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[GoogleFake]:
    with start_google_fake() as fake:
        yield fake


@pytest.fixture
def receiver(tls: ssl.SSLContext, server: GoogleFake) -> Iterator[Receiver]:
    """An https receiver that stays up until the fake has sent what it queued."""
    https = Receiver(tls)
    try:
        yield https
    finally:
        try:
            server.wait_idle()
        finally:
            https.close()


@pytest.fixture
def fake(server: GoogleFake) -> Iterator[GoogleFake]:
    fake = server
    fake.reset()
    clock = fake.clock
    fake.add_account(EMAIL, token=TOKEN)
    fake.add_calendar(EMAIL, CAL, "Ada Lovelace", primary=True, time_zone="Europe/Berlin")
    fake.add_calendar(EMAIL, OTHER, "Team")
    yield fake
    fake.clock = clock
    fake.wait_idle()
    assert fake.violations == []
    assert fake.response_violations == []
    assert fake.unimplemented == []


@pytest.fixture
def push(fake: GoogleFake) -> PushChannels:
    channels = GoogleCalendarProvider(fake.api_url, timeout=5.0).push
    assert channels is not None
    return channels


def event(event_id: str, days: int = 1) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    return {
        "id": event_id,
        "summary": event_id,
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
    }


def watch(
    push: PushChannels,
    address: str,
    *,
    calendar_id: str = CAL,
    expires_in: timedelta = timedelta(days=2),
    account: AccountRef = ACCOUNT,
) -> PushChannel:
    return push.watch(
        account,
        calendar_id,
        address=address,
        secret=SECRET,
        lifecycle_address=None,
        expires_at=datetime.now(UTC) + expires_in,
    )


@contextmanager
def socket_port() -> Iterator[int]:
    """A free 127.0.0.1 port; nothing listens there once the block ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


def raises(kind: type[ProviderError], call: Callable[[], object]) -> ProviderError:
    with pytest.raises(kind) as caught:
        call()
    message = str(caught.value)
    assert SECRET not in message and TOKEN not in message
    return caught.value


# --- watch -------------------------------------------------------------------------------------


def test_watch_returns_the_channel_google_made(
    fake: GoogleFake, push: PushChannels, receiver: Receiver
) -> None:
    asked = datetime.now(UTC) + timedelta(days=2)
    channel = push.watch(
        ACCOUNT,
        CAL,
        address=receiver.url,
        secret=SECRET,
        lifecycle_address="https://ignored.example/lifecycle",
        expires_at=asked,
    )
    assert uuid.UUID(channel.id).version == 4
    assert abs(channel.expires_at - asked) < timedelta(seconds=3)
    [stored] = fake.channels
    assert (stored.id, stored.resource_id) == (channel.id, channel.resource_id)
    assert stored.expiration == channel.expires_at  # the answer's milliseconds, exactly
    assert (stored.address, stored.token, stored.calendar_id) == (receiver.url, SECRET, CAL)
    assert [r.status for r in fake.requests_for("events.watch")] == [200]

    again = watch(push, receiver.url)  # the resource id names the calendar, not the channel
    assert again.id != channel.id and again.resource_id == channel.resource_id
    other = watch(push, receiver.url, calendar_id=OTHER)
    assert other.resource_id != channel.resource_id
    assert {c.id for c in fake.channels} == {channel.id, again.id, other.id}


def test_google_shortens_a_long_lifetime(
    fake: GoogleFake, push: PushChannels, receiver: Receiver
) -> None:
    channel = watch(push, receiver.url, expires_in=timedelta(days=30))
    assert abs(channel.expires_at - (datetime.now(UTC) + WEEK)) < timedelta(seconds=5)
    assert fake.channels[0].expiration == channel.expires_at


def test_sync_then_exists_notifications(
    fake: GoogleFake, push: PushChannels, receiver: Receiver
) -> None:
    channel = watch(push, receiver.url)
    [sync] = receiver.wait(1)
    assert sync.method == "POST" and sync.path == "/push/google" and sync.body == b""
    assert sync.headers["x-goog-channel-id"] == channel.id
    assert sync.headers["x-goog-channel-token"] == SECRET
    assert sync.headers["x-goog-resource-id"] == channel.resource_id
    assert sync.headers["x-goog-resource-state"] == "sync"
    assert sync.headers["x-goog-message-number"] == "1"
    assert sync.headers["x-goog-resource-uri"].startswith(fake.api_url + "/calendars/")
    expiration = sync.headers["x-goog-channel-expiration"]
    assert expiration.endswith(" GMT")
    assert expiration == channel.expires_at.strftime("%a, %d %b %Y %H:%M:%S GMT")

    fake.put_event(EMAIL, CAL, event("standup"))
    fake.put_event(EMAIL, CAL, event("standup", days=2))  # changed
    fake.delete_event(EMAIL, CAL, "standup")
    fake.put_event(EMAIL, OTHER, event("elsewhere"))  # another calendar: not this channel
    received = receiver.wait(4)
    fake.wait_idle()
    assert len(receiver.received) == 4
    for number, message in enumerate(received[1:], start=2):
        assert message.headers["x-goog-resource-state"] == "exists"
        assert message.headers["x-goog-message-number"] == str(number)
        assert message.headers["x-goog-channel-id"] == channel.id
        assert message.headers["x-goog-channel-token"] == SECRET
        assert message.body == b""
    assert [(d.channel_id, d.state, d.message_number, d.status) for d in fake.deliveries] == [
        (channel.id, "sync", 1, 200),
        (channel.id, "exists", 2, 200),
        (channel.id, "exists", 3, 200),
        (channel.id, "exists", 4, 200),
    ]


def test_every_channel_of_the_calendar_is_notified(
    fake: GoogleFake, push: PushChannels, receiver: Receiver
) -> None:
    first = watch(push, receiver.url)
    second = watch(push, receiver.url)
    fake.wait_deliveries(2)
    fake.put_event(EMAIL, CAL, event("review"))
    deliveries = fake.wait_deliveries(4)
    exists = sorted((d.channel_id, d.message_number) for d in deliveries if d.state == "exists")
    assert exists == sorted([(first.id, 2), (second.id, 2)])


def test_a_removed_calendar_sends_not_exists_and_ends_its_channels(
    fake: GoogleFake, push: PushChannels, receiver: Receiver
) -> None:
    channel = watch(push, receiver.url, calendar_id=OTHER)
    kept = watch(push, receiver.url)
    fake.wait_deliveries(2)
    fake.remove_calendar(EMAIL, OTHER)
    deliveries = fake.wait_deliveries(3)
    assert (deliveries[2].channel_id, deliveries[2].state) == (channel.id, "not_exists")
    assert [c.id for c in fake.channels] == [kept.id]
    push.unwatch(ACCOUNT, channel)  # Google forgot it: not an error


def test_stopping_twice_is_204_then_404(
    fake: GoogleFake, push: PushChannels, receiver: Receiver
) -> None:
    """(That unwatch stops notifications: the push contract.) After the stop, only the
    channel's ``sync`` message was ever sent."""
    channel = watch(push, receiver.url)
    receiver.wait(1)
    push.unwatch(ACCOUNT, channel)
    fake.put_event(EMAIL, CAL, event("after"))
    fake.wait_idle()
    assert [r.headers["x-goog-resource-state"] for r in receiver.received] == ["sync"]
    push.unwatch(ACCOUNT, channel)  # already stopped: Google answers 404, which is fine
    assert [r.status for r in fake.requests_for("channels.stop")] == [204, 404]


def test_an_expired_channel_is_not_notified(
    fake: GoogleFake, push: PushChannels, receiver: Receiver
) -> None:
    channel = watch(push, receiver.url, expires_in=timedelta(hours=1))
    fake.wait_deliveries(1)
    fake.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    assert fake.channels == []
    fake.put_event(EMAIL, CAL, event("late"))
    assert len(fake.wait_idle()) == 1
    push.unwatch(ACCOUNT, channel)  # expired: unknown to Google, not an error


def test_renew_returns_none(fake: GoogleFake, push: PushChannels, receiver: Receiver) -> None:
    channel = watch(push, receiver.url)
    later = datetime.now(UTC) + timedelta(days=5)
    assert push.renew(ACCOUNT, channel, expires_at=later) is None
    assert [c.expiration for c in fake.channels] == [channel.expires_at]  # untouched


# --- refusals and errors -----------------------------------------------------------------------


def test_an_unauthorised_webhook_domain_is_a_provider_error(
    fake: GoogleFake, push: PushChannels, receiver: Receiver
) -> None:
    fake.fail_next(401, reason="push.webhookUrlUnauthorized", method="events.watch")
    error = raises(ProviderError, lambda: watch(push, receiver.url))
    assert not isinstance(error, AuthRejected)  # the token is fine: the address is not
    assert "not authorised" in str(error)


def test_a_rate_limit_403_and_a_past_expiry(
    fake: GoogleFake, push: PushChannels, receiver: Receiver
) -> None:
    """(401 / 429 / 5xx / unknown calendars: the push contract.) Google's 403 with a rate
    reason is throttling too; an expiry in the past is the caller's mistake."""
    fake.fail_next(403, reason="userRateLimitExceeded", method="events.watch")
    raises(RateLimitedByProvider, lambda: watch(push, receiver.url))
    with pytest.raises(ValueError):
        watch(push, receiver.url, expires_in=-timedelta(minutes=1))
    assert fake.channels == []


def test_a_refused_stop_is_no_calendar_gone(
    fake: GoogleFake, push: PushChannels, receiver: Receiver
) -> None:
    """(401 / 5xx on stop: the push contract.) A 403 on channels.stop names no calendar."""
    channel = watch(push, receiver.url)
    fake.fail_next(403, method="channels.stop")
    refused = raises(ProviderError, lambda: push.unwatch(ACCOUNT, channel))
    assert not isinstance(refused, CalendarGone)
    assert [c.id for c in fake.channels] == [channel.id]
    push.unwatch(ACCOUNT, channel)
    assert fake.channels == []


# --- the fake's own push behaviour ---------------------------------------------------------------


def test_failed_deliveries_are_recorded(
    fake: GoogleFake, push: PushChannels, receiver: Receiver
) -> None:
    receiver.status = 500
    failing = watch(push, receiver.url)
    with socket_port() as port:
        closed = f"https://127.0.0.1:{port}/push/google"
    unreachable = watch(push, closed)
    deliveries = {d.channel_id: d for d in fake.wait_deliveries(2)}
    assert deliveries[failing.id].status == 500 and deliveries[failing.id].error is None
    assert deliveries[unreachable.id].status is None
    assert "ConnectError" in (deliveries[unreachable.id].error or "")


def test_the_fake_checks_watch_and_stop_bodies(fake: GoogleFake, receiver: Receiver) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=fake.api_url + "/", headers=headers, timeout=5.0) as client:
        url = f"calendars/{CAL}/events/watch"
        good = {"id": "chan-1", "type": "web_hook", "address": receiver.url}

        answer = client.post(url, json=good)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["kind"] == "api#channel" and body["id"] == "chan-1"
        assert "token" not in body
        granted = int(body["expiration"]) / 1000 - time.time()
        assert abs(granted - WEEK.total_seconds()) < 5  # the documented default ttl
        [sync] = receiver.wait(1)
        assert "x-goog-channel-token" not in sync.headers  # no token asked for

        refusals = [
            ({**good, "id": "chan-1"}, "channelIdNotUnique"),
            ({**good, "id": "chan-2", "type": "email"}, "invalid"),
            ({"id": "chan-3", "address": receiver.url}, "required"),
            ({**good, "id": "x" * 65}, "invalid"),
            ({**good, "id": "chan-4", "params": {"ttl": "soon"}}, "invalid"),
            ({**good, "id": "chan-5", "params": {"ttl": 3600}}, "badRequest"),
            ({**good, "id": "chan-6", "colour": "red"}, "badRequest"),
        ]
        for payload, reason in refusals:
            refused = client.post(url, json=payload)
            assert refused.status_code == 400, payload
            assert refused.json()["error"]["errors"][0]["reason"] == reason, payload
        not_json = client.post(url, content=b"{", headers={"Content-Type": "application/json"})
        assert not_json.json()["error"]["errors"][0]["reason"] == "parseError"
        assert len(fake.violations) == len(refusals) + 1
        fake.violations.clear()

        stop = client.post("channels/stop", json={"id": "chan-1"})
        assert stop.status_code == 400  # resourceId is needed
        fake.violations.clear()
        wrong = client.post("channels/stop", json={"id": "chan-1", "resourceId": "nope"})
        assert wrong.status_code == 404
        stopped = client.post(
            "channels/stop", json={"id": "chan-1", "resourceId": body["resourceId"]}
        )
        assert stopped.status_code == 204 and stopped.content == b""
    assert fake.channels == []


def test_stopping_the_fake_ends_its_delivery_thread(tls: ssl.SSLContext) -> None:
    before = set(threading.enumerate())
    receiver = Receiver(tls)
    try:
        fake = start_google_fake()
        try:
            fake.add_account(EMAIL, token=TOKEN)
            fake.add_calendar(EMAIL, CAL, "Ada", primary=True)
            push = GoogleCalendarProvider(fake.api_url, timeout=5.0).push
            assert push is not None
            watch(push, receiver.url)
            fake.wait_deliveries(1)
        finally:
            fake.stop()
    finally:
        receiver.close()
    assert [t.name for t in threading.enumerate() if t not in before] == []
