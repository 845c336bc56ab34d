"""The ``ics`` adapter: a feed URL (the credential's password) read as one import calendar.

The cursor is ``ics:<etag>|<last-modified>|<sha256 of body>``: a 304 or an unchanged body
changes nothing; a changed body is a full read (``CalendarChanges(full=True)``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from calsync.providers.base import (
    AccountRef,
    CalendarChanges,
    CalendarGone,
    CalendarWriter,
    ChangeCheck,
    Credentials,
    EventResource,
    ExternalCalendar,
    PushChannels,
)
from calsync.providers.ics.feed import feed_host, fetch, normalise_url
from calsync.providers.ics.split import parse_feed, split_feed

FEED_CALENDAR_ID = "feed"


def _parse_cursor(cursor: str | None) -> tuple[str, str, str]:
    if not cursor or not cursor.startswith("ics:"):
        return "", "", ""
    parts = cursor[4:].split("|")
    if len(parts) != 3:
        return "", "", ""
    return parts[0], parts[1], parts[2]


def _cursor(etag: str, last_modified: str, digest: str) -> str:
    return f"ics:{etag.replace('|', '')}|{last_modified.replace('|', '')}|{digest}"


class IcsFeedProvider:
    """Import only: no writer, no push, no change check (polled like CalDAV)."""

    push: PushChannels | None = None
    change_check: ChangeCheck | None = None
    writer: CalendarWriter | None = None

    def __init__(self, *, timeout: float = 10.0, allow_private: bool = False) -> None:
        self._timeout = timeout
        self._allow_private = allow_private

    def _url(self, account: AccountRef) -> str:
        if account.credentials is None or not account.credentials.password:
            raise CalendarGone("the connection has no feed address")
        return account.credentials.password

    def verify(self, credentials: Credentials) -> AccountRef:
        url = normalise_url(credentials.password)
        fetched = fetch(url, timeout=self._timeout, allow_private=self._allow_private)
        parse_feed(fetched.body or b"")
        return AccountRef(
            email=f"feed at {feed_host(url)}",
            credentials=Credentials(username="", password=url),
        )

    def list_calendars(self, account: AccountRef) -> list[ExternalCalendar]:
        return [
            ExternalCalendar(
                id=FEED_CALENDAR_ID, name=account.email, is_primary=True, read_only=True
            )
        ]

    def read_changes(
        self,
        account: AccountRef,
        calendar_id: str,
        cursor: str | None,
        known_etags: dict[str, str],
    ) -> CalendarChanges:
        etag, last_modified, digest = _parse_cursor(cursor)
        fetched = fetch(
            self._url(account),
            etag=etag,
            last_modified=last_modified,
            timeout=self._timeout,
            allow_private=self._allow_private,
        )
        if fetched.body is None:
            return CalendarChanges(full=False, upserted=[], deleted=[], cursor=cursor)
        new_digest = hashlib.sha256(fetched.body).hexdigest()
        new_cursor = _cursor(fetched.etag, fetched.last_modified, new_digest)
        if cursor is not None and new_digest == digest:
            return CalendarChanges(full=False, upserted=[], deleted=[], cursor=new_cursor)
        resources = split_feed(parse_feed(fetched.body))
        return CalendarChanges(full=True, upserted=resources, deleted=[], cursor=new_cursor)

    def read_window(
        self, account: AccountRef, calendar_id: str, start: datetime, end: datetime
    ) -> list[EventResource]:
        fetched = fetch(
            self._url(account), timeout=self._timeout, allow_private=self._allow_private
        )
        return split_feed(parse_feed(fetched.body or b""))
