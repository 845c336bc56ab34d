"""CalDAV adapter: RFC 6764 discovery, calendar listing, full and incremental reads.

Incremental reads use RFC 6578 sync-collection when the collection offers a sync-token, and
otherwise the CalendarServer ``getctag`` plus an etag diff. The cursor says which one it is:
``sync:<token>`` or ``ctag:<ctag>``. An unchanged calendar costs one small request either way.
Sessions, discovery and calendar URLs live in ``account.py`` (shared with ``writer.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from urllib.parse import unquote

import httpx

from calsync.providers.base import (
    AccountRef,
    CalendarChanges,
    CalendarGone,
    CalendarWriter,
    ChangeCheck,
    Credentials,
    CursorExpired,
    EventResource,
    ExternalCalendar,
    ProviderUnreachable,
    PushChannels,
)
from calsync.providers.caldav import dav
from calsync.providers.caldav.account import CalDavServer
from calsync.providers.caldav.changes import CTAG_PREFIX, SYNC_PREFIX, CalDavChangeCheck
from calsync.providers.caldav.dav import DavClient, DavResponse, canonical_path
from calsync.providers.caldav.writer import EXPORT_CALENDAR_PREFIX, CalDavWriter

_MAX_SYNC_PAGES = 100
_MULTIGET_BATCH = 100
_WRITE_PRIVILEGES = (dav.dav("all"), dav.dav("write"), dav.dav("write-content"))


class CalDavProvider:
    """``CalendarProvider`` for any CalDAV server reachable from ``base_url``."""

    push: PushChannels | None = None  # CalDAV has no change notifications
    change_check: ChangeCheck | None  # one PROPFIND of the home answers for every calendar
    writer: CalendarWriter | None

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.server = CalDavServer(base_url, transport=transport, timeout=timeout)
        self.base_url = self.server.base_url
        self.writer = CalDavWriter(self.server)
        self.change_check = CalDavChangeCheck(self.server)

    # --- discovery -----------------------------------------------------------------------------

    def verify(self, credentials: Credentials) -> AccountRef:
        with self.server.session(credentials) as client:
            state = self.server.discover(client)
        return AccountRef(email=credentials.username, credentials=credentials, state=state)

    # --- calendars -----------------------------------------------------------------------------

    def list_calendars(self, account: AccountRef) -> list[ExternalCalendar]:
        with self.server.session(account.credentials) as client:
            home = self.server.home(client, account)
            props = [
                dav.RESOURCETYPE,
                dav.DISPLAYNAME,
                dav.SUPPORTED_COMPONENTS,
                dav.CURRENT_USER_PRIVILEGE_SET,
            ]
            found = client.propfind(home, props, depth="1", what="calendar home")
        home_path = canonical_path(home, home).rstrip("/")
        calendars: list[tuple[ExternalCalendar, str]] = []
        for response in found.responses:
            path = canonical_path(home, response.href).rstrip("/")
            if path == home_path or not _is_event_calendar(response):
                continue
            calendar_id = unquote(path.rsplit("/", 1)[-1])
            privileges = response.props.get(dav.CURRENT_USER_PRIVILEGE_SET)
            read_only = privileges is not None and not any(
                privileges.find(f".//{p}") is not None for p in _WRITE_PRIVILEGES
            )
            name = response.text(dav.DISPLAYNAME) or calendar_id
            calendars.append((ExternalCalendar(calendar_id, name, read_only=read_only), path))
        default = account.state.get("schedule_default_calendar_url")
        default_path = canonical_path(home, default).rstrip("/") if default else None
        return _order_calendars(calendars, default_path)

    # --- reading -------------------------------------------------------------------------------

    def read_window(
        self, account: AccountRef, calendar_id: str, start: datetime, end: datetime
    ) -> list[EventResource]:
        # Servers expand recurrences inconsistently (DST), so no time-range filter: read all,
        # the caller expands.
        return self.read_changes(account, calendar_id, None, {}).upserted

    def read_changes(
        self,
        account: AccountRef,
        calendar_id: str,
        cursor: str | None,
        known_etags: dict[str, str],
    ) -> CalendarChanges:
        if cursor is not None and not cursor.startswith((SYNC_PREFIX, CTAG_PREFIX)):
            raise CursorExpired("unrecognised CalDAV cursor: a full read is needed")
        with self.server.session(account.credentials) as session:
            url = self.server.calendar_url(session, account, calendar_id)
            # 403 / 404 / 410 on the calendar itself: we lost it (deleted, or access revoked)
            client = session.scoped(on_missing=CalendarGone, on_forbidden=CalendarGone)
            if cursor is None:
                return self._full_read(client, url)
            if cursor.startswith(SYNC_PREFIX):
                return self._sync_read(client, url, cursor[len(SYNC_PREFIX) :], known_etags)
            return self._ctag_read(client, url, cursor[len(CTAG_PREFIX) :], known_etags)

    def _full_read(self, client: DavClient, url: str) -> CalendarChanges:
        props = [dav.RESOURCETYPE, dav.SYNC_TOKEN, dav.GETCTAG, dav.SUPPORTED_REPORT_SET]
        collection = self.server.collection_props(client, url, props)
        if dav.RESOURCETYPE in collection.props and not collection.has_child(
            dav.RESOURCETYPE, dav.CALENDAR
        ):
            raise CalendarGone(f"{dav.safe_url(url)} is no longer a calendar collection")
        token, ctag = collection.text(dav.SYNC_TOKEN), collection.text(dav.GETCTAG)
        sync_ok = dav.SUPPORTED_REPORT_SET not in collection.props or collection.has_child(
            dav.SUPPORTED_REPORT_SET, dav.dav("sync-collection")
        )
        if token and sync_ok:
            new_cursor: str | None = SYNC_PREFIX + token
        else:
            new_cursor = CTAG_PREFIX + ctag if ctag else None
        body = dav.calendar_query_body([dav.GETETAG, dav.CALENDAR_DATA])
        found = client.report(url, body, depth="1", what="calendar-query")
        path = canonical_path(url, url).rstrip("/")
        _refuse_cut_short(found, url, path, "calendar-query")
        upserted: dict[str, EventResource] = {}
        without_data: list[str] = []
        for item in found.responses:
            key = canonical_path(url, item.href)
            if item.status not in (None, 200) or key.rstrip("/") == path:
                continue
            ical = item.raw_text(dav.CALENDAR_DATA)
            if ical is None:
                without_data.append(key)  # some servers omit data for large resources
            elif _is_event(ical):
                upserted[key] = EventResource(key, item.text(dav.GETETAG) or "", ical)
        fetched, _, _ = self._multiget(client, url, without_data)
        upserted.update((r.key, r) for r in fetched)
        return CalendarChanges(True, _sorted(upserted.values()), [], new_cursor)

    def _sync_read(
        self, client: DavClient, url: str, token: str, known_etags: dict[str, str]
    ) -> CalendarChanges:
        path = canonical_path(url, url).rstrip("/")
        changed: dict[str, str] = {}  # key -> etag ("" when not given)
        deleted: set[str] = set()
        for _ in range(_MAX_SYNC_PAGES):
            body = dav.sync_collection_body(token, [dav.GETETAG])
            response = client.request("REPORT", url, body=body, depth="0")
            if response.status_code in (400, 403, 409, 412) and (
                dav.dav("valid-sync-token") in dav.error_conditions(response.content)
                or response.status_code in (409, 412)
            ):
                raise CursorExpired(f"{dav.safe_url(url)}: the sync token is no longer valid")
            found = client.multistatus(response, "sync-collection")
            truncated = False
            for item in found.responses:
                key = canonical_path(url, item.href)
                if key.rstrip("/") == path:
                    truncated = truncated or item.status == 507  # RFC 6578 section 3.6
                elif item.status in (404, 410):
                    deleted.add(key)
                    changed.pop(key, None)
                else:
                    changed[key] = item.text(dav.GETETAG) or ""
                    deleted.discard(key)
            new_token = found.sync_token or token
            if not truncated or new_token == token:
                token = new_token
                break
            token = new_token
        wanted = [k for k, etag in changed.items() if not etag or known_etags.get(k) != etag]
        upserted, gone, not_events = self._multiget(client, url, wanted)
        deleted.update(gone)
        deleted.update(k for k in not_events if k in known_etags)
        return CalendarChanges(False, _sorted(upserted), sorted(deleted), SYNC_PREFIX + token)

    def _ctag_read(
        self, client: DavClient, url: str, ctag: str, known_etags: dict[str, str]
    ) -> CalendarChanges:
        current = self.server.collection_props(client, url, [dav.GETCTAG]).text(dav.GETCTAG)
        if current is None:
            raise CursorExpired(f"{dav.safe_url(url)} no longer offers a ctag")
        if current == ctag:
            return CalendarChanges(False, [], [], CTAG_PREFIX + ctag)
        found = client.propfind(url, [dav.RESOURCETYPE, dav.GETETAG], depth="1", what="calendar")
        path = canonical_path(url, url).rstrip("/")
        _refuse_cut_short(found, url, path, "PROPFIND")
        present: dict[str, str] = {}
        for item in found.responses:
            key = canonical_path(url, item.href)
            if item.status not in (None, 200) or key.rstrip("/") == path:
                continue
            if item.has_child(dav.RESOURCETYPE, dav.dav("collection")):
                continue
            present[key] = item.text(dav.GETETAG) or ""
        wanted = [k for k, etag in present.items() if not etag or known_etags.get(k) != etag]
        upserted, gone, not_events = self._multiget(client, url, wanted)
        deleted = {k for k in known_etags if k not in present}
        deleted.update(k for k in [*gone, *not_events] if k in known_etags)
        return CalendarChanges(False, _sorted(upserted), sorted(deleted), CTAG_PREFIX + current)

    def _multiget(
        self, client: DavClient, url: str, keys: list[str]
    ) -> tuple[list[EventResource], list[str], list[str]]:
        """Fetch ``keys``: (VEVENT resources, keys gone meanwhile, keys that are not events)."""
        upserted: list[EventResource] = []
        gone: list[str] = []
        not_events: list[str] = []
        for start in range(0, len(keys), _MULTIGET_BATCH):
            batch = keys[start : start + _MULTIGET_BATCH]
            body = dav.multiget_body([dav.GETETAG, dav.CALENDAR_DATA], batch)
            found = client.report(url, body, depth="1", what="calendar-multiget")
            seen: set[str] = set()
            for item in found.responses:
                key = canonical_path(url, item.href)
                seen.add(key)
                ical = item.raw_text(dav.CALENDAR_DATA)
                if item.status in (404, 410):
                    gone.append(key)
                elif item.status in (None, 200) and ical is not None:
                    if _is_event(ical):
                        upserted.append(EventResource(key, item.text(dav.GETETAG) or "", ical))
                    else:
                        not_events.append(key)
            gone.extend(k for k in batch if k not in seen)
        return upserted, gone, not_events


# --- helpers -----------------------------------------------------------------------------------


def _is_event(ical: str) -> bool:
    return "BEGIN:VEVENT" in ical


def _refuse_cut_short(found: dav.Multistatus, url: str, path: str, what: str) -> None:
    """A listing the server truncated (507 Insufficient Storage on the collection, RFC 4918
    and RFC 5323's number-of-matches-within-limits) is not the calendar's contents: reading it
    as a full listing would delete every event it left out. Fail the read instead; the stored
    events and the old cursor stay."""
    for item in found.responses:
        if item.status == 507 and canonical_path(url, item.href).rstrip("/") == path:
            raise ProviderUnreachable(
                f"{dav.safe_url(url)}: the server cut its {what} listing short (507, too many "
                "results); nothing was changed, calsync will try again"
            )


def _is_event_calendar(response: DavResponse) -> bool:
    if response.status not in (None, 200) or not response.has_child(dav.RESOURCETYPE, dav.CALENDAR):
        return False
    components = response.props.get(dav.SUPPORTED_COMPONENTS)
    if components is None:
        return True
    names = {c.get("name", "").upper() for c in components.iter(dav.caldav("comp"))}
    return not names or "VEVENT" in names


def _order_calendars(
    calendars: list[tuple[ExternalCalendar, str]], default_path: str | None
) -> list[ExternalCalendar]:
    """The schedule-default calendar (else the first by id) first, the rest by name then id.

    Calendars calsync created for exported sessions (ids ``calsync-…``) come last in the
    fallback, so creating one never changes which calendar counts as primary."""
    if not calendars:
        return []
    by_id = sorted(
        calendars, key=lambda item: (item[0].id.startswith(EXPORT_CALENDAR_PREFIX), item[0].id)
    )
    primary = next((c for c, path in by_id if path == default_path), by_id[0][0])
    rest = sorted(
        (c for c, _ in calendars if c is not primary), key=lambda c: (c.name.casefold(), c.id)
    )
    first = ExternalCalendar(primary.id, primary.name, is_primary=True, read_only=primary.read_only)
    return [first, *rest]


def _sorted(resources: Iterable[EventResource]) -> list[EventResource]:
    return sorted(resources, key=lambda r: r.key)
