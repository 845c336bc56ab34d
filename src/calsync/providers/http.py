"""The JSON-over-HTTPS core every provider adapter shares.

A client factory on one cached TLS context (``new_client``), the one mapping of transport
failures to ``ProviderUnreachable`` (``transport_errors``, in plain words), the statuses every
provider maps alike (``shared_status_error``), the paging loop (``follow_pages``) and
Retry-After parsing. What a status means beyond those is each provider's own.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx

from calsync.providers.base import (
    AuthRejected,
    ProviderError,
    ProviderUnreachable,
    RateLimitedByProvider,
)
from calsync.providers.deadline import DeadlineTransport


class BorrowedTransport(httpx.BaseTransport):
    """Delegates to a caller-owned transport without closing it with each short-lived Client."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)

    def close(self) -> None:
        pass


def borrowed(transport: httpx.BaseTransport | None) -> httpx.BaseTransport | None:
    return BorrowedTransport(transport) if transport is not None else None


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# --- clients -----------------------------------------------------------------------------------

# A whole request (connect, send, every read of the answer) may take this many read timeouts.
EXCHANGE_DEADLINE_FACTOR = 3


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client: httpx would build one per Client, loading the CA
    bundle each time (about 30 ms of CPU per session)."""
    return httpx.create_ssl_context()


def new_client(
    *,
    transport: httpx.BaseTransport | None,
    timeout: float,
    headers: Mapping[str, str],
    auth: httpx.Auth | None = None,
    follow_redirects: bool = False,
    max_redirects: int = 20,
    on_request: Callable[[httpx.Request], None] | None = None,
) -> httpx.Client:
    """A short-lived client on the shared TLS context; a caller-owned ``transport`` (tests, a
    pool) is borrowed, not closed with the client. Without one, each request must be done,
    answer included, within ``EXCHANGE_DEADLINE_FACTOR`` x ``timeout`` (``providers.deadline``):
    ``timeout`` bounds each read, and a server dripping bytes would otherwise never end.
    ``on_request`` sees every request before it is sent, redirects included (it may raise)."""
    return httpx.Client(
        auth=auth,
        transport=(
            borrowed(transport)
            if transport is not None
            else DeadlineTransport(tls_context(), timeout * EXCHANGE_DEADLINE_FACTOR)
        ),
        timeout=timeout,
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        headers=dict(headers),
        event_hooks={"request": [on_request]} if on_request is not None else None,
    )


# --- transport failures ------------------------------------------------------------------------

# What a transport failure means, in words a caller can show (most specific first).
_TRANSPORT_WORDS: tuple[tuple[type[Exception], str], ...] = (
    (httpx.TimeoutException, "timed out"),
    (httpx.TooManyRedirects, "redirected too many times"),
    (httpx.ProxyError, "could not be reached through the proxy"),
    # Connection refused, reset, closed or a broken answer: one wording, so that an answer
    # never tells which ports of a host are open.
    (httpx.ConnectError, "could not be reached"),
    (httpx.RemoteProtocolError, "could not be reached"),
    (httpx.NetworkError, "could not be reached"),
    (httpx.UnsupportedProtocol, "is at an address calsync cannot request"),
    (httpx.InvalidURL, "is at an address calsync cannot request"),
    (httpx.DecodingError, "sent an answer that cannot be decoded"),
)


def transport_failure(exc: Exception) -> str:
    """Plain words for a transport failure (no exception class names)."""
    for kind, words in _TRANSPORT_WORDS:
        if isinstance(exc, kind):
            return words
    return "could not be reached"


@contextmanager
def transport_errors(where: str, service: str) -> Iterator[None]:
    """Transport failures inside become ``ProviderUnreachable("<where>: <service> <words>")``;
    the request's URL and headers (tokens) stay out of the message."""
    try:
        yield
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ProviderUnreachable(f"{where}: {service} {transport_failure(exc)}") from None


# --- statuses and pages ------------------------------------------------------------------------


def shared_status_error(
    response: httpx.Response,
    where: str,
    service: str,
    *,
    throttled_with_retry_after: Collection[int] = (),
    unreachable: Collection[int] = (),
) -> ProviderError | None:
    """The error of a status every provider maps alike, else None (the provider decides).

    401 -> AuthRejected; 429, or a status of ``throttled_with_retry_after`` that carries
    Retry-After -> RateLimitedByProvider(retry_after); 5xx and ``unreachable`` ->
    ProviderUnreachable.
    """
    status = response.status_code
    if status == 401:
        return AuthRejected(f"{where}: {service} refused the credentials")
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 429 or (status in throttled_with_retry_after and retry_after is not None):
        return RateLimitedByProvider(f"{where}: rate limited by {service}", retry_after)
    if status >= 500 or status in unreachable:
        return ProviderUnreachable(f"{where}: {service} failed")
    return None


MAX_PAGES = 1000
K = TypeVar("K")
Page = TypeVar("Page")


def follow_pages(
    fetch: Callable[[K | None], Page | None],
    next_of: Callable[[Page], K | None],
    *,
    what: str,
    repeated: str,
    max_pages: int = MAX_PAGES,
) -> Iterator[Page]:
    """The pages of a listing: ``fetch(None)`` is the first, ``fetch(key)`` the page the
    previous one's ``next_of`` named; ends when ``next_of`` gives None or ``fetch`` does.
    A key seen before (``repeated`` says how) or more than ``max_pages`` pages ->
    ProviderUnreachable: a server that loops must not keep a sync busy forever."""
    seen: set[K] = set()
    key: K | None = None
    for _ in range(max_pages):
        page = fetch(key)
        if page is None:
            return
        yield page
        key = next_of(page)
        if key is None:
            return
        if key in seen:
            raise ProviderUnreachable(f"{what}: {repeated}")
        seen.add(key)
    raise ProviderUnreachable(f"{what}: more than {max_pages} pages")
