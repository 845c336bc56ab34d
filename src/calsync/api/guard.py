"""The front door: limits every request meets before a route sees it.

- **Body caps** per route family, enforced on the stream: a declared ``Content-Length`` over
  the cap is refused before a byte is read, and a body that grows past it is cut off (413), so
  memory stays bounded whatever a client sends.
- **Authenticate first**: an API route called without ``Authorization`` is refused (401)
  before its body is read.
- **Rate limits** (``api.ratelimit``): failed authentication per client address and per key
  prefix, dashboard sign-ins and sign-in link lookups per address; 429 with ``Retry-After``.
- **Headers** every response carries: ``X-Content-Type-Options: nosniff``; every HTML page
  (the dashboard, the OAuth callback's pages) also a Content-Security-Policy whose
  ``form-action`` names only this service and the configured OAuth authorization servers
  (a connect form's answer redirects the browser there), no framing, no cross-site referrer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calsync.api.errors import WWW_AUTHENTICATE, envelope
from calsync.api.ratelimit import RateLimits
from calsync.errors import (
    CalsyncError,
    HeadersTooLarge,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    UriTooLong,
)

KIB = 1024
# (path prefix, cap): the first match wins.
BODY_CAPS: tuple[tuple[str, int], ...] = (
    ("/push/", 256 * KIB),  # Graph batches notifications; Google sends none
    ("/dashboard", 16 * KIB),  # url-encoded forms
    ("/", 256 * KIB),  # JSON API bodies
)
# Past these, 414 and 431 in the envelope. (Past uvicorn's 64 KiB for a request head, it
# answers a plain 400 itself and closes the connection.)
MAX_TARGET_BYTES = 16 * KIB  # 100 scheduleIds fit
MAX_HEADER_BYTES = 32 * KIB
API_PREFIXES = ("/v1/", "/bookings/", "/v2/")
OPEN_API_PATHS = frozenset({"/v1/health"})
NOSNIFF = (b"x-content-type-options", b"nosniff")


def body_cap(path: str) -> int:
    for prefix, cap in BODY_CAPS:
        if path.startswith(prefix):
            return cap
    return BODY_CAPS[-1][1]


def needs_api_key(path: str) -> bool:
    return path.startswith(API_PREFIXES) and path not in OPEN_API_PATHS


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


def _declared_length(scope: Scope) -> int | None:
    raw = _header(scope, b"content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def page_headers(form_origins: Iterable[str]) -> list[tuple[bytes, bytes]]:
    """The headers of an HTML page. Inline styles only: the week view positions its blocks
    with style attributes."""
    forms = " ".join(["'self'", *sorted(set(form_origins))])
    policy = (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; "
        f"img-src 'self' data:; form-action {forms}; frame-ancestors 'none'; base-uri 'none'"
    )
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
    ]


def origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k == b"content-type" and v.startswith(b"text/html") for k, v in headers)


class Guard:
    """ASGI middleware; see the module docstring."""

    def __init__(
        self, app: ASGIApp, *, limits: RateLimits, form_origins: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.limits = limits
        self.page_headers = page_headers(form_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        refusal = self._refusal(scope, path)
        if refusal is not None:
            await _respond(send, refusal)
            return
        sent = {"status": 0}

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                headers = [*message.get("headers", []), NOSNIFF]
                if _is_html(headers):
                    headers.extend(self.page_headers)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, _capped(receive, body_cap(path)), send_guarded)
        self.limits.record_outcome(scope, path, sent["status"])

    def _refusal(self, scope: Scope, path: str) -> CalsyncError | None:
        wait = self.limits.blocked_for(scope, path)
        if wait is not None:
            return RateLimited(
                "too many failed attempts from this client; try again later",
                data={"retryAfterSeconds": wait},
            )
        target = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
        if target > MAX_TARGET_BYTES:
            return UriTooLong(f"the URL is longer than {MAX_TARGET_BYTES} bytes")
        header_bytes = sum(len(k) + len(v) + 4 for k, v in scope.get("headers", []))
        if header_bytes > MAX_HEADER_BYTES:
            return HeadersTooLarge(f"the request headers are larger than {MAX_HEADER_BYTES} bytes")
        declared = _declared_length(scope)
        if declared is not None and declared > body_cap(path):
            return PayloadTooLarge(f"the body is larger than {body_cap(path)} bytes")
        if needs_api_key(path) and _header(scope, b"authorization") is None:
            return Unauthenticated("an API key is required in the Authorization header")
        return None


def _capped(receive: Receive, cap: int) -> Receive:
    """``receive`` that raises PayloadTooLarge once the body grows past ``cap``."""
    seen = 0

    async def receive_capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                raise PayloadTooLarge(f"the body is larger than {cap} bytes")
        return message

    return receive_capped


async def _respond(send: Send, error: CalsyncError) -> None:
    headers = [(b"content-type", b"application/json"), NOSNIFF]
    retry = error.data.get("retryAfterSeconds")
    if isinstance(retry, int | float):
        headers.append((b"retry-after", str(max(1, int(retry))).encode()))
    if error.http_status == 401:
        headers.append((b"www-authenticate", WWW_AUTHENTICATE.encode()))
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(envelope(error)).encode()})
