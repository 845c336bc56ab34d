"""Microsoft Graph v1.0 adapter: calendar listing and calendarView delta reads.

Reading a calendar is one round of ``GET /me/calendars/{id}/calendarView/delta`` over the window
now - ``horizon_past_days`` .. now + ``horizon_future_days`` (the window is fixed by the first
request and carried by Graph's state tokens). Pages are followed through ``@odata.nextLink``
until ``@odata.deltaLink``, which becomes the cursor (``graph-delta:<deltaLink>``); the next
read GETs it and gets only what changed, ``@removed`` rows being deletions. An unchanged
calendar costs exactly one request.

Graph's delta on calendarView accepts neither ``$select`` nor ``$expand``, so two things are
fetched afterwards, and only when the round brought new or changed events:

* calsync's export marker (the single-value extended property ``EXPORT_PROPERTY_ID``): one
  paged ``calendarView`` request over the span of the changed events with ``$select=id`` and
  ``$expand=singleValueExtendedProperties($filter=id eq '...')``.
* rows that lack properties (some tenants send occurrences as id/type/seriesMasterId/start/end
  only): the series master is fetched once (``GET /me/events/{masterId}`` with the marker
  expanded) and lends its subject, showAs, response and marker to its occurrences; a row
  without a master is fetched itself (``GET /me/events/{id}``). A row whose fetch says 404 has
  been deleted meanwhile.

Errors (see ``graphhttp``): 401 -> AuthRejected; 429, and 503 with Retry-After ->
RateLimitedByProvider (503 without Retry-After, other 5xx, timeouts and network errors ->
ProviderUnreachable); 410 (also mid-round: the sync step then starts over) or a 400 about the
sync state while resuming -> CursorExpired; 404 / 403 / a malformed id on the calendar ->
CalendarGone, and on ``/me/calendars`` -> UnsupportedAccount (a mailbox without Exchange
Online / REST access). Links on another scheme, host or port than ``api_url`` are refused
(ProviderUnreachable; a stored cursor on another origin is CursorExpired). Messages never
contain tokens or query strings.

Incremental reads leave out changed rows whose etag the store already holds (``known_etags``);
full reads list everything (``full=True``, ``deleted`` empty). Event -> iCalendar mapping,
including ``showAs`` ``free``/``workingElsewhere`` -> TRANSP:TRANSPARENT: see ``convert``.
Change notifications (``push``, webhook subscriptions): see ``push``. Export (``writer``:
creating calendars, writing and deleting events, ``$batch``): see ``writer``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
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
from calsync.providers.http import new_client
from calsync.providers.microsoft.convert import (
    EXPORT_PROPERTY_ID,
    GraphEventError,
    event_to_ical,
    export_tag,
    utc_bounds,
)
from calsync.providers.microsoft.graphhttp import (
    CALENDAR,
    CALENDAR_RESUMING,
    EVENT,
    MAILBOX,
    GraphHttp,
    origin,
    values,
)
from calsync.providers.microsoft.push import GraphPushChannels
from calsync.providers.microsoft.writer import GraphWriteHttp, GraphWriter, event_etag

DEFAULT_API_URL = "https://graph.microsoft.com/v1.0"
CURSOR_PREFIX = "graph-delta:"
EXPORT_EXPAND = f"singleValueExtendedProperties($filter=id eq '{EXPORT_PROPERTY_ID}')"

_log = logging.getLogger(__name__)
_SCAN_PAGE_SIZE = 250
# A full event row has these; delta rows of occurrences sometimes carry only id/type/start/end.
_REQUIRED = ("start", "end", "isAllDay", "showAs", "subject", "isCancelled", "responseStatus")
# What an occurrence does not inherit from its series master.
_OWN = frozenset(
    {
        "id",
        "@odata.etag",
        "@odata.type",
        "changeKey",
        "type",
        "seriesMasterId",
        "recurrence",
        "iCalUId",
        "uid",
        "originalStart",
        "start",
        "end",
        "singleValueExtendedProperties",
    }
)


class GraphCalendarProvider:
    """``CalendarProvider`` for Microsoft 365 / Outlook.com mailboxes over Microsoft Graph."""

    push: PushChannels | None  # webhook subscriptions (see ``push``), set in __init__
    change_check: ChangeCheck | None = None  # push notifications, else incremental polls
    writer: CalendarWriter | None  # export (see ``writer``), set in __init__

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        horizon_past_days: int = 90,
        horizon_future_days: int = 400,
        page_size: int = 100,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("api_url must be an absolute http(s) URL")
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self.api_url = api_url.rstrip("/")
        self._origin = origin(self.api_url)
        self._transport = transport
        self._timeout = timeout
        self._past = timedelta(days=horizon_past_days)
        self._future = timedelta(days=horizon_future_days)
        self._page_size = page_size
        self.push = GraphPushChannels(self._session, timeout=timeout)
        self.writer = GraphWriter(self._session)

    @contextmanager
    def _session(self, account: AccountRef) -> Iterator[GraphWriteHttp]:
        if not account.access_token:
            raise AuthRejected("a Microsoft account needs an OAuth access token")
        with new_client(
            transport=self._transport,
            timeout=self._timeout,
            headers={
                "Authorization": f"Bearer {account.access_token}",
                "Accept": "application/json",
                "User-Agent": "calsync-graph",
            },
        ) as client:
            yield GraphWriteHttp(client, self.api_url, self._origin)

    # --- accounts and calendars ----------------------------------------------------------------

    def verify(self, credentials: Credentials) -> AccountRef:
        raise UnsupportedAccount("connect Microsoft accounts by OAuth")

    def list_calendars(self, account: AccountRef) -> list[ExternalCalendar]:
        calendars: dict[str, ExternalCalendar] = {}
        default_ids: list[str] = []
        with self._session(account) as graph:
            url = graph.url("me", "calendars")
            params = {"$select": "id,name,isDefaultCalendar,canEdit"}
            for page in graph.pages(url, params, "calendar list", MAILBOX):
                for item in values(page, "calendar list"):
                    calendar_id = item.get("id")
                    if not isinstance(calendar_id, str) or not calendar_id:
                        continue
                    name = item.get("name")
                    calendars[calendar_id] = ExternalCalendar(
                        calendar_id,
                        name if isinstance(name, str) and name else calendar_id,
                        read_only=item.get("canEdit") is False,
                    )
                    if item.get("isDefaultCalendar") is True:
                        default_ids.append(calendar_id)
        ordered = sorted(calendars.values(), key=lambda c: (c.name.casefold(), c.id))
        if not default_ids:
            return ordered
        primary = calendars[min(default_ids)]
        first = ExternalCalendar(primary.id, primary.name, True, primary.read_only)
        return [first, *(c for c in ordered if c.id != primary.id)]

    # --- reading -------------------------------------------------------------------------------

    def read_changes(
        self,
        account: AccountRef,
        calendar_id: str,
        cursor: str | None,
        known_etags: dict[str, str],
    ) -> CalendarChanges:
        link = None if cursor is None else self._cursor_link(cursor)
        with self._session(account) as graph:
            if link is None:
                now = datetime.now(UTC).replace(microsecond=0)
                url = graph.url("me", "calendars", calendar_id, "calendarView", "delta")
                params: dict[str, str] | None = {
                    "startDateTime": _iso(now - self._past),
                    "endDateTime": _iso(now + self._future),
                }
            else:
                url, params = link, None
            changed, removed, delta_link = self._delta_round(graph, url, params, link is not None)
            if link is not None:  # incremental: what the store holds unchanged needs no work
                changed = {
                    key: item
                    for key, item in changed.items()
                    if not (event_etag(item) and known_etags.get(key) == event_etag(item))
                }
            resources, vanished = self._resources(graph, account, calendar_id, changed)
        new_cursor = CURSOR_PREFIX + delta_link if delta_link else None
        if link is None:
            return CalendarChanges(True, resources, [], new_cursor)
        return CalendarChanges(False, resources, sorted(removed | vanished), new_cursor)

    def read_window(
        self, account: AccountRef, calendar_id: str, start: datetime, end: datetime
    ) -> list[EventResource]:
        """One paged calendarView over the window (occurrences expanded by Graph)."""
        with self._session(account) as graph:
            url = graph.url("me", "calendars", calendar_id, "calendarView")
            params = {
                "startDateTime": _iso(start),
                "endDateTime": _iso(end),
                "$expand": EXPORT_EXPAND,
            }
            resources = []
            for page in graph.pages(url, params, "calendar view", CALENDAR, self._page_size):
                for item in values(page, "calendar view"):
                    try:
                        ical = event_to_ical(item, account.email, export_tag(item))
                    except GraphEventError as exc:
                        _log.warning("skipping a Graph event that cannot be converted: %s", exc)
                        continue
                    resources.append(EventResource(str(item.get("id")), event_etag(item), ical))
        return resources

    def _cursor_link(self, cursor: str) -> str:
        if not cursor.startswith(CURSOR_PREFIX):
            raise CursorExpired("unrecognised Microsoft Graph cursor: a full read is needed")
        link = cursor[len(CURSOR_PREFIX) :]
        if origin(link) != self._origin:
            raise CursorExpired("the cursor belongs to another Graph endpoint: a full read")
        return link

    def _delta_round(
        self, graph: GraphHttp, url: str, params: dict[str, str] | None, resuming: bool
    ) -> tuple[dict[str, dict[str, Any]], set[str], str | None]:
        """Follow one delta round: (changed rows by id, removed ids, the deltaLink)."""
        changed: dict[str, dict[str, Any]] = {}
        removed: set[str] = set()
        delta_link: str | None = None
        errors = CALENDAR_RESUMING if resuming else CALENDAR
        for page in graph.pages(url, params, "calendar delta", errors, self._page_size):
            for item in values(page, "calendar delta"):
                event_id = item.get("id")
                if not isinstance(event_id, str) or not event_id:
                    continue
                if "@removed" in item:
                    removed.add(event_id)
                    changed.pop(event_id, None)
                elif item.get("type") != "seriesMaster":  # calendarView lists instances only
                    changed[event_id] = item
                    removed.discard(event_id)
            link = page.get("@odata.deltaLink")
            if isinstance(link, str) and link:
                graph.check_link(link, "calendar delta")
                delta_link = link
        return changed, removed, delta_link

    def _resources(
        self,
        graph: GraphHttp,
        account: AccountRef,
        calendar_id: str,
        changed: dict[str, dict[str, Any]],
    ) -> tuple[list[EventResource], set[str]]:
        """EventResources for the changed rows, and ids found deleted while completing them."""
        complete: dict[str, dict[str, Any]] = {}
        tags: dict[str, str] = {}
        vanished: set[str] = set()
        masters: dict[str, dict[str, Any] | None] = {}
        as_sent: list[dict[str, Any]] = []  # whole rows from the delta: marker still unknown
        for event_id, item in changed.items():
            if all(key in item for key in _REQUIRED):
                complete[event_id] = item
                as_sent.append(item)
                continue
            full = self._complete(graph, item, masters)  # fetched with the marker expanded
            if full is None:
                vanished.add(event_id)
                continue
            complete[event_id] = full
            tag = export_tag(full)
            if tag is not None:
                tags[event_id] = tag
        tags.update(self._export_tags(graph, calendar_id, as_sent))
        resources = []
        for event_id, item in complete.items():
            try:
                ical = event_to_ical(item, account.email, tags.get(event_id))
            except GraphEventError as exc:
                _log.warning("skipping a Graph event that cannot be converted: %s", exc)
                continue
            resources.append(EventResource(event_id, event_etag(item), ical))
        resources.sort(key=lambda r: r.key)
        return resources, vanished

    def _complete(
        self,
        graph: GraphHttp,
        item: dict[str, Any],
        masters: dict[str, dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        """A partial delta row made whole: from its series master, else fetched by id."""
        master_id = item.get("seriesMasterId")
        if isinstance(master_id, str) and master_id and "start" in item and "end" in item:
            if master_id not in masters:
                masters[master_id] = self._event(graph, master_id)
            master = masters[master_id]
            if master is not None:
                merged = {k: v for k, v in master.items() if k not in _OWN}
                merged.update(item)
                tag = export_tag(master)
                if tag is not None and export_tag(item) is None:
                    merged["singleValueExtendedProperties"] = [
                        {"id": EXPORT_PROPERTY_ID, "value": tag}
                    ]
                return merged
        return self._event(graph, str(item["id"]))

    def _event(self, graph: GraphHttp, event_id: str) -> dict[str, Any] | None:
        url = graph.url("me", "events", event_id)
        return graph.get(url, {"$expand": EXPORT_EXPAND}, "event", EVENT)

    def _export_tags(
        self, graph: GraphHttp, calendar_id: str, events: list[dict[str, Any]]
    ) -> dict[str, str]:
        """Which of ``events`` carry calsync's export property: one calendarView over their span."""
        wanted: set[str] = set()
        first: datetime | None = None
        last: datetime | None = None
        for item in events:
            try:
                start, end = utc_bounds(item)
            except GraphEventError:
                continue
            wanted.add(str(item["id"]))
            first = start if first is None else min(first, start)
            last = end if last is None else max(last, end)
        if first is None or last is None:
            return {}
        url = graph.url("me", "calendars", calendar_id, "calendarView")
        params = {
            "startDateTime": _iso(first - timedelta(days=1)),
            "endDateTime": _iso(last + timedelta(days=1)),
            "$select": "id",
            "$expand": EXPORT_EXPAND,
        }
        tags: dict[str, str] = {}
        for page in graph.pages(url, params, "calendar view", CALENDAR, _SCAN_PAGE_SIZE):
            for item in values(page, "calendar view"):
                event_id = item.get("id")
                tag = export_tag(item)
                if isinstance(event_id, str) and event_id in wanted and tag is not None:
                    tags[event_id] = tag
        return tags


# --- helpers -----------------------------------------------------------------------------------


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
