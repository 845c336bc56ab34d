"""Fetching a feed safely: public addresses only, few redirects, a size cap, conditional GET."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from calsync.addresses import resolves_public
from calsync.providers.base import ProviderError, ProviderUnreachable

MAX_BYTES = 20 * 1024 * 1024
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FeedRefused(ProviderError):
    """The feed URL or its answer cannot be used (message in plain words, no URL)."""


@dataclass(frozen=True)
class Fetched:
    """A feed answer: ``body`` None when the server said 304 Not Modified."""

    body: bytes | None
    etag: str
    last_modified: str


def normalise_url(url: str) -> str:
    """``webcal://`` read as ``https://``; only http(s) URLs with a host are accepted."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in ("webcal", "webcals"):
        scheme = "https"
    if scheme not in ("http", "https") or not parts.hostname:
        raise FeedRefused("the feed address must be an https:// or webcal:// URL")
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


def feed_host(url: str) -> str:
    return urlsplit(normalise_url(url)).hostname or ""


def check_public(url: str, allow_private: bool) -> None:
    """Refuse a host that resolves to any loopback, private, link-local or reserved address."""
    if allow_private:
        return
    host = urlsplit(url).hostname or ""
    port = urlsplit(url).port or 443
    try:
        public = resolves_public(host, port)
    except OSError as exc:
        raise ProviderUnreachable("the feed's host name could not be resolved") from exc
    if not public:
        raise FeedRefused("the feed address points at a private or local network")


def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_BYTES:
            raise FeedRefused("the feed is larger than 20 MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _conditional_headers(etag: str, last_modified: str) -> dict[str, str]:
    headers = {"Accept": "text/calendar, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def fetch(
    url: str,
    *,
    etag: str = "",
    last_modified: str = "",
    timeout: float = 10.0,
    allow_private: bool = False,
) -> Fetched:
    """GET the feed, following at most ``MAX_REDIRECTS`` redirects, each target checked."""
    current = normalise_url(url)
    headers = _conditional_headers(etag, last_modified)
    try:
        # The transport, not a Client: httpx's Client logs each URL, and feed URLs are secret.
        with httpx.HTTPTransport() as transport:
            for _ in range(MAX_REDIRECTS + 1):
                check_public(current, allow_private)
                answer = _get_once(transport, current, headers, timeout)
                if isinstance(answer, Fetched):
                    return answer
                current = answer
    except httpx.HTTPError as exc:
        raise ProviderUnreachable("the feed could not be fetched") from exc
    raise FeedRefused("the feed redirects more than 3 times")


def _get_once(
    transport: httpx.HTTPTransport, url: str, headers: dict[str, str], timeout: float
) -> Fetched | str:
    """The answer at ``url``, or the (normalised) URL it redirects to."""
    extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
    request = httpx.Request("GET", url, headers=headers, extensions=extensions)
    response = transport.handle_request(request)
    response.request = request
    try:
        location = response.headers.get("location")
        if response.status_code in _REDIRECTS and location:
            return normalise_url(urljoin(url, location))
        return _answer(response)
    finally:
        response.close()


def _answer(response: httpx.Response) -> Fetched:
    if response.status_code == 304:
        return Fetched(None, "", "")
    if response.status_code in (401, 403, 404, 410):
        raise FeedRefused(f"the feed server answered {response.status_code}")
    if response.status_code >= 400:
        raise ProviderUnreachable(f"the feed server answered {response.status_code}")
    return Fetched(
        _read_capped(response),
        response.headers.get("etag", ""),
        response.headers.get("last-modified", ""),
    )
