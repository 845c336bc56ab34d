"""Google Calendar API v3 adapter: calendar listing, full and incremental event reads.

Plain REST over ``httpx`` (no Google client library), authorised by the OAuth bearer token
that the caller keeps fresh in ``AccountRef.access_token``.

Reads use ``events.list`` with ``singleEvents=true``: Google expands recurring series into
instances, so every item is one event or one instance, stored under its event id. A full read
covers the sync horizon (``timeMin``/``timeMax``) and ends with a ``nextSyncToken``; later reads
pass it as ``syncToken`` (Google forbids time bounds with it) and get what changed, deleted and
cancelled items with ``status: "cancelled"``. An unchanged calendar costs one request.

The cursor is ``gsync:<unix time the window ends>:<nextSyncToken>``. A full read looks
``_WINDOW_SLACK`` beyond the future horizon, and once the horizon has slid past the window of
the last full read (events that were out of reach then would never show up as changes), the
next read is a full one again. Incremental results outside the window are dropped (or deleted
when stored), so the store holds what a full read would hold.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarChanges,
    CalendarGone,
    Credentials,
    CursorExpired,
    EventResource,
    ExternalCalendar,
    ProviderError,
    ProviderUnreachable,
    RateLimitedByProvider,
    UnsupportedAccount,
)
from calsync.providers.google.events import GoogleEventError, event_span, event_to_ical

SYNC_PREFIX = "gsync:"
_EVENTS_PAGE = 2500  # the largest page events.list serves
_CALENDARS_PAGE = 250  # the largest page calendarList.list serves
_MAX_PAGES = 1000
_WINDOW_SLACK = timedelta(days=7)
_RATE_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}
)
_SCOPE_REASONS = frozenset({"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"})
_NO_SERVICE_REASONS = frozenset({"notACalendarUser"})
_READ_ONLY_ROLES = frozenset({"reader", "freeBusyReader"})

_log = logging.getLogger(__name__)


class _BorrowedTransport(httpx.BaseTransport):
    """Delegates to a caller-owned transport without closing it with each short-lived Client."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)

    def close(self) -> None:
        pass


class GoogleCalendarProvider:
    """``CalendarProvider`` for Google Calendar (API v3 at ``api_url``)."""

    def __init__(
        self,
        api_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        horizon_past_days: int = 90,
        horizon_future_days: int = 400,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("api_url must be an absolute http(s) URL")
        self.api_url = api_url.rstrip("/")
        self._transport = transport
        self._timeout = timeout
        self._ssl: ssl.SSLContext | None = None  # built once: loading CA files is slow
        self._past = timedelta(days=horizon_past_days)
        self._future = timedelta(days=horizon_future_days)

    def verify(self, credentials: Credentials) -> AccountRef:
        raise UnsupportedAccount("connect Google accounts by OAuth")

    @contextmanager
    def _session(self, account: AccountRef) -> Iterator[_Api]:
        token = account.access_token
        if not token:
            raise AuthRejected("the Google account has no access token: reconnect it")
        transport = _BorrowedTransport(self._transport) if self._transport is not None else None
        if transport is None and self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        with httpx.Client(
            transport=transport,
            verify=self._ssl if self._ssl is not None else True,
            timeout=self._timeout,
            follow_redirects=False,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": "calsync-google",
            },
        ) as client:
            yield _Api(client, self.api_url)

    # --- calendars -----------------------------------------------------------------------------

    def list_calendars(self, account: AccountRef) -> list[ExternalCalendar]:
        entries: list[Mapping[str, Any]] = []
        with self._session(account) as api:
            for body in api.pages(
                ["users", "me", "calendarList"],
                {"maxResults": str(_CALENDARS_PAGE)},
                what="calendarList.list",
                listing_calendars=True,
            ):
                entries.extend(_items(body))
        primary: list[ExternalCalendar] = []
        rest: list[ExternalCalendar] = []
        seen: set[str] = set()
        for entry in entries:
            calendar_id = entry.get("id")
            if not isinstance(calendar_id, str) or not calendar_id or calendar_id in seen:
                continue
            if entry.get("deleted") is True:
                continue
            seen.add(calendar_id)
            name = entry.get("summaryOverride") or entry.get("summary") or calendar_id
            is_primary = entry.get("primary") is True and not primary
            calendar = ExternalCalendar(
                id=calendar_id,
                name=str(name),
                is_primary=is_primary,
                read_only=entry.get("accessRole") in _READ_ONLY_ROLES,
            )
            (primary if is_primary else rest).append(calendar)
        rest.sort(key=lambda c: (c.name.casefold(), c.id))
        return [*primary, *rest]

    # --- reading -------------------------------------------------------------------------------

    def read_changes(
        self,
        account: AccountRef,
        calendar_id: str,
        cursor: str | None,
        known_etags: dict[str, str],
    ) -> CalendarChanges:
        now = datetime.now(UTC)
        sync: tuple[datetime, str] | None = None
        if cursor is not None:
            sync = _parse_cursor(cursor)
            if sync[0] < now + self._future:
                sync = None  # the horizon slid past the last full read's window: read it all
        path = ["calendars", calendar_id, "events"]
        what = f"events.list of calendar {calendar_id!r}"
        with self._session(account) as api:
            if sync is None:
                window_end = now + self._future + _WINDOW_SLACK
                params = {
                    "singleEvents": "true",
                    "showDeleted": "false",
                    "maxResults": str(_EVENTS_PAGE),
                    "timeMin": _rfc3339(now - self._past),
                    "timeMax": _rfc3339(window_end),
                }
                items, token = _collect(api.pages(path, params, what=what, incremental=False))
                return self._full(account, items, _cursor(window_end, token))
            window_end, sync_token = sync
            params = {
                "singleEvents": "true",
                "maxResults": str(_EVENTS_PAGE),
                "syncToken": sync_token,
            }
            items, token = _collect(api.pages(path, params, what=what, incremental=True))
        window = (now - self._past, window_end)
        changes = self._incremental(account, items, known_etags, window)
        return CalendarChanges(
            False, changes[0], changes[1], _cursor(window_end, token or sync_token)
        )

    def _full(
        self, account: AccountRef, items: list[Mapping[str, Any]], cursor: str | None
    ) -> CalendarChanges:
        upserted: dict[str, EventResource] = {}
        for item in items:
            key = item.get("id")
            if not isinstance(key, str) or not key or item.get("status") == "cancelled":
                continue
            resource = _resource(item, key, account.email)
            if resource is not None:
                upserted[key] = resource
        return CalendarChanges(True, _sorted(upserted.values()), [], cursor)

    def _incremental(
        self,
        account: AccountRef,
        items: list[Mapping[str, Any]],
        known_etags: dict[str, str],
        window: tuple[datetime, datetime],
    ) -> tuple[list[EventResource], list[str]]:
        upserted: dict[str, EventResource] = {}
        deleted: set[str] = set()
        for item in items:
            key = item.get("id")
            if not isinstance(key, str) or not key:
                continue
            if item.get("status") == "cancelled":
                upserted.pop(key, None)
                deleted.add(key)
                continue
            resource = _resource(item, key, account.email)
            if resource is None:
                continue
            if not _within(item, window):
                upserted.pop(key, None)
                if key in known_etags:
                    deleted.add(key)
                continue
            deleted.discard(key)
            if resource.etag and known_etags.get(key) == resource.etag:
                upserted.pop(key, None)  # the store holds this version already
                continue
            upserted[key] = resource
        return _sorted(upserted.values()), sorted(deleted)


class _Api:
    """GET requests against the API root, with Google's errors mapped to ``ProviderError``."""

    def __init__(self, client: httpx.Client, root: str) -> None:
        self.client = client
        self.root = root

    def get(
        self,
        path: list[str],
        params: dict[str, str],
        *,
        what: str,
        incremental: bool = False,
        listing_calendars: bool = False,
    ) -> Mapping[str, Any]:
        url = self.root + "/" + "/".join(quote(segment, safe="") for segment in path)
        try:
            response = self.client.get(url, params=params)
        except httpx.TimeoutException:
            raise ProviderUnreachable(f"{what}: Google Calendar timed out") from None
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(
                f"{what}: Google Calendar is unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code != 200:
            raise _error(response, what, incremental, listing_calendars)
        try:
            body = response.json()
        except ValueError:
            raise ProviderUnreachable(f"{what}: the answer is not JSON") from None
        if not isinstance(body, dict):
            raise ProviderUnreachable(f"{what}: the answer is not a JSON object")
        return body

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
        seen: set[str] = set()
        query = dict(params)
        for _ in range(_MAX_PAGES):
            body = self.get(
                path,
                query,
                what=what,
                incremental=incremental,
                listing_calendars=listing_calendars,
            )
            yield body
            next_page = body.get("nextPageToken")
            if not isinstance(next_page, str) or not next_page:
                return
            if next_page in seen:
                raise ProviderUnreachable(f"{what}: Google repeated a page token")
            seen.add(next_page)
            query = {**params, "pageToken": next_page}
        raise ProviderUnreachable(f"{what}: more than {_MAX_PAGES} pages")


# --- helpers -----------------------------------------------------------------------------------


def _collect(pages: Iterator[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], str | None]:
    """All items of the pages, and the ``nextSyncToken`` of the last page (if any)."""
    items: list[Mapping[str, Any]] = []
    token: str | None = None
    for body in pages:
        items.extend(_items(body))
        sync = body.get("nextSyncToken")
        token = sync if isinstance(sync, str) and sync else None
    return items, token


def _items(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = body.get("items", [])
    if not isinstance(items, list):
        raise ProviderUnreachable("Google Calendar answered a list whose items are not a list")
    return [item for item in items if isinstance(item, Mapping)]


def _resource(item: Mapping[str, Any], key: str, owner_email: str) -> EventResource | None:
    try:
        ical = event_to_ical(item, owner_email)
    except GoogleEventError as exc:
        _log.warning("Google event %r skipped: %s", key, exc)
        return None
    if ical is None:
        return None
    etag = item.get("etag")
    return EventResource(key, etag if isinstance(etag, str) else "", ical)


def _within(item: Mapping[str, Any], window: tuple[datetime, datetime]) -> bool:
    """Whether the event overlaps ``window`` as a full read's timeMin/timeMax would see it."""
    span = event_span(item)  # parsed once already by _resource: cannot fail here
    if span is None:
        return False
    slack = timedelta(days=1) if span.all_day else timedelta(0)  # all-day: calendar's zone
    return span.end + slack > window[0] and span.start - slack < window[1]


def _cursor(window_end: datetime, token: str | None) -> str | None:
    if token is None:
        return None
    return f"{SYNC_PREFIX}{int(window_end.timestamp())}:{token}"


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    if not cursor.startswith(SYNC_PREFIX):
        raise CursorExpired("unrecognised Google Calendar cursor: a full read is needed")
    stamp, _, token = cursor[len(SYNC_PREFIX) :].partition(":")
    try:
        window_end = datetime.fromtimestamp(int(stamp), UTC)
    except (ValueError, OverflowError, OSError):
        raise CursorExpired("malformed Google Calendar cursor: a full read is needed") from None
    if not token:
        raise CursorExpired("malformed Google Calendar cursor: a full read is needed")
    return window_end, token


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sorted(resources: Any) -> list[EventResource]:
    return sorted(resources, key=lambda r: r.key)


def _error_details(response: httpx.Response) -> tuple[set[str], str | None]:
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
    return {r for r in reasons if r.isascii() and r.replace("_", "").isalnum()}, location


def _error(
    response: httpx.Response, what: str, incremental: bool, listing_calendars: bool
) -> ProviderError:
    """The adapter error for a non-200 answer. Messages name reasons, never tokens."""
    code = response.status_code
    reasons, location = _error_details(response)
    where = f"{what}: HTTP {code}" + (f" ({', '.join(sorted(reasons))})" if reasons else "")
    if code == 401:
        return AuthRejected(f"{where}: the access token was refused")
    if code == 429 or (code == 403 and reasons & _RATE_REASONS):
        retry_after = _retry_after(response.headers.get("Retry-After"))
        return RateLimitedByProvider(f"{where}: rate limited", retry_after=retry_after)
    if reasons & _NO_SERVICE_REASONS:
        return UnsupportedAccount(f"{where}: the account has no Google Calendar")
    if code == 403 and reasons & _SCOPE_REASONS:
        return AuthRejected(f"{where}: calendar access was not granted")
    if listing_calendars and code in (403, 404):
        return UnsupportedAccount(f"{where}: the account has no calendar list")
    if code == 410:
        if incremental:
            return CursorExpired(f"{where}: the sync token expired: a full read is needed")
        if "fullSyncRequired" in reasons:
            return ProviderUnreachable(f"{where}: Google asks to start the read again")
        return CalendarGone(f"{where}: the calendar is gone")
    if code in (403, 404):
        return CalendarGone(f"{where}: the calendar is gone or no longer shared")
    if code == 400 and incremental and location == "syncToken":
        return CursorExpired(f"{where}: the sync token was refused: a full read is needed")
    if code >= 500 or code == 408:
        return ProviderUnreachable(f"{where}: Google Calendar failed")
    return ProviderError(f"{where}: unexpected answer")


def _retry_after(value: str | None) -> float | None:
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
    return max(0.0, when.timestamp() - time.time())
