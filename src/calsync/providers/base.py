"""The contract every provider adapter fulfils, and the errors adapters raise.

Adapters talk to one outside world (a CalDAV server, Google Calendar, Microsoft Graph); they
never touch the database. What they need to remember between calls (discovered URLs, tokens)
travels in ``AccountRef`` and in opaque per-calendar cursors that the sync step stores.

    ProviderError
    ├── AuthRejected          the server refused the credentials / tokens (401, invalid_grant)
    │   └── InvalidGrant      the refresh token itself was refused (revoked, expired): reconnect
    ├── ProviderUnreachable   network failure, timeout, 5xx: worth retrying later
    ├── RateLimitedByProvider 429 / 403 rate limit; ``retry_after`` seconds when known
    ├── CalendarGone          the calendar no longer exists (404 / 410 on the collection)
    ├── CursorExpired         the incremental cursor is no longer valid: do a full read
    ├── StaleEvent            a conditional write (If-Match) met another version: 412
    ├── UnsupportedAccount    the account cannot be connected (no calendar service, policy)
    └── OAuthFailure          the authorization server answered with an OAuth error code
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol


class ProviderError(Exception):
    """Base of adapter errors. Messages never contain secrets."""


class AuthRejected(ProviderError):
    pass


class InvalidGrant(AuthRejected):
    pass


class ProviderUnreachable(ProviderError):
    pass


class RateLimitedByProvider(ProviderError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CalendarGone(ProviderError):
    pass


class CursorExpired(ProviderError):
    pass


class StaleEvent(ProviderError):
    """The event changed since the ETag we hold (HTTP 412 Precondition Failed)."""


class UnsupportedAccount(ProviderError):
    pass


class OAuthFailure(ProviderError):
    """``error`` is the OAuth 2.0 error code (RFC 6749 section 5.2 / 4.1.2.1)."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error


@dataclass(frozen=True)
class OAuthTokens:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    scope: str = ""
    id_token: str | None = None


@dataclass(frozen=True)
class Credentials:
    """What the account owner gave us: login and secret (password or app-specific password)."""

    username: str
    password: str


@dataclass(frozen=True)
class AccountRef:
    """A verified external account: how to reach it again.

    ``credentials`` for providers that log in with a password (CalDAV), ``access_token`` (a
    current OAuth bearer token, refreshed by the caller) for OAuth providers. ``state`` is
    adapter-private, JSON-serialisable, non-secret data (e.g. the CalDAV principal and
    calendar-home URLs) that the store keeps beside the connection.
    """

    email: str
    credentials: Credentials | None = None
    state: dict[str, str] = field(default_factory=dict)
    access_token: str | None = None


@dataclass(frozen=True)
class ExternalCalendar:
    """One calendar of the account: ``id`` stable and opaque; at most one ``is_primary``."""

    id: str
    name: str
    is_primary: bool = False
    read_only: bool = False


@dataclass(frozen=True)
class EventResource:
    """One stored object of a calendar: for CalDAV an .ics resource (a UID with its overrides).

    ``key`` is unique within the calendar (the CalDAV href); ``ical`` is a VCALENDAR text.
    """

    key: str
    etag: str
    ical: str


@dataclass(frozen=True)
class CalendarChanges:
    """What changed in one calendar since ``cursor``.

    With ``full=True`` the ``upserted`` list is the calendar's complete content and anything
    stored but not listed must be dropped; otherwise only ``upserted`` and ``deleted`` changed.
    ``cursor`` is what to pass next time (None: the provider gave nothing to resume from).
    ``known_etags`` lets an adapter skip downloading resources the store already holds.
    """

    full: bool
    upserted: list[EventResource]
    deleted: list[str]
    cursor: str | None


@dataclass(frozen=True)
class PushChannel:
    """A live subscription to a calendar's changes: a Google channel (``id`` and its
    ``resource_id``) or a Graph subscription (``id``; ``resource_id`` empty)."""

    id: str
    resource_id: str
    expires_at: datetime


class PushChannels(Protocol):
    """Change notifications of a provider that offers them (Google, Microsoft Graph)."""

    def watch(
        self,
        account: AccountRef,
        calendar_id: str,
        *,
        address: str,
        secret: str,
        lifecycle_address: str | None,
        expires_at: datetime,
    ) -> PushChannel:
        """Subscribe ``address`` (an https URL) to changes of the calendar. ``secret`` comes
        back with every notification (Google channel token, Graph clientState). The provider
        may shorten ``expires_at``; the returned channel says when it really ends."""
        ...

    def renew(
        self, account: AccountRef, channel: PushChannel, *, expires_at: datetime
    ) -> PushChannel | None:
        """Extend the channel; None when the provider cannot (then watch anew, unwatch old)."""
        ...

    def unwatch(self, account: AccountRef, channel: PushChannel) -> None:
        """Stop the channel; a channel the provider no longer knows is not an error."""
        ...


EXPORT_ICAL_PROPERTY = "X-CALSYNC-EXPORT"  # iCalendar property marking calsync's own events


@dataclass(frozen=True)
class ExportEvent:
    """A session as it must appear in the external calendar.

    ``uid`` is derived from the connection and the session (lowercase hex, 32 characters), so
    a retried create can find or reuse what an interrupted one wrote: it is the CalDAV UID and
    resource name, the Google event id, the Graph ``transactionId``. ``tag`` is the value of the
    private marker (Google ``extendedProperties.private.calsyncSessionId``, Graph
    single-value extended property ``EXPORT_PROPERTY_ID``, iCalendar ``X-CALSYNC-EXPORT``);
    import skips events carrying it. Timed sessions have aware ``start``/``end``; all-day ones
    have ``start_date`` and exclusive ``end_date``. ``time_zone`` is an IANA name.
    """

    uid: str
    tag: str
    title: str
    time_zone: str
    start: datetime | None = None
    end: datetime | None = None
    start_date: date | None = None
    end_date: date | None = None
    location: str | None = None
    description: str | None = None

    @property
    def all_day(self) -> bool:
        return self.start_date is not None


@dataclass(frozen=True)
class WrittenEvent:
    """Where an exported event lives now. ``external_id`` is the key ``read_changes`` reports
    for it (CalDAV href path, Google event id, Graph event id) and ``etag`` the version
    ``read_changes`` would report, so that an external edit shows as a different etag."""

    external_id: str
    etag: str


@dataclass(frozen=True)
class EventWrite:
    """One create-or-replace. ``external_id`` None: not written yet as far as we know.
    ``etag``: write only if the event is still at that version (If-Match), else StaleEvent."""

    event: ExportEvent
    external_id: str | None = None
    etag: str | None = None


@dataclass(frozen=True)
class EventDelete:
    external_id: str
    etag: str | None = None


class ChangeCheck(Protocol):
    """A cheap question "did anything change?" for providers without push (CalDAV, iCloud):
    one request answers it for all of an account's calendars."""

    def changed_calendars(self, account: AccountRef, cursors: Mapping[str, str | None]) -> set[str]:
        """Of the calendars in ``cursors`` (calendar id -> the cursor of its last read), those
        whose contents may differ from what that read saw. A calendar the check cannot vouch
        for (no cursor, gone from the account, no comparable tag) counts as changed."""
        ...


class CalendarWriter(Protocol):
    """Export: writing calsync's sessions into the external account.

    Batch methods return one result per item, in order: the written event (or None for a
    delete) or the ``ProviderError`` that item met. Adapters use the provider's batch API where
    it has one (Graph ``$batch``, Google batch requests) and otherwise write one by one; an
    error that concerns the whole account or calendar (AuthRejected, CalendarGone,
    RateLimitedByProvider, ProviderUnreachable) may be raised instead of returned.
    """

    max_batch: int

    def create_calendar(
        self, account: AccountRef, name: str, *, key: str | None = None
    ) -> ExternalCalendar:
        """Create a calendar named ``name`` in the account. ``key`` (lowercase hex) marks it:
        creating again with the same key returns the calendar an interrupted earlier call
        created instead of a second one."""
        ...

    def delete_calendar(self, account: AccountRef, calendar_id: str) -> None:
        """Delete the calendar; one that is already gone is not an error."""
        ...

    def put_events(
        self, account: AccountRef, calendar_id: str, writes: Sequence[EventWrite]
    ) -> list[WrittenEvent | ProviderError]:
        """Make each event exist as given (idempotent: creating an event that an earlier,
        interrupted call already created replaces it, never duplicates it). An event that
        was deleted externally is created again. CalendarGone when the calendar is gone."""
        ...

    def delete_events(
        self, account: AccountRef, calendar_id: str, deletes: Sequence[EventDelete]
    ) -> list[ProviderError | None]:
        """Delete each event; one already gone is not an error."""
        ...

    def find_event(self, account: AccountRef, calendar_id: str, uid: str) -> WrittenEvent | None:
        """The event an earlier create with this ``uid`` wrote, if any (crash recovery)."""
        ...


class CalendarProvider(Protocol):
    """One adapter per provider kind. Every method may raise a ``ProviderError``.

    ``push`` is the provider's change-notification capability, or None (polling only);
    ``change_check`` its cheap change check, or None (push or polling keep it fresh);
    ``writer`` its export capability, or None (export not supported).
    """

    push: PushChannels | None
    change_check: ChangeCheck | None
    writer: CalendarWriter | None

    def verify(self, credentials: Credentials) -> AccountRef:
        """Check the credentials against the server and discover the account."""
        ...

    def list_calendars(self, account: AccountRef) -> list[ExternalCalendar]:
        """The account's event calendars, the primary one first."""
        ...

    def read_changes(
        self,
        account: AccountRef,
        calendar_id: str,
        cursor: str | None,
        known_etags: dict[str, str],
    ) -> CalendarChanges:
        """Changes since ``cursor`` (None: read everything). ``known_etags``: key -> etag held."""
        ...

    def read_window(
        self, account: AccountRef, calendar_id: str, start: datetime, end: datetime
    ) -> list[EventResource]:
        """Live, uncached: the calendar objects with instances in [start, end), for windows
        outside the stored horizon. May return objects that turn out to lie outside it."""
        ...
