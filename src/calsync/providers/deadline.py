"""A wall-clock bound on a whole exchange with a provider, not only on each read.

httpx's timeouts apply to one read at a time: a server that drips a byte every few seconds
keeps a request going for as long as it likes (a red-team server held a 265-byte answer for
265 s, and a worker thread with it). Here every socket read and write of a request gets, as
its timeout, what is left of the request's deadline (``DeadlineTransport`` sets it when the
request starts; the response body, read afterwards in the same thread, counts too). Past the
deadline the read fails as a timeout, which ``providers.http.transport_errors`` words as such.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

_current = threading.local()


def _left(timeout: float | None) -> float | None:
    """The timeout of one socket operation: the read timeout, cut to what the deadline
    leaves; raises once the deadline has passed."""
    deadline: float | None = getattr(_current, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the whole exchange took longer than its deadline")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, _left(timeout), local_address, socket_options)
        return _Stream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, _left(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class DeadlineTransport(httpx.BaseTransport):
    """HTTP/1.1 over ``ssl_context`` where each request, body included, must be done within
    ``seconds`` of its start."""

    def __init__(self, ssl_context: ssl.SSLContext, seconds: float) -> None:
        self.seconds = seconds
        self._http = httpx.HTTPTransport(verify=ssl_context)
        # httpx builds its pool on httpcore's default backend; the same pool on ours.
        self._http._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=_Backend()
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _current.deadline = time.monotonic() + self.seconds
        return self._http.handle_request(request)

    def close(self) -> None:
        _current.deadline = None
        self._http.close()
