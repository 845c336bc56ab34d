"""Dashboard pages over the service layer: schedules, connections, Connect, calendars,
disconnect, the week view, and the permission checks behind them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from calsync.api.app import create_app
from calsync.dashboard.signin import admin_identity
from calsync.dashboard.week_grid import monday_of
from calsync.domain import ConnectionStatus, ErrorReason
from calsync.providers.registry import ICLOUD_PROVIDER_ID
from calsync.service.platform import sessions
from calsync.service.runtime import Runtime
from calsync.service.sync.run import sync_connection_quietly
from calsync.store.db import transaction
from calsync.store.models import Connection, ExportTarget, OAuthAttempt
from tests.conftest import FAKE_PROVIDER_ID, TENANT, Api, new_key, random_guid
from tests.dashboard.helpers import (
    add_connection,
    add_schedule,
    csrf_of,
    sign_in_with_key,
    sign_in_with_link,
)
from tests.fakes import FakeProvider

OWNER_A, OWNER_B = random_guid(), random_guid()
EMAIL, PASSWORD = "ada@example.com", "ada-pw"


@dataclass
class World:
    client: TestClient
    rt: Runtime
    fake: FakeProvider
    schedule_a: str
    schedule_b: str


@pytest.fixture
def world(runtime: Runtime, fake_provider: FakeProvider) -> Iterator[World]:
    fake_provider.add_account(EMAIL, PASSWORD)
    fake_provider.add_calendar(EMAIL, "work", "Work", primary=True)
    fake_provider.add_calendar(EMAIL, "home", "Home")
    a, b = random_guid(), random_guid()
    add_schedule(runtime, a, OWNER_A, "Ada Lovelace", "Europe/Berlin")
    add_schedule(runtime, b, OWNER_B, "Grace Hopper", "America/New_York")
    with TestClient(create_app(runtime, worker=False)) as client:
        yield World(client, runtime, fake_provider, a, b)


def test_an_admin_picks_a_schedule_and_sees_its_connections(world: World) -> None:
    connection_id = add_connection(world.rt, world.schedule_a, FAKE_PROVIDER_ID, EMAIL, PASSWORD)
    sign_in_with_link(world.client, world.rt)
    home = world.client.get("/dashboard")
    assert "Ada Lovelace" in home.text and "Grace Hopper" in home.text
    page = world.client.get(f"/dashboard/schedules/{world.schedule_a}")
    assert page.status_code == 200
    assert EMAIL in page.text
    assert "Connected, first sync pending" in page.text
    assert "Last successful sync" in page.text and "never" in page.text
    assert f"/dashboard/connections/{connection_id}/disconnect" in page.text
    assert "Connect Test CalDAV" in page.text
    other = world.client.get(f"/dashboard/schedules/{world.schedule_b}")
    assert EMAIL not in other.text
    assert "No calendar is connected" in other.text


def test_errors_are_shown_in_plain_words(world: World) -> None:
    connection_id = add_connection(world.rt, world.schedule_a, FAKE_PROVIDER_ID, EMAIL, PASSWORD)
    sign_in_with_link(world.client, world.rt)
    with transaction(world.rt.db) as session:
        row = session.get(Connection, connection_id)
        assert row is not None
        row.status, row.error_reason = ConnectionStatus.ERROR.value, ErrorReason.TOKEN_REVOKED.value
        row.last_error = "401 Unauthorized"
    page = world.client.get(f"/dashboard/schedules/{world.schedule_a}")
    assert "Test CalDAV refused the saved access: connect again." in page.text
    assert "401 Unauthorized" in page.text  # under "Technical details"
    with transaction(world.rt.db) as session:
        row = session.get(Connection, connection_id)
        assert row is not None
        row.status, row.error_reason = ConnectionStatus.SYNCED.value, ErrorReason.UNDEFINED.value
        row.failure_count, row.last_error = 2, "connection refused"
    page = world.client.get(f"/dashboard/schedules/{world.schedule_a}")
    assert "could not be reached or answered with an error (2 times in a row)" in page.text


def test_a_user_sees_only_their_own_schedules_and_connections(world: World) -> None:
    own = add_connection(world.rt, world.schedule_a, FAKE_PROVIDER_ID, EMAIL, PASSWORD)
    world.fake.add_account("grace@example.com", "grace-pw")
    world.fake.add_calendar("grace@example.com", "main", "Main")
    foreign = add_connection(
        world.rt, world.schedule_b, FAKE_PROVIDER_ID, "grace@example.com", "grace-pw"
    )
    assert sign_in_with_key(world.client, new_key(world.rt, user_id=OWNER_A)).status_code == 303
    home = world.client.get("/dashboard")
    assert "Ada Lovelace" in home.text
    assert "Grace Hopper" not in home.text
    assert world.client.get(f"/dashboard/schedules/{world.schedule_a}").status_code == 200
    assert world.client.get(f"/dashboard/connections/{own}").status_code == 200
    assert world.client.get(f"/dashboard/schedules/{world.schedule_b}").status_code == 404
    assert world.client.get(f"/dashboard/schedules/{world.schedule_b}/week").status_code == 404
    refused = world.client.get(f"/dashboard/connections/{foreign}")
    assert refused.status_code == 403
    assert "grace@example.com" not in refused.text
    csrf = csrf_of(home)
    for path in (f"/dashboard/connections/{foreign}/disconnect",):
        assert world.client.post(path, data={"csrf": csrf}).status_code == 403
    connect = world.client.post(
        f"/dashboard/schedules/{world.schedule_b}/connect/{FAKE_PROVIDER_ID}",
        data={"csrf": csrf, "email": EMAIL, "password": PASSWORD},
    )
    assert connect.status_code in (403, 404)
    with transaction(world.rt.db) as session:
        row = session.get(Connection, foreign)
        assert row is not None and row.status != ConnectionStatus.DISCONNECTED.value
        assert session.scalars(
            select(Connection).where(Connection.schedule_id == world.schedule_b)
        ).all() == [row]


def test_connect_by_credentials_shows_errors_next_to_the_fields(world: World) -> None:
    sign_in_with_link(world.client, world.rt)
    path = f"/dashboard/schedules/{world.schedule_a}/connect/{FAKE_PROVIDER_ID}"
    form = world.client.get(path)
    assert '<label for="email">' in form.text and '<label for="password">' in form.text
    csrf = csrf_of(form)
    empty = world.client.post(path, data={"csrf": csrf, "email": "", "password": ""})
    assert empty.status_code == 400
    assert 'id="email-error"' in empty.text and 'id="password-error"' in empty.text
    wrong = world.client.post(path, data={"csrf": csrf, "email": EMAIL, "password": "nope"})
    assert wrong.status_code == 400
    assert 'id="password-error"' in wrong.text
    assert "Test CalDAV refused this e-mail and password." in wrong.text
    assert f'value="{EMAIL}"' in wrong.text  # the e-mail is kept, the password is not
    world.fake.unreachable = True
    down = world.client.post(path, data={"csrf": csrf, "email": EMAIL, "password": PASSWORD})
    assert 'id="form-error"' in down.text and "could not be reached" in down.text
    world.fake.unreachable = False
    ok = world.client.post(
        path, data={"csrf": csrf, "email": EMAIL, "password": PASSWORD}, follow_redirects=False
    )
    assert ok.status_code == 303
    assert ok.headers["location"].endswith("?connected=1")
    page = world.client.get(ok.headers["location"])
    assert "Connected. Now choose which calendars block time." in page.text
    assert "Work" in page.text and "Home" in page.text


def test_choosing_calendars_and_export(world: World) -> None:
    connection_id = add_connection(world.rt, world.schedule_a, FAKE_PROVIDER_ID, EMAIL, PASSWORD)
    sign_in_with_link(world.client, world.rt)
    page = world.client.get(f"/dashboard/connections/{connection_id}")
    # CalDAV: import from specific calendars; export only into a dedicated calendar.
    assert 'id="import-specific"' in page.text
    assert 'id="export-dedicated"' in page.text and 'id="export-primary"' not in page.text
    csrf = csrf_of(page)
    url = f"/dashboard/connections/{connection_id}/sync-config"
    none_ticked = world.client.post(url, data={"csrf": csrf, "import": "specific", "export": "off"})
    assert none_ticked.status_code == 400
    assert 'id="import-error"' in none_ticked.text
    assert "Tick at least one calendar" in none_ticked.text
    saved = world.client.post(
        url,
        data={"csrf": csrf, "import": "specific", "calendar": ["home"], "export": "off"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    with transaction(world.rt.db) as session:
        row = session.get(Connection, connection_id)
        assert row is not None
        assert row.sync_config["import"] == {"enabled": True, "calendars": ["home"]}
        assert row.sync_config["export"]["enabled"] is False
    shown = world.client.get(saved.headers["location"])
    assert "Saved." in shown.text
    assert 'value="home"\n                 checked' in shown.text or 'value="home" checked' in (
        " ".join(shown.text.split())
    )
    world.client.post(url, data={"csrf": csrf, "import": "primary", "export": "dedicated"})
    with transaction(world.rt.db) as session:
        row = session.get(Connection, connection_id)
        assert row is not None
        assert row.sync_config["import"] == {"enabled": True, "calendars": None}
        assert row.sync_config["export"]["target"] == "dedicated"


def test_disconnect_asks_first(world: World) -> None:
    connection_id = add_connection(world.rt, world.schedule_a, FAKE_PROVIDER_ID, EMAIL, PASSWORD)
    sign_in_with_link(world.client, world.rt)
    confirm = world.client.get(f"/dashboard/connections/{connection_id}/disconnect")
    assert "Yes, disconnect" in confirm.text and "No, keep it" in confirm.text
    with transaction(world.rt.db) as session:  # asking changed nothing
        row = session.get(Connection, connection_id)
        assert row is not None and row.status != ConnectionStatus.DISCONNECTED.value
    done = world.client.post(
        f"/dashboard/connections/{connection_id}/disconnect",
        data={"csrf": csrf_of(confirm)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    page = world.client.get(done.headers["location"])
    assert "The calendar account was disconnected." in page.text
    assert "No calendar is connected" in page.text


def test_the_week_view_shows_busy_events_and_sessions(world: World) -> None:
    monday = monday_of(date.today()) + timedelta(days=14)
    tuesday, wednesday, friday = (monday + timedelta(days=n) for n in (1, 2, 4))
    world.fake.put(
        EMAIL,
        "work",
        "standup.ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:standup\r\n"
        f"DTSTAMP:20260101T000000Z\r\nSUMMARY:Standup\r\nDTSTART:{tuesday:%Y%m%d}T080000Z\r\n"
        f"DTEND:{tuesday:%Y%m%d}T090000Z\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:trip\r\n"
        "DTSTAMP:20260101T000000Z\r\nSUMMARY:Conference trip\r\n"
        f"DTSTART;VALUE=DATE:{wednesday:%Y%m%d}\r\nDTEND;VALUE=DATE:{friday:%Y%m%d}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    add_connection(world.rt, world.schedule_a, FAKE_PROVIDER_ID, EMAIL, PASSWORD)
    berlin = ZoneInfo("Europe/Berlin")
    sessions.put_session(
        world.rt,
        identity=admin_identity(TENANT),
        schedule_id=world.schedule_a,
        session_id="yoga-1",
        data=sessions.SessionInput(
            title="Yoga class",
            status="CONFIRMED",
            time_zone="Europe/Berlin",
            start=datetime.combine(tuesday, time(9, 30), berlin),
            end=datetime.combine(tuesday, time(10, 30), berlin),
        ),
    )
    sign_in_with_link(world.client, world.rt)
    url = f"/dashboard/schedules/{world.schedule_a}/week?start={wednesday.isoformat()}"
    page = world.client.get(url)
    assert page.status_code == 200, page.text
    text = " ".join(page.text.split())
    assert f"Week of {monday.day} {monday:%b} - " in text
    assert "Times in Europe/Berlin." in text
    standup = datetime.combine(tuesday, time(8), UTC).astimezone(berlin)
    label = f"{standup:%H:%M}-{standup + timedelta(hours=1):%H:%M}"
    assert label in text and "Standup" in text
    assert "09:30-10:30" in text and "Yoga class" in text
    # They overlap, so they share the day column's width, busy event first.
    assert "left: 0.000%; width: 50.000%" in text and "left: 50.000%; width: 50.000%" in text
    assert "Conference trip" in text and "grid-column: 3 / span 2" in text
    previous, following = monday - timedelta(days=7), monday + timedelta(days=7)
    assert f"?start={previous.isoformat()}" in text and f"?start={following.isoformat()}" in text


def test_connect_by_oauth_starts_at_the_provider_and_returns_to_the_dashboard(
    make_runtime: object,
) -> None:
    google_id = "6f1c1f8e-3c1a-4a40-9a49-0f2b2a6f1b01"
    toml = "\n".join(
        [
            "[[providers]]",
            f'id = "{google_id}"',
            'kind = "google"',
            'client_id = "dashboard-test"',
            'client_secret = "s"',
            'authorize_url = "http://127.0.0.1:9/authorize"',
            'token_url = "http://127.0.0.1:9/token"',
            'api_url = "http://127.0.0.1:9/api"',
            "",
        ]
    )
    rt = make_runtime(extra_toml=toml)  # type: ignore[operator]
    schedule_id = random_guid()
    add_schedule(rt, schedule_id, OWNER_A, "Ada", "UTC")
    with TestClient(create_app(rt, worker=False)) as client:
        sign_in_with_link(client, rt)
        page = client.get(f"/dashboard/schedules/{schedule_id}")
        assert f'name="provider_id" value="{google_id}"' in page.text
        started = client.post(
            f"/dashboard/schedules/{schedule_id}/connect/oauth",
            data={"csrf": csrf_of(page), "provider_id": google_id},
            follow_redirects=False,
        )
        assert started.status_code == 303
        location = started.headers["location"]
        assert location.startswith("http://127.0.0.1:9/authorize?")
        query = parse_qs(urlsplit(location).query)
        assert query["redirect_uri"] == [rt.settings.public_url + "/oauth/callback"]
        with transaction(rt.db) as session:
            attempt = session.scalars(select(OAuthAttempt)).one()
            assert attempt.redirect_url == (
                f"{rt.settings.public_url}/dashboard/schedules/{schedule_id}"
            )
        back = client.get(f"/dashboard/schedules/{schedule_id}?error=reject")
        assert "The connection was cancelled at the provider" in back.text


def test_icloud_explains_app_specific_passwords(world: World) -> None:
    sign_in_with_link(world.client, world.rt)
    page = world.client.get(f"/dashboard/schedules/{world.schedule_a}")
    assert f"/connect/{ICLOUD_PROVIDER_ID}" in page.text
    form = world.client.get(f"/dashboard/schedules/{world.schedule_a}/connect/{ICLOUD_PROVIDER_ID}")
    assert "app-specific password" in form.text
    assert 'href="https://appleid.apple.com"' in form.text
    assert '<label for="password">App-specific password</label>' in form.text


def _put_sessions(rt: Runtime, schedule_id: str, *titles: str) -> None:
    day = monday_of(date.today()) + timedelta(days=15)
    berlin = ZoneInfo("Europe/Berlin")
    for n, title in enumerate(titles):
        sessions.put_session(
            rt,
            identity=admin_identity(TENANT),
            schedule_id=schedule_id,
            session_id=f"s-{n}",
            data=sessions.SessionInput(
                title=title,
                status="CONFIRMED",
                time_zone="Europe/Berlin",
                start=datetime.combine(day, time(9 + 2 * n), berlin),
                end=datetime.combine(day, time(10 + 2 * n), berlin),
            ),
        )


def _card_text(world: World) -> str:
    page = world.client.get(f"/dashboard/schedules/{world.schedule_a}")
    assert page.status_code == 200, page.text
    return " ".join(page.text.split())


def _dedicated_calendar(rt: Runtime, connection_id: str) -> str:
    with transaction(rt.db) as session:
        target = session.get(ExportTarget, connection_id)
        assert target is not None and target.dedicated_calendar_id is not None
        return target.dedicated_calendar_id


def test_connection_cards_say_where_bookings_go(world: World) -> None:
    connection_id = add_connection(world.rt, world.schedule_a, FAKE_PROVIDER_ID, EMAIL, PASSWORD)
    sign_in_with_link(world.client, world.rt)
    assert "Bookings go to: a calendar “Bookings” that calsync creates for the first booking" in (
        _card_text(world)
    )
    _put_sessions(world.rt, world.schedule_a, "Yoga class", "Pilates")
    sync_connection_quietly(world.rt, connection_id)
    text = _card_text(world)
    assert "Bookings go to: a calendar “Bookings” calsync created · 2 exported · last written " in (
        text
    )
    assert "were put back" not in text and "was put back" not in text
    # The same words on the connection's page and next to the week.
    assert "calsync created · 2 exported" in world.client.get(
        f"/dashboard/connections/{connection_id}"
    ).text.replace("\n", " ")
    week = world.client.get(f"/dashboard/schedules/{world.schedule_a}/week")
    assert "calsync created · 2 exported" in week.text and 'id="connections-h"' in week.text

    # The account owner deletes one exported booking: calsync puts it back, and says so.
    sync_connection_quietly(world.rt, connection_id)  # the edit watch starts here
    calendar_id = _dedicated_calendar(world.rt, connection_id)
    exported = world.fake.writer.exported(EMAIL, calendar_id)
    world.fake.delete(EMAIL, calendar_id, sorted(exported)[0])
    sync_connection_quietly(world.rt, connection_id)
    assert "1 booking moved or deleted in the calendar was put back" in _card_text(world)

    page = world.client.get(f"/dashboard/connections/{connection_id}")
    world.client.post(
        f"/dashboard/connections/{connection_id}/sync-config",
        data={"csrf": csrf_of(page), "import": "primary", "export": "off"},
    )
    assert "Bookings are not exported" in _card_text(world)


def test_a_deleted_bookings_calendar_says_what_to_do(world: World) -> None:
    connection_id = add_connection(world.rt, world.schedule_a, FAKE_PROVIDER_ID, EMAIL, PASSWORD)
    _put_sessions(world.rt, world.schedule_a, "Yoga class")
    sync_connection_quietly(world.rt, connection_id)
    # The account owner deletes the calendar calsync created.
    del world.fake.accounts[EMAIL].calendars[_dedicated_calendar(world.rt, connection_id)]
    sync_connection_quietly(world.rt, connection_id)
    with transaction(world.rt.db) as session:
        row = session.get(Connection, connection_id)
        assert row is not None
        assert row.error_reason == ErrorReason.EXTERNAL_CALENDAR_DELETED.value
    sign_in_with_link(world.client, world.rt)
    text = _card_text(world)
    assert "Needs attention" in text
    assert (
        "The “Bookings” calendar was deleted in the Test CalDAV account; "
        "choose where bookings go to export again." in text
    )
    assert f'href="/dashboard/connections/{connection_id}#choice-h">Choose where bookings go' in (
        text
    )
    assert "Bookings are not exported until you choose where they go" in text


def test_a_refused_bookings_calendar_says_what_to_do(world: World) -> None:
    world.fake.writer.fail_calendar_creation = True
    connection_id = add_connection(world.rt, world.schedule_a, FAKE_PROVIDER_ID, EMAIL, PASSWORD)
    _put_sessions(world.rt, world.schedule_a, "Yoga class")
    sync_connection_quietly(world.rt, connection_id)
    sign_in_with_link(world.client, world.rt)
    text = _card_text(world)
    assert (
        "Test CalDAV did not let calsync create the “Bookings” calendar, so bookings are not "
        "exported; choose where bookings go to try again." in text
    )
    assert "403 Forbidden" in text  # under "Technical details"


def test_the_root_leads_to_the_dashboard_and_docs_to_the_api_document(api: Api) -> None:
    root = api.client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/dashboard"
    docs = api.client.get("/docs", follow_redirects=False)
    assert docs.status_code == 307 and docs.headers["location"] == "/openapi.json"
    assert api.client.get("/docs").json()["openapi"].startswith("3.")
