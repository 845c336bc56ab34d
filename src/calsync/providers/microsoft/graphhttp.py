"""The HTTP side of the Graph adapter: one short-lived client, paging, and error mapping.

Status mapping (``Errors`` says what a 404 / 403 means where it happens), the shared part
from ``providers.http``: 401 -> AuthRejected; 429, and 503 with Retry-After ->
RateLimitedByProvider(retry_after); 503 without Retry-After, other 5xx -> ProviderUnreachable;
then 410, or a 400 about the sync state while resuming -> CursorExpired; 404
MailboxNotEnabledForRESTAPI / MailboxNotHostedInExchangeOnline -> UnsupportedAccount; other 404
and 403 -> the context's error; anything else -> ProviderUnreachable. Only URLs with
``api_url``'s scheme, host and port are requested.
Messages name the status, Graph's error code and the URL path, never tokens or query strings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from calsync.providers.base import (
    CalendarGone,
    CursorExpired,
    ProviderError,
    ProviderUnreachable,
    UnsupportedAccount,
)
from calsync.providers.http import follow_pages, shared_status_error, transport_errors

SERVICE = "Microsoft Graph"
_MAILBOX_CODES = {"mailboxnotenabledforrestapi", "mailboxnothostedinexchangeonline"}


class Errors:
    """How a status maps to an error in one context (mailbox, calendar, single event)."""

    def __init__(
        self,
        missing: type[ProviderError] | None,
        forbidden: type[ProviderError],
        *,
        resuming: bool = False,
    ) -> None:
        self.missing = missing  # None: a 404 is an answer (the caller gets None)
        self.forbidden = forbidden
        self.resuming = resuming  # following a stored deltaLink: stale-state 400s expire it


MAILBOX = Errors(UnsupportedAccount, UnsupportedAccount)
CALENDAR = Errors(CalendarGone, CalendarGone)
CALENDAR_RESUMING = Errors(CalendarGone, CalendarGone, resuming=True)
EVENT = Errors(None, CalendarGone)


class GraphHttp:
    """Requests against one Graph endpoint: GETs always ask for UTC times; ``send`` is for
    writes (subscriptions), leaving the status to the caller."""

    def __init__(self, client: httpx.Client, api_url: str, allowed: tuple[str, str, int]) -> None:
        self._client = client
        self._api_url = api_url
        self._origin = allowed

    def url(self, *segments: str) -> str:
        return self._api_url + "/" + "/".join(quote(s, safe="") for s in segments)

    def where(self, url: str, what: str) -> str:
        """How messages name a request: ``what`` and the URL without its query."""
        return f"{what} ({_safe(url)})"

    def send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One request with a JSON body (or none); network failures -> ProviderUnreachable."""
        self.check_link(url, what)
        return self.request(method, url, what, json=body, timeout=timeout)

    def request(
        self,
        method: str,
        url: str,
        what: str,
        *,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One request as given; network failures -> ProviderUnreachable."""
        with transport_errors(self.where(url, what), SERVICE):
            return self._client.request(
                method,
                url,
                json=json,
                headers=headers,
                params=params,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )

    def check_link(self, link: str, what: str) -> None:
        if origin(link) != self._origin:
            raise ProviderUnreachable(f"{what}: Graph sent a link to another host; not followed")

    def pages(
        self,
        url: str,
        params: dict[str, str] | None,
        what: str,
        errors: Errors,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The pages of a collection, following ``@odata.nextLink`` (same origin only)."""

        def fetch(link: str | None) -> dict[str, Any] | None:
            if link is None:
                return self.get(url, params, what, errors, page_size)
            return self.get(link, None, what, errors, page_size)

        def next_link(page: dict[str, Any]) -> str | None:
            link = page.get("@odata.nextLink")
            if link is None or link == "":
                return None
            if not isinstance(link, str):
                raise ProviderUnreachable(f"{what}: Graph sent a bad or repeated nextLink")
            self.check_link(link, what)
            return link

        return follow_pages(
            fetch, next_link, what=what, repeated="Graph sent a bad or repeated nextLink"
        )

    def get(
        self,
        url: str,
        params: dict[str, str] | None,
        what: str,
        errors: Errors,
        page_size: int | None = None,
    ) -> dict[str, Any] | None:
        """The JSON object at ``url``; None for a 404 where ``errors.missing`` is None."""
        self.check_link(url, what)
        where = f"{what} ({_safe(url)})"
        prefer = 'outlook.timezone="UTC"'
        if page_size is not None:
            prefer += f", odata.maxpagesize={page_size}"
        response = self.request("GET", url, what, params=params, headers={"Prefer": prefer})
        if response.status_code == 200:
            return json_object(response, where)
        if response.status_code == 404 and errors.missing is None:
            return None
        raise _error(response, where, errors)


def json_object(response: httpx.Response, where: str) -> dict[str, Any]:
    """The answer's JSON object; anything else is a broken answer (worth retrying)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ProviderUnreachable(f"{where}: the answer is not a JSON object")
    return data


def error(response: httpx.Response, where: str, errors: Errors) -> ProviderError:
    """The error a non-success answer maps to (see the module docstring)."""
    return _error(response, where, errors)


def _error(response: httpx.Response, where: str, errors: Errors) -> ProviderError:
    status = response.status_code
    code = _error_code(response)
    said = f"{status} {code}" if code else str(status)
    folded = code.casefold()
    shared = shared_status_error(
        response, f"{where} ({said})", SERVICE, throttled_with_retry_after=(503,)
    )
    if shared is not None:
        return shared
    if status == 410 or (status == 400 and errors.resuming and "syncstate" in folded):
        return CursorExpired(f"{where}: the delta token is no longer valid ({said})")
    if status == 404 and folded in _MAILBOX_CODES:
        return UnsupportedAccount(f"{where}: the mailbox cannot be used through Graph ({said})")
    if status == 404 and errors.missing is not None:
        return errors.missing(f"{where}: not found ({said})")
    if status == 403:
        return errors.forbidden(f"{where}: access denied ({said})")
    if status == 400 and folded == "errorinvalididmalformed" and errors.missing is CalendarGone:
        return CalendarGone(f"{where}: no such calendar ({said})")
    return ProviderUnreachable(f"{where}: Microsoft Graph answered {said}")


def _error_code(response: httpx.Response) -> str:
    return error_detail(response, "code")[:100]


def error_detail(response: httpx.Response, name: str) -> str:
    """``error.<name>`` (``code``, ``message``) of a Graph error answer, or ""."""
    try:
        data = response.json()
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    value = error.get(name) if isinstance(error, dict) else None
    return value if isinstance(value, str) else ""


def values(page: dict[str, Any], what: str) -> list[dict[str, Any]]:
    """The ``value`` list of a collection page (its objects)."""
    items = page.get("value")
    if not isinstance(items, list):
        raise ProviderUnreachable(f"{what}: the answer has no 'value' list")
    return [v for v in items if isinstance(v, dict)]


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in; links must match api_url's."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return (scheme, "", -1)
    default = 443 if scheme == "https" else 80
    return (scheme, (parts.hostname or "").lower(), port if port is not None else default)


def _safe(url: str) -> str:
    """The URL without query or fragment (delta and skip tokens stay out of messages)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
