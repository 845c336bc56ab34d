"""HTTP to the Google Calendar API v3: bearer-authorised requests, paging, Google's errors.

Google answers errors with a JSON body whose ``error.errors[].reason`` (and ``error.status``)
says what went wrong; ``error_for`` maps status and reason to the adapter error tree. Messages
name the call and the reasons, never a token or a query string.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from calsync.providers.base import (
    AuthRejected,
    CalendarGone,
    CursorExpired,
    ProviderError,
    ProviderUnreachable,
    RateLimitedByProvider,
    UnsupportedAccount,
)
from calsync.providers.http import (
    follow_pages,
    retry_after_seconds,
    shared_status_error,
    transport_errors,
)

SERVICE = "Google Calendar"
_RATE_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}
)
_SCOPE_REASONS = frozenset({"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"})
_NO_SERVICE_REASONS = frozenset({"notACalendarUser"})
_REASON = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")  # e.g. push.webhookUrlNotHttps


class GoogleApi:
    """Requests against the API root, with Google's errors mapped to ``ProviderError``."""

    def __init__(self, client: httpx.Client, root: str) -> None:
        self.client = client
        self.root = root

    def request(
        self,
        http_method: str,
        path: list[str],
        *,
        what: str,
        params: dict[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """One request below the API root; transport failures become ``ProviderUnreachable``."""
        url = self.root + "/" + "/".join(quote(segment, safe="") for segment in path)
        return self.send(http_method, url, what=what, params=params, json=json)

    def send(
        self,
        http_method: str,
        url: str,
        *,
        what: str,
        params: dict[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request to ``url``; transport failures become ``ProviderUnreachable``."""
        with transport_errors(what, SERVICE):
            return self.client.request(
                http_method, url, params=params, json=json, content=content, headers=headers
            )

    def get(
        self,
        path: list[str],
        params: dict[str, str],
        *,
        what: str,
        incremental: bool = False,
        listing_calendars: bool = False,
    ) -> Mapping[str, Any]:
        response = self.request("GET", path, what=what, params=params)
        if response.status_code != 200:
            raise error_for(response, what, incremental, listing_calendars)
        return json_object(response, what)

    def pages(
        self,
        path: list[str],
        params: dict[str, str],
        *,
        what: str,
        incremental: bool = False,
        listing_calendars: bool = False,
    ) -> Iterator[Mapping[str, Any]]:
        """Every page of a list call, following ``nextPageToken``."""

        def fetch(token: str | None) -> Mapping[str, Any]:
            query = params if token is None else {**params, "pageToken": token}
            return self.get(
                path,
                query,
                what=what,
                incremental=incremental,
                listing_calendars=listing_calendars,
            )

        return follow_pages(
            fetch, _next_page_token, what=what, repeated="Google repeated a page token"
        )


def _next_page_token(body: Mapping[str, Any]) -> str | None:
    token = body.get("nextPageToken")
    return token if isinstance(token, str) and token else None


def json_object(response: httpx.Response, what: str) -> Mapping[str, Any]:
    """The JSON object a successful answer carries."""
    try:
        body = response.json()
    except ValueError:
        raise ProviderUnreachable(f"{what}: the answer is not JSON") from None
    if not isinstance(body, dict):
        raise ProviderUnreachable(f"{what}: the answer is not a JSON object")
    return body


def list_items(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``items`` of a list answer (objects only)."""
    items = body.get("items", [])
    if not isinstance(items, list):
        raise ProviderUnreachable("Google Calendar answered a list whose items are not a list")
    return [item for item in items if isinstance(item, Mapping)]


def error_details(response: httpx.Response) -> tuple[set[str], str | None]:
    """The ``errors[].reason`` values and ``status`` of a Google error body, and a location."""
    reasons: set[str] = set()
    location: str | None = None
    try:
        body = response.json()
    except ValueError:
        return reasons, None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return reasons, None
    if isinstance(error.get("status"), str):
        reasons.add(error["status"])
    for detail in error.get("errors") or []:
        if isinstance(detail, dict):
            if isinstance(detail.get("reason"), str):
                reasons.add(detail["reason"])
            if isinstance(detail.get("location"), str):
                location = detail["location"]
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
            reasons.add(detail["reason"])
    return {r for r in reasons if _REASON.fullmatch(r)}, location


def error_for(
    response: httpx.Response, what: str, incremental: bool, listing_calendars: bool
) -> ProviderError:
    """The adapter error for a non-200 answer. Messages name reasons, never tokens."""
    code = response.status_code
    reasons, location = error_details(response)
    where = f"{what}: HTTP {code}" + (f" ({', '.join(sorted(reasons))})" if reasons else "")
    if code == 403 and reasons & _RATE_REASONS:  # Google's 403 that means 429
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return RateLimitedByProvider(f"{where}: rate limited", retry_after=retry_after)
    shared = shared_status_error(response, where, SERVICE, unreachable=(408,))
    if shared is not None:
        return shared
    if reasons & _NO_SERVICE_REASONS:
        return UnsupportedAccount(f"{where}: the account has no Google Calendar")
    if code == 403 and reasons & _SCOPE_REASONS:
        return AuthRejected(f"{where}: calendar access was not granted")
    if listing_calendars and code in (403, 404):
        return UnsupportedAccount(f"{where}: the account has no calendar list")
    if code == 410:
        return _gone(where, reasons, incremental)
    if code in (403, 404):
        return CalendarGone(f"{where}: the calendar is gone or no longer shared")
    if code == 400 and incremental and location == "syncToken":
        return CursorExpired(f"{where}: the sync token was refused: a full read is needed")
    return ProviderError(f"{where}: unexpected answer")


def _gone(where: str, reasons: set[str], incremental: bool) -> ProviderError:
    """What a 410 means: the sync token expired, a read to start over, or the calendar gone."""
    if incremental:
        return CursorExpired(f"{where}: the sync token expired: a full read is needed")
    if "fullSyncRequired" in reasons:
        return ProviderUnreachable(f"{where}: Google asks to start the read again")
    return CalendarGone(f"{where}: the calendar is gone")
