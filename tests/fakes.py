"""An in-memory CalDAV-like provider for unit tests at the adapter seam.

It keeps per-calendar change logs so incremental reads are real, can be told to fail
(unreachable, refused credentials, calendar gone), and counts calls.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarChanges,
    CalendarGone,
    Credentials,
    CursorExpired,
    EventResource,
    ExternalCalendar,
    ProviderUnreachable,
)

_clock = itertools.count(1)


@dataclass
class FakeCalendar:
    name: str
    resources: dict[str, tuple[int, EventResource]] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)


@dataclass
class FakeAccount:
    password: str
    calendars: dict[str, FakeCalendar] = field(default_factory=dict)
    primary: str | None = None


class FakeProvider:
    push = None
    writer: Any = None

    def __init__(self) -> None:
        self.accounts: dict[str, FakeAccount] = {}
        self.unreachable = False
        self.calls: list[str] = []

    # -- test set-up -------------------------------------------------------------------------
    def add_account(self, email: str, password: str) -> FakeAccount:
        self.accounts[email.lower()] = FakeAccount(password=password)
        return self.accounts[email.lower()]

    def add_calendar(self, email: str, calendar_id: str, name: str, primary: bool = False) -> None:
        account = self.accounts[email.lower()]
        account.calendars[calendar_id] = FakeCalendar(name=name)
        if primary or account.primary is None:
            account.primary = calendar_id

    def put(self, email: str, calendar_id: str, key: str, ical: str) -> None:
        calendar = self.accounts[email.lower()].calendars[calendar_id]
        version = next(_clock)
        calendar.resources[key] = (version, EventResource(key=key, etag=f"e{version}", ical=ical))
        calendar.deleted.pop(key, None)

    def delete(self, email: str, calendar_id: str, key: str) -> None:
        calendar = self.accounts[email.lower()].calendars[calendar_id]
        calendar.resources.pop(key, None)
        calendar.deleted[key] = next(_clock)

    # -- CalendarProvider ----------------------------------------------------------------------
    def _account(self, credentials: Credentials) -> FakeAccount:
        if self.unreachable:
            raise ProviderUnreachable("connection refused")
        account = self.accounts.get(credentials.username.lower())
        if account is None or account.password != credentials.password:
            raise AuthRejected("401 Unauthorized")
        return account

    def verify(self, credentials: Credentials) -> AccountRef:
        self.calls.append("verify")
        self._account(credentials)
        return AccountRef(email=credentials.username, credentials=credentials, state={"k": "v"})

    def list_calendars(self, account: AccountRef) -> list[ExternalCalendar]:
        self.calls.append("list_calendars")
        found = self._account(account.credentials)
        out = [
            ExternalCalendar(id=cid, name=c.name, is_primary=cid == found.primary)
            for cid, c in found.calendars.items()
        ]
        return sorted(out, key=lambda c: (not c.is_primary, c.name.casefold(), c.id))

    def read_changes(
        self,
        account: AccountRef,
        calendar_id: str,
        cursor: str | None,
        known_etags: dict[str, str],
    ) -> CalendarChanges:
        self.calls.append(f"read:{calendar_id}:{cursor is not None}")
        found = self._account(account.credentials)
        calendar = found.calendars.get(calendar_id)
        if calendar is None:
            raise CalendarGone(calendar_id)
        now = str(next(_clock))
        if cursor is None:
            return CalendarChanges(
                full=True,
                upserted=[r for _, r in calendar.resources.values()],
                deleted=[],
                cursor=now,
            )
        if not cursor.isdigit():
            raise CursorExpired(cursor)
        since = int(cursor)
        return CalendarChanges(
            full=False,
            upserted=[r for v, r in calendar.resources.values() if v > since],
            deleted=[k for k, v in calendar.deleted.items() if v > since],
            cursor=now,
        )

    def read_window(
        self, account: AccountRef, calendar_id: str, start: datetime, end: datetime
    ) -> list[EventResource]:
        self.calls.append(f"window:{calendar_id}")
        found = self._account(account.credentials)
        calendar = found.calendars.get(calendar_id)
        if calendar is None:
            raise CalendarGone(calendar_id)
        return [r for _, r in calendar.resources.values()]
