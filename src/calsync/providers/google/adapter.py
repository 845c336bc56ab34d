"""Google Calendar API v3 adapter: calendar listing, full and incremental event reads, push.

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

``push`` watches calendars through ``events.watch`` channels (see ``push.py``); ``writer``
exports sessions as events with calsync's tag (see ``writer.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarChanges,
    CalendarWriter,
    ChangeCheck,
    Credentials,
    CursorExpired,
    EventResource,
    ExternalCalendar,
    PushChannels,
    UnsupportedAccount,
)
from calsync.providers.google.api import GoogleApi, list_items
from calsync.providers.google.events import GoogleEventError, event_span, event_to_ical
from calsync.providers.google.push import GooglePushChannels
from calsync.providers.google.writer import GoogleWriter
from calsync.providers.http import new_client

SYNC_PREFIX = "gsync:"
_EVENTS_PAGE = 2500  # the largest page events.list serves
_CALENDARS_PAGE = 250  # the largest page calendarList.list serves
_WINDOW_SLACK = timedelta(days=7)
_READ_ONLY_ROLES = frozenset({"reader", "freeBusyReader"})

_log = logging.getLogger(__name__)


class GoogleCalendarProvider:
    """``CalendarProvider`` for Google Calendar (API v3 at ``api_url``)."""

    push: PushChannels | None
    change_check: ChangeCheck | None = None  # push notifications, else incremental polls
    writer: CalendarWriter | None

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
        self._past = timedelta(days=horizon_past_days)
        self._future = timedelta(days=horizon_future_days)
        self.push = GooglePushChannels(self._session)
        self.writer = GoogleWriter(self._session)

    def verify(self, credentials: Credentials) -> AccountRef:
        raise UnsupportedAccount("connect Google accounts by OAuth")

    @contextmanager
    def _session(self, account: AccountRef) -> Iterator[GoogleApi]:
        token = account.access_token
        if not token:
            raise AuthRejected("the Google account has no access token: reconnect it")
        with new_client(
            transport=self._transport,
            timeout=self._timeout,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": "calsync-google",
            },
        ) as client:
            yield GoogleApi(client, self.api_url)

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
                entries.extend(list_items(body))
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

    def read_window(
        self, account: AccountRef, calendar_id: str, start: datetime, end: datetime
    ) -> list[EventResource]:
        """events.list over [start, end) with instances expanded by Google; no sync token."""
        params = {
            "singleEvents": "true",
            "showDeleted": "false",
            "maxResults": str(_EVENTS_PAGE),
            "timeMin": _rfc3339(start),
            "timeMax": _rfc3339(end),
        }
        what = f"events.list of calendar {calendar_id!r}"
        with self._session(account) as api:
            path = ["calendars", calendar_id, "events"]
            items, _ = _collect(api.pages(path, params, what=what, incremental=False))
        return list(self._full(account, items, None).upserted)

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


# --- helpers -----------------------------------------------------------------------------------


def _collect(pages: Iterator[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], str | None]:
    """All items of the pages, and the ``nextSyncToken`` of the last page (if any)."""
    items: list[Mapping[str, Any]] = []
    token: str | None = None
    for body in pages:
        items.extend(list_items(body))
        sync = body.get("nextSyncToken")
        token = sync if isinstance(sync, str) and sync else None
    return items, token


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


def _sorted(resources: Iterable[EventResource]) -> list[EventResource]:
    return sorted(resources, key=lambda r: r.key)
