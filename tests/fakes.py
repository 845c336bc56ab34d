"""An in-memory CalDAV-like provider for unit tests at the adapter seam.

It keeps per-calendar change logs so incremental reads are real, can be told to fail
(unreachable, refused credentials, calendar gone), and counts calls.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from calsync.providers.base import (
    EXPORT_ICAL_PROPERTY,
    AccountRef,
    AuthRejected,
    CalendarChanges,
    CalendarGone,
    Credentials,
    CursorExpired,
    EventDelete,
    EventResource,
    EventWrite,
    ExportEvent,
    ExternalCalendar,
    ProviderError,
    ProviderUnreachable,
    RateLimitedByProvider,
    StaleEvent,
    WrittenEvent,
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
    writer: Any

    def __init__(self) -> None:
        self.accounts: dict[str, FakeAccount] = {}
        self.unreachable = False
        self.calls: list[str] = []
        self.writer = FakeWriter(self)

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


def export_ical(event: ExportEvent) -> str:
    """The fake's rendering of an exported event (enough for import to see and skip it)."""
    if event.all_day:
        assert event.start_date and event.end_date
        start = f"DTSTART;VALUE=DATE:{event.start_date:%Y%m%d}"
        end = f"DTEND;VALUE=DATE:{event.end_date:%Y%m%d}"
    else:
        assert event.start and event.end
        start = f"DTSTART:{event.start.astimezone(UTC):%Y%m%dT%H%M%SZ}"
        end = f"DTEND:{event.end.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//calsync fake//EN",
            "BEGIN:VEVENT",
            f"UID:{event.uid}",
            "DTSTAMP:20260101T000000Z",
            start,
            end,
            f"SUMMARY:{event.title}",
            f"{EXPORT_ICAL_PROPERTY}:{event.tag}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


class FakeWriter:
    """Export side of ``FakeProvider``: events live in the fake calendars as tagged iCalendar
    under the key ``/<calendar>/<uid>.ics``; ETags are checked like CalDAV's If-Match.

    ``after_write`` runs after each event is stored (a test raises there to simulate a crash
    between the external write and calsync's commit); ``fail_calendar_creation`` refuses new
    calendars; ``rate_limit_next`` answers that many writes with a rate limit;
    ``fail_deletes`` fails each event delete on its own; ``refuse_titles`` answers each event
    with such a title with the error it maps to, on its own, as a provider answers 400 (or
    503) for one event of a batch.
    ``attempts`` counts the writes of each event (by uid)."""

    def __init__(self, provider: FakeProvider, max_batch: int = 10) -> None:
        self.provider = provider
        self.max_batch = max_batch
        self.after_write: Any = None
        self.fail_calendar_creation = False
        self.rate_limit_next = 0
        self.fail_deletes = False  # every delete of an event fails (a server error per item)
        self.refuse_titles: dict[str, ProviderError] = {}
        self.attempts: Counter[str] = Counter()
        self.batches: list[int] = []
        self.created_calendars: list[str] = []

    def _calendar(self, account: AccountRef, calendar_id: str) -> FakeCalendar:
        assert account.credentials is not None
        calendar = self.provider._account(account.credentials).calendars.get(calendar_id)
        if calendar is None:
            raise CalendarGone(calendar_id)
        return calendar

    def create_calendar(
        self, account: AccountRef, name: str, *, key: str | None = None
    ) -> ExternalCalendar:
        assert account.credentials is not None
        found = self.provider._account(account.credentials)
        if self.fail_calendar_creation:
            raise ProviderError("403 Forbidden: calendar creation is not allowed")
        calendar_id = f"cal-{key}" if key else f"cal-{next(_clock)}"
        if calendar_id in found.calendars:
            return ExternalCalendar(id=calendar_id, name=found.calendars[calendar_id].name)
        found.calendars[calendar_id] = FakeCalendar(name=name)
        self.created_calendars.append(calendar_id)
        return ExternalCalendar(id=calendar_id, name=name)

    def delete_calendar(self, account: AccountRef, calendar_id: str) -> None:
        assert account.credentials is not None
        self.provider._account(account.credentials).calendars.pop(calendar_id, None)

    def put_events(
        self, account: AccountRef, calendar_id: str, writes: Sequence[EventWrite]
    ) -> list[WrittenEvent | ProviderError]:
        calendar = self._calendar(account, calendar_id)
        self.batches.append(len(writes))
        out: list[WrittenEvent | ProviderError] = []
        for write in writes:
            if self.rate_limit_next > 0:
                self.rate_limit_next -= 1
                out.append(RateLimitedByProvider("429 Too Many Requests", retry_after=1))
                continue
            self.attempts[write.event.uid] += 1
            if write.event.title in self.refuse_titles:
                out.append(self.refuse_titles[write.event.title])
                continue
            key = f"/{calendar_id}/{write.event.uid}.ics"
            held = calendar.resources.get(key)
            if write.etag is not None and (held is None or held[1].etag != write.etag):
                out.append(StaleEvent(f"412 Precondition Failed: {key}"))
                continue
            version = next(_clock)
            resource = EventResource(key=key, etag=f"e{version}", ical=export_ical(write.event))
            calendar.resources[key] = (version, resource)
            calendar.deleted.pop(key, None)
            if self.after_write is not None:
                self.after_write(write)
            out.append(WrittenEvent(external_id=key, etag=resource.etag))
        return out

    def delete_events(
        self, account: AccountRef, calendar_id: str, deletes: Sequence[EventDelete]
    ) -> list[ProviderError | None]:
        calendar = self._calendar(account, calendar_id)
        out: list[ProviderError | None] = []
        for item in deletes:
            if self.fail_deletes:
                out.append(ProviderError("500 Internal Server Error"))
                continue
            if calendar.resources.pop(item.external_id, None) is not None:
                calendar.deleted[item.external_id] = next(_clock)
            out.append(None)
        return out

    def find_event(self, account: AccountRef, calendar_id: str, uid: str) -> WrittenEvent | None:
        held = self._calendar(account, calendar_id).resources.get(f"/{calendar_id}/{uid}.ics")
        return WrittenEvent(held[1].key, held[1].etag) if held else None

    def exported(self, email: str, calendar_id: str) -> dict[str, EventResource]:
        """The tagged events in a calendar, by key."""
        calendar = self.provider.accounts[email.lower()].calendars[calendar_id]
        return {
            key: r for key, (_, r) in calendar.resources.items() if EXPORT_ICAL_PROPERTY in r.ical
        }
