"""GoogleCalendarProvider against the Google Calendar API v3 fake (real HTTP on 127.0.0.1).

Every test's fixture checks at the end that the adapter's requests conformed to Google's
discovery document and that the fake's answers conformed to its schemas.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from calsync.ical.expand import BusyInstance, expand_resource
from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarChanges,
    CalendarGone,
    Credentials,
    CursorExpired,
    ProviderError,
    ProviderUnreachable,
    RateLimitedByProvider,
    UnsupportedAccount,
)
from calsync.providers.google import SYNC_PREFIX, GoogleCalendarProvider
from tests.peers.google_fake import GoogleFake, start_google_fake

EMAIL = "ada@example.com"
TOKEN = "ya29.secret-access-token-ada"
PRIMARY = EMAIL
BERLIN = ZoneInfo("Europe/Berlin")
KOLKATA = ZoneInfo("Asia/Kolkata")


@pytest.fixture(scope="module")
def server() -> Iterator[GoogleFake]:
    with start_google_fake() as fake:
        yield fake


@pytest.fixture
def fake(server: GoogleFake) -> Iterator[GoogleFake]:
    fake = server
    fake.reset()
    fake.page_size = 2
    fake.add_account(EMAIL, token=TOKEN)
    fake.add_calendar(EMAIL, PRIMARY, "Ada Lovelace", primary=True, time_zone="Europe/Berlin")
    yield fake
    assert fake.violations == []
    assert fake.response_violations == []
    assert fake.unimplemented == []


@pytest.fixture
def provider(fake: GoogleFake) -> GoogleCalendarProvider:
    return GoogleCalendarProvider(fake.api_url, timeout=5.0)


ACCOUNT = AccountRef(EMAIL, access_token=TOKEN)
NOW = datetime.now(UTC)
WINDOW = (NOW - timedelta(days=90), NOW + timedelta(days=400))


def day(offset: int) -> date:
    return (NOW + timedelta(days=offset)).date()


def at(offset: int, hour: int, zone: ZoneInfo = BERLIN, minute: int = 0) -> datetime:
    return datetime.combine(day(offset), time(hour, minute), zone)


def timed(event_id: str, start: datetime, minutes: int = 60, **extra: Any) -> dict[str, Any]:
    end = start + timedelta(minutes=minutes)
    return {
        "id": event_id,
        "summary": extra.pop("summary", event_id),
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": end.isoformat()},
        **extra,
    }


def busy(changes: CalendarChanges) -> dict[str, list[BusyInstance]]:
    """Resource key -> busy instances, as the sync step's expansion sees them."""
    return {
        r.key: expand_resource(
            r.ical,
            window_start=WINDOW[0],
            window_end=WINDOW[1],
            owner_emails=frozenset({EMAIL}),
            local_tz=ZoneInfo("UTC"),
        )
        for r in changes.upserted
    }


def events_list_requests(fake: GoogleFake) -> list[dict[str, str]]:
    return [r.params for r in fake.requests_for("events.list")]


# --- accounts and calendars --------------------------------------------------------------------


def test_verify_is_not_for_oauth_accounts(provider: GoogleCalendarProvider) -> None:
    with pytest.raises(UnsupportedAccount, match="OAuth"):
        provider.verify(Credentials(EMAIL, "password"))


def test_missing_access_token_is_refused_without_a_request(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    with pytest.raises(AuthRejected):
        provider.list_calendars(AccountRef(EMAIL))
    with pytest.raises(AuthRejected):
        provider.read_changes(AccountRef(EMAIL), PRIMARY, None, {})
    assert fake.requests == []


def test_list_calendars_primary_first_then_by_name(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    fake.add_calendar(EMAIL, "zeta@group.calendar.google.com", "zeta")
    fake.add_calendar(EMAIL, "b2@group.calendar.google.com", "Beta", access_role="reader")
    fake.add_calendar(EMAIL, "b1@group.calendar.google.com", "beta", access_role="freeBusyReader")
    fake.add_calendar(
        EMAIL,
        "alpha@group.calendar.google.com",
        "Zzz",
        summary_override="Alpha",
        access_role="writer",
    )
    calendars = provider.list_calendars(ACCOUNT)
    assert [(c.id, c.name, c.is_primary, c.read_only) for c in calendars] == [
        (PRIMARY, "Ada Lovelace", True, False),
        ("alpha@group.calendar.google.com", "Alpha", False, False),
        ("b1@group.calendar.google.com", "beta", False, True),
        ("b2@group.calendar.google.com", "Beta", False, True),
        ("zeta@group.calendar.google.com", "zeta", False, False),
    ]
    assert len(fake.requests_for("calendarList.list")) == 3  # pages of two


def test_account_without_calendar_service_is_unsupported(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    token = fake.add_account("nocal@example.com", calendar_user=False)
    with pytest.raises(UnsupportedAccount):
        provider.list_calendars(AccountRef("nocal@example.com", access_token=token))


# --- full reads ----------------------------------------------------------------------------------


def test_full_read_pages_and_translates_events(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    kolkata = at(3, 9, KOLKATA, minute=30)
    fake.put_event(EMAIL, PRIMARY, timed("timed", kolkata, 45, summary="Standup"))
    fake.put_event(
        EMAIL,
        PRIMARY,
        {
            "id": "allday",
            "summary": "Conference",
            "start": {"date": day(5).isoformat()},
            "end": {"date": day(7).isoformat()},
        },
    )
    fake.put_event(EMAIL, PRIMARY, timed("free", at(4, 8), transparency="transparent"))
    attendees = [
        {"email": "boss@example.com", "organizer": True, "responseStatus": "accepted"},
        {"email": "ada.lovelace@example.com", "self": True, "responseStatus": "declined"},
    ]
    fake.put_event(EMAIL, PRIMARY, timed("declined", at(4, 10), attendees=attendees))
    fake.put_event(EMAIL, PRIMARY, timed("tentative", at(4, 12), status="tentative"))
    exported = {"private": {"calsyncSessionId": "sess-42"}}
    fake.put_event(EMAIL, PRIMARY, timed("exported", at(4, 14), extendedProperties=exported))
    fake.put_event(EMAIL, PRIMARY, timed("too-late", at(420, 9)))
    fake.put_event(EMAIL, PRIMARY, timed("too-early", at(-100, 9)))

    changes = provider.read_changes(ACCOUNT, PRIMARY, None, {})

    assert changes.full and changes.deleted == []
    assert changes.cursor is not None and changes.cursor.startswith(SYNC_PREFIX)
    keys = ["allday", "declined", "exported", "free", "tentative", "timed"]
    assert [r.key for r in changes.upserted] == keys
    assert all(r.etag.startswith('"') for r in changes.upserted)
    requests = events_list_requests(fake)
    assert len(requests) == 3  # six events in pages of two
    first = requests[0]
    assert first["singleEvents"] == "true" and first["showDeleted"] == "false"
    assert first["maxResults"] == "2500" and "syncToken" not in first
    time_min = datetime.fromisoformat(first["timeMin"])
    time_max = datetime.fromisoformat(first["timeMax"])
    now = datetime.now(UTC)  # not NOW: the module may have been imported minutes ago
    assert abs(time_min - (now - timedelta(days=90))) < timedelta(minutes=5)
    assert timedelta(days=399) < time_max - now < timedelta(days=420)
    assert all({k: v for k, v in r.items() if k != "pageToken"} == first for r in requests)

    found = busy(changes)
    assert [(i.title, i.start, i.end) for i in found["timed"]] == [
        ("Standup", kolkata.astimezone(UTC), kolkata.astimezone(UTC) + timedelta(minutes=45))
    ]
    (allday,) = found["allday"]
    assert allday.all_day and (allday.start_date, allday.end_date) == (day(5), day(7))
    assert found["tentative"] != []
    assert found["free"] == found["declined"] == found["exported"] == []

    ical = {r.key: r.ical for r in changes.upserted}
    assert f"DTSTART:{kolkata.astimezone(UTC):%Y%m%dT%H%M%SZ}" in ical["timed"]
    assert f"DTSTART;VALUE=DATE:{day(5):%Y%m%d}" in ical["allday"]
    assert "TRANSP:TRANSPARENT" in ical["free"]
    assert f"ATTENDEE;PARTSTAT=DECLINED:mailto:{EMAIL}" in ical["declined"]
    assert "boss@example.com" not in ical["declined"]
    assert "STATUS:TENTATIVE" in ical["tentative"]
    assert "X-CALSYNC-EXPORT:sess-42" in ical["exported"]
    assert "UID:timed@google.com" in ical["timed"]
    assert all(text.count("BEGIN:VEVENT") == 1 for text in ical.values())


def test_recurring_event_is_read_as_instances(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    first = at(2, 10)
    series = timed("weekly", first, summary="Weekly sync")
    series["start"]["timeZone"] = series["end"]["timeZone"] = "Europe/Berlin"
    third = first + timedelta(weeks=2)
    exdate = (first + timedelta(weeks=3)).strftime("%Y%m%dT%H%M%S")
    series["recurrence"] = ["RRULE:FREQ=WEEKLY;COUNT=6", f"EXDATE;TZID=Europe/Berlin:{exdate}"]
    fake.put_event(EMAIL, PRIMARY, series)
    second = first + timedelta(weeks=1)
    fake.delete_event(EMAIL, PRIMARY, f"weekly_{second.astimezone(UTC):%Y%m%dT%H%M%SZ}")
    moved = {
        "recurringEventId": "weekly",
        "originalStartTime": {"dateTime": third.isoformat(), "timeZone": "Europe/Berlin"},
        **timed("ignored", third + timedelta(hours=3), summary="Weekly sync (moved)"),
    }
    del moved["id"]
    fake.put_event(EMAIL, PRIMARY, moved)

    changes = provider.read_changes(ACCOUNT, PRIMARY, None, {})

    weeks = [first + timedelta(weeks=n) for n in range(6)]  # 1 cancelled, 2 moved, 3 excluded
    starts = {weeks[0]: weeks[0], weeks[2]: third + timedelta(hours=3), **{w: w for w in weeks[4:]}}
    expected = {f"weekly_{w.astimezone(UTC):%Y%m%dT%H%M%SZ}": s for w, s in starts.items()}
    assert sorted(r.key for r in changes.upserted) == sorted(expected)
    found = busy(changes)
    for key, start in expected.items():
        (instance,) = found[key]
        assert instance.start == start.astimezone(UTC)
        assert instance.end == start.astimezone(UTC) + timedelta(hours=1)
    texts = [r.ical for r in changes.upserted]
    assert all("UID:weekly@google.com" in t and "RECURRENCE-ID:" in t for t in texts)
    # Instances of one series share their UID but not their instance keys.
    assert len({i.key for instances in found.values() for i in instances}) == len(expected)


# --- incremental reads -----------------------------------------------------------------------


def _full(fake: GoogleFake, provider: GoogleCalendarProvider) -> CalendarChanges:
    changes = provider.read_changes(ACCOUNT, PRIMARY, None, {})
    fake.clear_log()
    return changes


def _known(changes: CalendarChanges) -> dict[str, str]:
    return {r.key: r.etag for r in changes.upserted}


def test_incremental_read_returns_exactly_the_changes(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    for n in range(4):
        fake.put_event(EMAIL, PRIMARY, timed(f"e{n}", at(3 + n, 9)))
    full = _full(fake, provider)
    assert [r.key for r in full.upserted] == ["e0", "e1", "e2", "e3"]

    fake.put_event(EMAIL, PRIMARY, timed("new", at(10, 9), summary="Added"))
    fake.put_event(EMAIL, PRIMARY, timed("e1", at(3, 15), summary="Moved"))
    fake.delete_event(EMAIL, PRIMARY, "e2")
    changes = provider.read_changes(ACCOUNT, PRIMARY, full.cursor, _known(full))

    assert not changes.full
    assert [r.key for r in changes.upserted] == ["e1", "new"]
    assert changes.deleted == ["e2"]
    assert changes.cursor is not None and changes.cursor != full.cursor
    found = busy(changes)
    assert found["e1"][0].title == "Moved" and found["e1"][0].start == at(3, 15).astimezone(UTC)
    requests = events_list_requests(fake)
    assert len(requests) == 2  # three changes in pages of two
    assert full.cursor is not None
    for request in requests:
        assert request["syncToken"] == full.cursor.split(":", 2)[2]
        assert request["singleEvents"] == "true"
        assert not {"timeMin", "timeMax", "showDeleted"} & request.keys()

    fake.clear_log()
    again = provider.read_changes(ACCOUNT, PRIMARY, changes.cursor, {})
    assert (again.upserted, again.deleted, again.cursor) == ([], [], changes.cursor)
    assert len(fake.requests) == 1


def test_known_versions_are_not_upserted_again(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    fake.put_event(EMAIL, PRIMARY, timed("e0", at(3, 9)))
    fake.put_event(EMAIL, PRIMARY, timed("e1", at(4, 9)))
    full = _full(fake, provider)
    fake.put_event(EMAIL, PRIMARY, timed("e0", at(3, 10)))
    fake.put_event(EMAIL, PRIMARY, timed("e1", at(4, 10)))
    stored = _known(provider.read_changes(ACCOUNT, PRIMARY, None, {}))
    stored["e1"] = full.upserted[1].etag  # the store holds e0's new version, e1's old one
    changes = provider.read_changes(ACCOUNT, PRIMARY, full.cursor, stored)
    assert [r.key for r in changes.upserted] == ["e1"] and changes.deleted == []


def test_unchanged_calendar_costs_one_request(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    for n in range(5):
        fake.put_event(EMAIL, PRIMARY, timed(f"e{n}", at(3 + n, 9)))
    full = _full(fake, provider)
    changes = provider.read_changes(ACCOUNT, PRIMARY, full.cursor, _known(full))
    assert changes == CalendarChanges(False, [], [], full.cursor)
    assert len(fake.requests) == 1


def test_incremental_read_of_a_changed_series(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    series = timed("daily", at(1, 7), 30, summary="Gym")
    series["start"]["timeZone"] = series["end"]["timeZone"] = "Europe/Berlin"
    series["recurrence"] = ["RRULE:FREQ=DAILY;COUNT=5"]
    fake.put_event(EMAIL, PRIMARY, series)
    full = _full(fake, provider)
    keys = [r.key for r in full.upserted]
    assert len(keys) == 5

    fake.put_event(EMAIL, PRIMARY, {**series, "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"]})
    changes = provider.read_changes(ACCOUNT, PRIMARY, full.cursor, _known(full))
    assert changes.deleted == keys[3:]
    assert [r.key for r in changes.upserted] == keys[:3]  # new series version, new etags

    fake.delete_event(EMAIL, PRIMARY, "daily")
    gone = provider.read_changes(ACCOUNT, PRIMARY, changes.cursor, _known(changes))
    assert (gone.upserted, gone.deleted) == ([], keys[:3])


def test_incremental_read_keeps_to_the_window(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    fake.put_event(EMAIL, PRIMARY, timed("soon", at(3, 9)))
    full = _full(fake, provider)
    fake.put_event(EMAIL, PRIMARY, timed("soon", at(500, 9)))  # moved beyond the horizon
    fake.put_event(EMAIL, PRIMARY, timed("far", at(600, 9)))
    changes = provider.read_changes(ACCOUNT, PRIMARY, full.cursor, _known(full))
    assert (changes.upserted, changes.deleted) == ([], ["soon"])


def test_stale_cursor_leads_to_a_full_read(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    fake.put_event(EMAIL, PRIMARY, timed("e0", at(3, 9)))
    full = _full(fake, provider)
    assert full.cursor is not None
    token = full.cursor.split(":", 2)[2]
    old_window = int((NOW + timedelta(days=390)).timestamp())
    changes = provider.read_changes(ACCOUNT, PRIMARY, f"{SYNC_PREFIX}{old_window}:{token}", {})
    assert changes.full and [r.key for r in changes.upserted] == ["e0"]
    assert "syncToken" not in events_list_requests(fake)[0]


@pytest.mark.parametrize("cursor", ["sync:abc", "ctag:1", "gsync:", "gsync:notanumber:tok"])
def test_foreign_cursor_is_expired(
    fake: GoogleFake, provider: GoogleCalendarProvider, cursor: str
) -> None:
    with pytest.raises(CursorExpired):
        provider.read_changes(ACCOUNT, PRIMARY, cursor, {})
    assert fake.requests == []


def test_expired_sync_token_is_cursor_expired(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    fake.put_event(EMAIL, PRIMARY, timed("e0", at(3, 9)))
    full = _full(fake, provider)
    fake.expire_sync_tokens()
    with pytest.raises(CursorExpired):
        provider.read_changes(ACCOUNT, PRIMARY, full.cursor, {})
    fake.fail_next(410, method="events.list")
    with pytest.raises(CursorExpired):
        provider.read_changes(ACCOUNT, PRIMARY, full.cursor, {})
    assert [r.status for r in fake.requests] == [410, 410]
    assert provider.read_changes(ACCOUNT, PRIMARY, None, {}).full


# --- errors --------------------------------------------------------------------------------------


def _read_error(provider: GoogleCalendarProvider, cursor: str | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.read_changes(ACCOUNT, PRIMARY, cursor, {})
    assert TOKEN not in str(caught.value)
    return caught.value


def test_refused_token_is_auth_rejected(fake: GoogleFake, provider: GoogleCalendarProvider) -> None:
    fake.fail_next(401)
    assert type(_read_error(provider)) is AuthRejected
    with pytest.raises(AuthRejected) as caught:
        provider.list_calendars(AccountRef(EMAIL, access_token="ya29.revoked-token"))
    assert "ya29" not in str(caught.value)


@pytest.mark.parametrize("reason", ["rateLimitExceeded", "userRateLimitExceeded"])
def test_403_rate_limit_is_rate_limited(
    fake: GoogleFake, provider: GoogleCalendarProvider, reason: str
) -> None:
    fake.fail_next(403, reason=reason)
    error = _read_error(provider)
    assert isinstance(error, RateLimitedByProvider) and error.retry_after is None
    fake.fail_next(403, reason=reason, retry_after=12)
    error = _read_error(provider)
    assert isinstance(error, RateLimitedByProvider) and error.retry_after == 12


def test_429_is_rate_limited_with_retry_after(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    fake.fail_next(429, retry_after=30)
    error = _read_error(provider)
    assert isinstance(error, RateLimitedByProvider) and error.retry_after == 30
    fake.fail_next(429, method="calendarList.list")
    with pytest.raises(RateLimitedByProvider):
        provider.list_calendars(ACCOUNT)


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_unreachable(
    fake: GoogleFake, provider: GoogleCalendarProvider, status: int
) -> None:
    fake.fail_next(status)
    assert type(_read_error(provider)) is ProviderUnreachable
    full = _full(fake, provider)  # the next request is served again
    fake.fail_next(status)
    assert type(_read_error(provider, full.cursor)) is ProviderUnreachable


def test_network_failure_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = GoogleCalendarProvider(f"http://127.0.0.1:{port}/calendar/v3", timeout=2.0)
    assert type(_read_error(provider)) is ProviderUnreachable
    with pytest.raises(ProviderUnreachable):
        provider.list_calendars(ACCOUNT)


def test_deleted_calendar_is_gone(fake: GoogleFake, provider: GoogleCalendarProvider) -> None:
    fake.add_calendar(EMAIL, "team@group.calendar.google.com", "Team")
    fake.put_event(EMAIL, "team@group.calendar.google.com", timed("e0", at(3, 9)))
    full = provider.read_changes(ACCOUNT, "team@group.calendar.google.com", None, {})
    fake.remove_calendar(EMAIL, "team@group.calendar.google.com")
    for cursor in (None, full.cursor):
        with pytest.raises(CalendarGone):
            provider.read_changes(ACCOUNT, "team@group.calendar.google.com", cursor, {})
    with pytest.raises(CalendarGone):
        provider.read_changes(ACCOUNT, "never-existed@group.calendar.google.com", None, {})
    assert [c.id for c in provider.list_calendars(ACCOUNT)] == [PRIMARY]


def test_forbidden_calendar_is_gone_but_missing_scope_is_auth(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    fake.fail_next(403, reason="forbidden")
    assert type(_read_error(provider)) is CalendarGone
    fake.fail_next(403, reason="insufficientPermissions")
    assert type(_read_error(provider)) is AuthRejected
    fake.fail_next(403, reason="notACalendarUser")
    assert type(_read_error(provider)) is UnsupportedAccount


def test_calendar_ids_are_escaped_in_paths(
    fake: GoogleFake, provider: GoogleCalendarProvider
) -> None:
    odd = "en.usa#holiday@group.v.calendar.google.com"
    fake.add_calendar(EMAIL, odd, "Holidays", access_role="reader")
    fake.put_event(EMAIL, odd, {**timed("h1", at(3, 0)), "transparency": "transparent"})
    changes = provider.read_changes(ACCOUNT, odd, None, {})
    assert [r.key for r in changes.upserted] == ["h1"]
    assert fake.requests[-1].path.endswith(
        "/calendars/en.usa%23holiday%40group.v.calendar.google.com/events"
    )


def test_the_fake_refuses_what_google_would_refuse(fake: GoogleFake) -> None:
    """The conformance checks above mean something only if the fake can say no."""
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        typo = client.get(f"{fake.api_url}/calendars/{PRIMARY}/events?singleEvent=true")
        bounded = client.get(
            f"{fake.api_url}/calendars/{PRIMARY}/events",
            params={"syncToken": "x", "timeMin": "2026-01-01T00:00:00Z"},
        )
    assert typo.status_code == bounded.status_code == 400
    assert typo.json()["error"]["errors"][0]["location"] == "singleEvent"
    assert [v.problem for v in fake.violations] == [
        typo.json()["error"]["message"],
        bounded.json()["error"]["message"],
    ]
    fake.violations.clear()


def test_a_given_transport_is_used_and_left_open(fake: GoogleFake) -> None:
    seen: list[str] = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.url.path)
            return super().handle_request(request)

    with Counting() as transport:
        provider = GoogleCalendarProvider(fake.api_url, transport=transport)
        provider.list_calendars(ACCOUNT)
        provider.read_changes(ACCOUNT, PRIMARY, None, {})  # the transport is still open
    assert seen == [
        "/calendar/v3/users/me/calendarList",
        f"/calendar/v3/calendars/{PRIMARY}/events",
    ]
