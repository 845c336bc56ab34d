"""Push-notification delivery shared by the provider fakes (Google Calendar, Microsoft Graph).

A ``WebhookSender`` sends requests to webhook receivers one at a time, in the order they were
handed to ``send()``, on one background thread (named by the fake, started on the first send).
It uses one httpx client per thread: ``verify=False`` (receivers use self-signed
certificates), no redirects, no idle keep-alive connections (a receiver shutting down, uvicorn
over TLS, would otherwise wait for this client to close them), ``timeout`` seconds per
request (read when the request is made). Nothing is retried. Each outcome becomes a record,
built by the ``record(status, error)`` callable given with the request (``status`` the
receiver's HTTP status, None when the request failed; ``error`` then says why, as
``"ExceptionType: message"``), appended to ``deliveries``.

``wait_deliveries(n, timeout)`` waits until there are ``n`` records, ``wait_idle(timeout)``
until nothing is queued or in flight; both return a copy of ``deliveries`` and raise the
sender's ``error`` type (TimeoutError unless told otherwise) when time runs out.

``discard()`` forgets the records so far: requests still queued are dropped unsent and the one
in flight is not recorded. ``stop(drain=...)`` ends the thread, first sending what is queued
(``drain=True``) or dropping it; a later ``send()`` starts a new thread.

Every failed request has the sockets left in its traceback closed: when a receiver resets the
connection before the TLS handshake, CPython's ``ssl.SSLSocket._create`` re-raises from its
``recv`` probe without closing the half-made SSLSocket, which otherwise surfaces later as a
ResourceWarning.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

__all__ = ["WebhookSender", "close_sockets_left_in"]

R = TypeVar("R")


@dataclass(frozen=True)
class _Request(Generic[R]):
    epoch: int
    method: str
    url: str
    headers: dict[str, str] | None
    content: bytes | None
    json: Any
    record: Callable[[int | None, str | None], R]


@dataclass
class _Worker(Generic[R]):
    """One delivery thread and its own queue (None ends it)."""

    queue: queue.SimpleQueue[_Request[R] | None] = field(default_factory=queue.SimpleQueue)
    thread: threading.Thread | None = None
    dropping: bool = False  # stopped without draining: what is still queued is not sent


class WebhookSender(Generic[R]):
    """Ordered, single-threaded webhook delivery with a record per request (see the module)."""

    def __init__(
        self, thread_name: str, *, timeout: float, error: type[Exception] = TimeoutError
    ) -> None:
        self.thread_name = thread_name
        self.timeout = timeout
        self.error = error
        self.deliveries: list[R] = []
        self._done = threading.Condition()
        self._pending = 0  # queued or in flight
        self._epoch = 0  # bumped by discard()
        self._worker: _Worker[R] | None = None

    def send(
        self,
        method: str,
        url: str,
        *,
        record: Callable[[int | None, str | None], R],
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        json: Any = None,
    ) -> None:
        """Queue one request; ``record(status, error)`` makes its entry in ``deliveries``."""
        with self._done:
            worker = self._worker
            if worker is None:
                worker = self._worker = _Worker()
            if worker.thread is None or not worker.thread.is_alive():
                worker.thread = threading.Thread(
                    target=self._run, args=(worker,), name=self.thread_name, daemon=True
                )
                worker.thread.start()
            self._pending += 1
            worker.queue.put(
                _Request(
                    self._epoch,
                    method,
                    url,
                    None if headers is None else dict(headers),
                    content,
                    json,
                    record,
                )
            )

    def wait_deliveries(self, count: int, timeout: float = 5.0) -> list[R]:
        """All records once there are at least ``count``; ``error`` if not in time."""
        deadline = time.monotonic() + timeout
        with self._done:
            while len(self.deliveries) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self.error(
                        f"{len(self.deliveries)} of {count} deliveries made in {timeout}s: "
                        f"{self.deliveries}"
                    )
                self._done.wait(left)
            return list(self.deliveries)

    def wait_idle(self, timeout: float = 5.0) -> list[R]:
        """All records once nothing is queued or in flight; ``error`` if not in time."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self.error(f"{self._pending} deliveries still pending after {timeout}s")
                self._done.wait(left)
            return list(self.deliveries)

    def discard(self) -> None:
        """Forget the records; drop what is queued, do not record what is in flight."""
        with self._done:
            self._epoch += 1
            self.deliveries.clear()

    def stop(self, *, drain: bool, timeout: float) -> None:
        """End the thread (waiting up to ``timeout`` s), sending what is queued if ``drain``."""
        with self._done:
            worker, self._worker = self._worker, None
            if worker is None:
                return
            worker.dropping = not drain
        worker.queue.put(None)
        if worker.thread is not None:
            worker.thread.join(timeout)

    def _run(self, worker: _Worker[R]) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(verify=False, follow_redirects=False, limits=limits) as client:
            while (request := worker.queue.get()) is not None:
                status: int | None = None
                error: str | None = None
                with self._done:
                    skip = worker.dropping or request.epoch != self._epoch
                if not skip:
                    status, error = self._request(client, request)
                with self._done:
                    if not skip and request.epoch == self._epoch:
                        self.deliveries.append(request.record(status, error))
                    self._pending -= 1
                    self._done.notify_all()

    def _request(self, client: httpx.Client, request: _Request[R]) -> tuple[int | None, str | None]:
        try:
            response = client.request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.content,
                json=request.json,
                timeout=self.timeout,
            )
        except Exception as exc:  # unreachable, timeout, TLS failure, bad URL
            close_sockets_left_in(exc)
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, None


def close_sockets_left_in(error: BaseException) -> None:
    """Close the sockets that the frames of a failed request still hold.

    When the receiver resets the connection before the TLS handshake, CPython's
    ``ssl.SSLSocket._create`` re-raises from its ``recv`` probe without closing the half-made
    SSLSocket (the plain socket it came from is detached already), which then surfaces later
    as a ResourceWarning. It is still reachable through the traceback: close it there.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        trace = current.__traceback__
        while trace is not None:
            for value in list(trace.tb_frame.f_locals.values()):
                if isinstance(value, socket.socket):
                    value.close()
            trace = trace.tb_next
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


class DeliveryLog(Generic[R]):
    """What a fake with push notifications shows of its ``WebhookSender`` (``self._push``):
    the deliveries so far, the per-POST timeout, and waits for them."""

    _push: WebhookSender[R]

    @property
    def deliveries(self) -> list[R]:
        """The notifications delivered (or failed) so far, in order."""
        return self._push.deliveries

    @property
    def delivery_timeout(self) -> float:
        """Seconds each notification POST may take."""
        return self._push.timeout

    @delivery_timeout.setter
    def delivery_timeout(self, seconds: float) -> None:
        self._push.timeout = seconds

    def wait_deliveries(self, count: int, timeout: float = 5.0) -> list[R]:
        """All deliveries once there are at least ``count``; TimeoutError if not in time."""
        return self._push.wait_deliveries(count, timeout)

    def wait_idle(self, timeout: float = 5.0) -> list[R]:
        """All deliveries once nothing is queued or being sent; TimeoutError if not in time."""
        return self._push.wait_idle(timeout)
