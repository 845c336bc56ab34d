"""The CalDAV change check: one Depth 1 PROPFIND of the calendar home asks every calendar of
the account for its ``sync-token`` (RFC 6578) and ``getctag`` (CalendarServer), and a calendar
counts as changed when the tag its last read's cursor holds has moved.

Cursors are ``sync:<token>`` or ``ctag:<ctag>`` (see ``adapter``); this module owns the
prefixes because both sides compare them.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

from calsync.providers.base import AccountRef
from calsync.providers.caldav import dav
from calsync.providers.caldav.account import CalDavServer
from calsync.providers.caldav.dav import canonical_path

SYNC_PREFIX = "sync:"
CTAG_PREFIX = "ctag:"
_PROPS = [dav.RESOURCETYPE, dav.SYNC_TOKEN, dav.GETCTAG]


class CalDavChangeCheck:
    """``ChangeCheck`` of a CalDAV server: a few hundred bytes each way when nothing moved."""

    def __init__(self, server: CalDavServer) -> None:
        self.server = server

    def changed_calendars(self, account: AccountRef, cursors: Mapping[str, str | None]) -> set[str]:
        if not cursors:
            return set()
        with self.server.session(account.credentials) as client:
            home = self.server.home(client, account)
            found = client.propfind(home, _PROPS, depth="1", what="calendar home")
        tags: dict[str, tuple[str | None, str | None]] = {}
        home_path = canonical_path(home, home).rstrip("/")
        for response in found.responses:
            path = canonical_path(home, response.href).rstrip("/")
            if path != home_path and response.status in (None, 200):
                calendar_id = unquote(path.rsplit("/", 1)[-1])
                tags[calendar_id] = (response.text(dav.SYNC_TOKEN), response.text(dav.GETCTAG))
        return {cid for cid, cursor in cursors.items() if not _still(cursor, tags.get(cid))}


def _still(cursor: str | None, tags: tuple[str | None, str | None] | None) -> bool:
    """Whether the server's tags say the calendar is as ``cursor`` left it."""
    if cursor is None or tags is None:
        return False
    token, ctag = tags
    if cursor.startswith(SYNC_PREFIX):
        return token is not None and cursor[len(SYNC_PREFIX) :] == token
    if cursor.startswith(CTAG_PREFIX):
        return ctag is not None and cursor[len(CTAG_PREFIX) :] == ctag
    return False
