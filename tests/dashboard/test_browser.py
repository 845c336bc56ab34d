"""The dashboard in a real browser (headless Debian Chromium via Playwright) against calsync
served by uvicorn and a real CalDAV server (Radicale): sign in with the one-time link, pick the
schedule, connect the account through the form (a wrong password first), choose calendars, look
at the week, on a desktop and a phone-sized screen, by mouse and by keyboard only, disconnect;
and connect a Google account through the OAuth round trip (oidc-provider's sign-in and consent
pages), or cancel it there. Screenshots are saved under ``tests/artifacts/screenshots/``; the
README's picture (``docs/dashboard.png``) comes from ``test_the_readme_picture``, with sessions
really exported, when run with ``CALSYNC_UPDATE_README_PICTURE=1``."""

from __future__ import annotations

import json
import os
import shutil
import time as clock
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync.dashboard.signin import admin_identity, issue_signin_link
from calsync.dashboard.week_grid import monday_of
from calsync.providers.registry import GOOGLE_PROVIDER_ID
from calsync.service.platform import sessions
from calsync.service.runtime import Runtime
from calsync.service.sync.report import sync_report
from calsync.service.sync.run import sync_connection
from tests.conftest import TENANT, random_guid
from tests.dashboard.helpers import add_schedule
from tests.dashboard.live import (
    SCREENSHOTS,
    chromium,
    focused,
    free_port,
    press_and_load,
    screenshot,
    serving,
    tab_to,
)
from tests.peers.dav_servers import DavServer, make_calendar, put_event
from tests.peers.fixtures import DAV_USERS, unique_name
from tests.peers.google_fake import GoogleFake, start_google_fake
from tests.peers.oidc_server import account_sub, start_oidc_provider

pytestmark = pytest.mark.peers
PROVIDER_ID = "7d2c4b1a-0e9f-4c3b-8a7d-6e5f4c3b2a19"
PROVIDER_NAME = "Studio CalDAV"
USER = "ada@example.com"
PASSWORD = DAV_USERS[USER]
TZ = "Europe/Berlin"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET = "calsync-dashboard", "calsync-dashboard-secret"
EMAIL = "ada@example.com"
SCOPES = ["openid", "email", "https://www.googleapis.com/auth/calendar.events"]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The browser tests exercise pages, not databases: SQLite only."""
    return f"sqlite:///{tmp_path / 'calsync.db'}"


@dataclass
class Site:
    rt: Runtime
    url: str
    schedule_id: str
    calendar_name: str
    calendar: str  # its URL on Radicale
    monday: date


def _event(uid: str, summary: str, *lines: str) -> str:
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//calsync dashboard tests//EN",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20260101T000000Z",
            f"SUMMARY:{summary}",
            *lines,
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


@pytest.fixture
def site(make_runtime: Callable[..., Runtime], radicale_server: DavServer) -> Iterator[Site]:
    """calsync on a loopback port with a Radicale provider, a schedule, a calendar holding a
    timed and an all-day event next week, and an exported session overlapping the timed one."""
    port = free_port()
    rt = make_runtime(
        providers=[(PROVIDER_ID, PROVIDER_NAME, radicale_server.base_url)],
        public_url=f"http://127.0.0.1:{port}",
        worker_tick_seconds=0.5,
    )
    schedule_id = random_guid()
    add_schedule(rt, schedule_id, random_guid(), "Ada Lovelace", TZ)
    monday = monday_of(date.today()) + timedelta(days=7)
    tuesday, thursday = monday + timedelta(days=1), monday + timedelta(days=3)
    calendar_name = f"Studio {unique_name('')[1:]}"
    calendar = make_calendar(radicale_server, USER, PASSWORD, unique_name("studio"), calendar_name)
    put_event(
        calendar,
        USER,
        PASSWORD,
        "dentist.ics",
        _event(
            unique_name("dentist"),
            "Dentist",
            f"DTSTART;TZID={TZ}:{tuesday:%Y%m%d}T100000",
            f"DTEND;TZID={TZ}:{tuesday:%Y%m%d}T113000",
        ),
    )
    put_event(
        calendar,
        USER,
        PASSWORD,
        "offsite.ics",
        _event(
            unique_name("offsite"),
            "Team offsite",
            f"DTSTART;VALUE=DATE:{thursday:%Y%m%d}",
            f"DTEND;VALUE=DATE:{thursday + timedelta(days=1):%Y%m%d}",
        ),
    )
    berlin = ZoneInfo(TZ)
    sessions.put_session(
        rt,
        identity=admin_identity(TENANT),
        schedule_id=schedule_id,
        session_id="yoga-1",
        data=sessions.SessionInput(
            title="Yoga class",
            status="CONFIRMED",
            time_zone=TZ,
            start=datetime.combine(tuesday, time(11), berlin),
            end=datetime.combine(tuesday, time(12), berlin),
        ),
    )
    with serving(rt, port) as url:
        yield Site(rt, url, schedule_id, calendar_name, calendar, monday)


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _week_url(site: Site) -> str:
    return f"{site.url}/dashboard/schedules/{site.schedule_id}/week?start={site.monday}"


def _check_week(page: Any, site: Site) -> None:
    busy = page.locator(".block.busy", has_text="Dentist")
    session = page.locator(".block.session", has_text="Yoga class")
    offsite = page.locator(".allday .bar", has_text="Team offsite")
    for thing in (busy, session, offsite):
        thing.wait_for(state="visible")
    assert "10:00-11:30" in busy.inner_text()
    assert "11:00-12:00" in session.inner_text()
    # Side by side: the busy event left of the overlapping session, same day column.
    busy_box, session_box, bar_box = (
        busy.bounding_box(),
        session.bounding_box(),
        offsite.bounding_box(),
    )
    assert busy_box["x"] + busy_box["width"] <= session_box["x"] + 1
    assert session_box["y"] > busy_box["y"]
    # All-day events on top of the hour grid.
    assert bar_box["y"] + bar_box["height"] <= busy_box["y"]


def _check_facts(page: Any, *, stacked: bool) -> None:
    """Every row of the connection card's facts is laid out alike: the value right of its label
    in one column of values (``stacked`` False), or directly under its label, no gap between."""
    rows = page.evaluate(
        """() => [...document.querySelectorAll('.facts > div')].map(row => {
            const t = row.querySelector('dt').getBoundingClientRect();
            const d = row.querySelector('dd').getBoundingClientRect();
            return {dt: [t.left, t.top, t.right, t.bottom], dd: [d.left, d.top, d.right, d.bottom],
                    label: row.querySelector('dt').innerText};
        })"""
    )
    assert [r["label"] for r in rows] == ["Status", "Last successful sync", "Next sync"]
    for row in rows:
        (dt_left, dt_top, dt_right, dt_bottom), (dd_left, dd_top, _, dd_bottom) = (
            row["dt"],
            row["dd"],
        )
        if stacked:
            assert abs(dd_left - dt_left) < 1, row
            assert -1 <= dd_top - dt_bottom <= 4, row  # directly below: no empty line
        else:
            assert dd_left >= dt_right, row
            assert dd_top < dt_bottom and dt_top < dd_bottom, row  # on the same line
            assert dd_bottom - dd_top < 40, row  # the value fits on one line
    if not stacked:
        assert len({round(r["dd"][0]) for r in rows}) == 1, rows  # one column of values


def test_the_main_flow_with_a_mouse(site: Site, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(issue_signin_link(site.rt, TENANT))
    page.get_by_role("button", name="Continue to the dashboard").click()
    page.get_by_role("heading", name="Schedules").wait_for()
    screenshot(page, "01-schedules")

    page.get_by_role("link", name="Ada Lovelace").click()
    page.get_by_role("heading", name="Connected calendars").wait_for()
    assert page.get_by_text("No calendar is connected to this schedule yet.").is_visible()
    page.get_by_role("link", name=f"Connect {PROVIDER_NAME}").click()

    page.get_by_label("E-mail or user name").fill(USER)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Connect").click()
    error = page.locator("#password-error")
    error.wait_for()
    assert f"{PROVIDER_NAME} refused this e-mail and password." in error.inner_text()
    assert page.get_by_label("Password").get_attribute("aria-describedby") == "password-error"
    screenshot(page, "02-connect-wrong-password")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Connect").click()
    page.get_by_text("Connected. Now choose which calendars block time.").wait_for()
    page.get_by_label("These calendars:").check()
    page.get_by_label(site.calendar_name).check()
    page.get_by_label("Off: bookings are not written to this account").check()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved.").wait_for()
    assert page.get_by_label(site.calendar_name).is_checked()
    screenshot(page, "03-calendars-saved")

    page.get_by_role("link", name="Schedule", exact=True).click()
    card = page.locator(".connection", has_text=USER)
    card.wait_for()
    page.get_by_role("link", name="Week view").click()
    page.get_by_role("link", name="Next week").click()
    _check_week(page, site)
    screenshot(page, "04-week")

    page.goto(f"{site.url}/dashboard/schedules/{site.schedule_id}")
    card = page.locator(".connection", has_text=USER)
    assert "Bookings are not exported" in card.inner_text()
    _check_facts(page, stacked=False)
    screenshot(page, "05-schedule-with-connection")

    page.get_by_role("link", name=f"Disconnect {PROVIDER_NAME} {USER}").click()
    page.get_by_role("heading", name=f"Disconnect {PROVIDER_NAME}?").wait_for()
    screenshot(page, "06-disconnect-confirm")
    page.get_by_role("button", name="Yes, disconnect").click()
    page.get_by_text("The calendar account was disconnected.").wait_for()
    assert page.get_by_text("No calendar is connected to this schedule yet.").is_visible()
    screenshot(page, "07-disconnected")


def test_a_phone_sized_screen(site: Site, browser: Any) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    page = context.new_page()
    page.goto(issue_signin_link(site.rt, TENANT))
    page.get_by_role("button", name="Continue to the dashboard").click()
    page.get_by_role("link", name="Ada Lovelace").click()
    page.get_by_role("link", name=f"Connect {PROVIDER_NAME}").click()
    page.get_by_label("E-mail or user name").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Connect").click()
    page.get_by_label("These calendars:").check()
    page.get_by_label(site.calendar_name).check()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved.").wait_for()
    screenshot(page, "phone-connection")
    for path in (f"/dashboard/schedules/{site.schedule_id}", ""):
        if path:
            page.goto(site.url + path)
        # Nothing is wider than the screen: the page itself never scrolls sideways.
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (path, overflow)
    _check_facts(page, stacked=True)
    screenshot(page, "phone-schedule")
    page.goto(_week_url(site))
    _check_week(page, site)
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0  # the week scrolls inside its own region instead
    region = page.get_by_role("region", name="Week of")
    assert region.evaluate("e => e.scrollWidth > e.clientWidth")
    screenshot(page, "phone-week", full_page=False)
    context.close()


def test_the_main_flow_by_keyboard_only(site: Site, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(issue_signin_link(site.rt, TENANT))
    # The browser applies autofocus at its next rendering update, which may come after "load".
    page.wait_for_function("() => document.activeElement !== document.body")
    assert focused(page)["text"] == "Continue to the dashboard"  # autofocus
    press_and_load(page)
    page.get_by_role("heading", name="Schedules").wait_for()

    # The skip link comes first and moves focus to the content.
    page.keyboard.press("Tab")
    skip = focused(page)
    assert skip["text"] == "Skip to content"
    assert skip["outline"] != "none"
    page.keyboard.press("Enter")
    assert focused(page)["id"] == "main"

    link = tab_to(page, "Ada Lovelace")
    assert link["tag"] == "A" and link["outline"] != "none"
    press_and_load(page)
    page.get_by_role("heading", name="Connected calendars").wait_for()
    tab_to(page, f"Connect {PROVIDER_NAME}")
    press_and_load(page)
    page.get_by_label("E-mail or user name").wait_for()
    assert focused(page)["id"] == "email"
    page.keyboard.type(USER)
    page.keyboard.press("Tab")
    page.keyboard.type("wrong")
    press_and_load(page)
    page.locator("#password-error").wait_for()
    assert focused(page)["id"] == "password"  # focus lands on the field to correct
    page.keyboard.type(PASSWORD)
    press_and_load(page)
    page.get_by_text("Connected. Now choose which calendars block time.").wait_for()

    radio = tab_to(page, "The primary calendar")  # the checked radio of the group
    assert radio["id"] == "import-primary"
    page.keyboard.press("ArrowDown")
    assert focused(page)["id"] == "import-specific"
    tab_to(page, site.calendar_name)
    page.keyboard.press("Space")
    tab_to(page, "Save")
    press_and_load(page)
    page.get_by_text("Saved.").wait_for()
    assert page.get_by_label(site.calendar_name).is_checked()

    tab_to(page, "Schedule")
    press_and_load(page)
    tab_to(page, "Week view")
    press_and_load(page)
    page.get_by_role("link", name="Next week").wait_for()
    tab_to(page, "Next week \u203a")
    press_and_load(page)
    _check_week(page, site)
    region = tab_to(page, "week-grid")
    assert region["outline"] != "none"
    screenshot(page, "keyboard-week")

    page.goto(f"{site.url}/dashboard/schedules/{site.schedule_id}")
    tab_to(page, "Disconnect")
    press_and_load(page)
    page.get_by_role("button", name="Yes, disconnect").wait_for()
    assert focused(page)["text"] == "No, keep it"  # the safe choice has focus
    page.keyboard.press("Shift+Tab")
    assert focused(page)["text"] == "Yes, disconnect"
    press_and_load(page)
    page.get_by_text("The calendar account was disconnected.").wait_for()


def _wait_for_export(rt: Runtime, connection_id: str, sessions_count: int) -> None:
    """Export with ``sync_connection``, again if the worker's own run got there first."""
    deadline = clock.monotonic() + 30
    while True:
        sync_connection(rt, connection_id, export=True)
        report = sync_report(rt, identity=admin_identity(TENANT), connection_id=connection_id)
        export = report.export
        if export and export.exported_events == sessions_count and not export.pending_writes:
            return
        assert clock.monotonic() < deadline, report
        clock.sleep(0.2)


def _session(site: Site, session_id: str, title: str, day: date, start: time, end: time) -> None:
    berlin = ZoneInfo(TZ)
    sessions.put_session(
        site.rt,
        identity=admin_identity(TENANT),
        schedule_id=site.schedule_id,
        session_id=session_id,
        data=sessions.SessionInput(
            title=title,
            status="CONFIRMED",
            time_zone=TZ,
            start=datetime.combine(day, start, berlin),
            end=datetime.combine(day, end, berlin),
        ),
    )


def test_the_readme_picture(site: Site, browser: Any) -> None:
    """docs/dashboard.png: the week page, full length at 1280 px, with the connection's card
    (status, where bookings go) above imported busy events and exported sessions side by side.
    The sessions are really exported into a calendar calsync creates on Radicale."""
    monday, wednesday, friday = (site.monday + timedelta(days=n) for n in (0, 2, 4))
    for name, summary, day, start, end in (
        ("school.ics", "School run", monday, "080000", "084500"),
        ("lunch.ics", "Lunch with Sam", wednesday, "123000", "133000"),
        ("physio.ics", "Physio", friday, "150000", "160000"),
    ):
        put_event(
            site.calendar,
            USER,
            PASSWORD,
            name,
            _event(
                unique_name(name),
                summary,
                f"DTSTART;TZID={TZ}:{day:%Y%m%d}T{start}",
                f"DTEND;TZID={TZ}:{day:%Y%m%d}T{end}",
            ),
        )
    _session(site, "pilates-1", "Pilates", wednesday, time(17), time(18))
    _session(site, "mobility-1", "Mobility", friday, time(9), time(10))

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(issue_signin_link(site.rt, TENANT))
    page.get_by_role("button", name="Continue to the dashboard").click()
    page.get_by_role("link", name="Ada Lovelace").click()
    page.get_by_role("link", name=f"Connect {PROVIDER_NAME}").click()
    page.get_by_label("E-mail or user name").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Connect").click()
    page.get_by_text("Connected. Now choose which calendars block time.").wait_for()
    connection_id = page.url.split("/dashboard/connections/", 1)[1].split("?", 1)[0]
    page.get_by_label("These calendars:").check()
    page.get_by_label(site.calendar_name).check()
    assert page.get_by_label("Into a calendar of their own, created by calsync").is_checked()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved.").wait_for()
    _wait_for_export(site.rt, connection_id, 3)

    exported = "Bookings go to: a calendar \u201cBookings\u201d calsync created \u00b7 3 exported"
    page.goto(f"{site.url}/dashboard/schedules/{site.schedule_id}")
    assert exported in page.locator(".connection").inner_text()
    _check_facts(page, stacked=False)
    screenshot(page, "08-schedule-exporting")

    card = page.locator(".week-context .connection")
    deadline = clock.monotonic() + 20
    while True:  # the worker may be syncing right now: wait until it is "Up to date"
        page.goto(_week_url(site))
        if "Up to date" in card.inner_text():
            break
        assert clock.monotonic() < deadline, card.inner_text()
        clock.sleep(0.3)
    assert exported in card.inner_text()
    _check_week(page, site)
    for busy in ("School run", "Lunch with Sam", "Physio"):
        page.locator(".block.busy", has_text=busy).wait_for()
    for title in ("Pilates", "Mobility"):
        assert page.locator(".block.session", has_text=title).count() >= 1
    assert page.evaluate("() => document.documentElement.scrollWidth") == 1280
    # The picture is a test artifact; CALSYNC_UPDATE_README_PICTURE=1 also refreshes the
    # README's copy (a committed file, so a normal run leaves it alone).
    target = DOCS_SCREENSHOT if os.environ.get("CALSYNC_UPDATE_README_PICTURE") == "1" else None
    artifact = SCREENSHOTS / "readme-dashboard.png"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artifact), full_page=True)
    if target is not None:
        shutil.copyfile(artifact, target)


# --- the OAuth round trip from the dashboard -------------------------------------------------
# The "Connect Google" button, the sign-in and consent pages of a real authorization server
# (oidc-provider), calsync's callback, and back on the dashboard with the new connection shown
# and its calendar read. Google's calendar API is the discovery-checked fake, its tokens checked
# against the authorization server.


@dataclass
class OAuthSite:
    rt: Runtime
    url: str
    schedule_id: str
    google: GoogleFake
    authorize_url: str


@pytest.fixture
def oauth_site(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Iterator[OAuthSite]:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    oidc = start_oidc_provider(
        tmp_path / "oidc",
        clients=[
            {
                "client_id": OAUTH_CLIENT_ID,
                "client_secret": OAUTH_CLIENT_SECRET,
                "redirect_uris": [f"{public_url}/oauth/callback"],
            }
        ],
        accounts={"ada": EMAIL},
    )

    def account_of(token: str) -> str | None:
        claims = oidc.introspect(token)
        return EMAIL if claims and claims.get("sub") == account_sub("ada") else None

    google = start_google_fake(token_validator=account_of)
    try:
        google.add_account(EMAIL)
        google.add_calendar(EMAIL, EMAIL, "Ada's calendar", primary=True)
        tomorrow = date.today() + timedelta(days=1)
        start = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, tzinfo=UTC)
        google.put_event(
            EMAIL,
            EMAIL,
            {
                "summary": "Dentist",
                "start": {"dateTime": start.isoformat()},
                "end": {"dateTime": (start + timedelta(hours=1)).isoformat()},
            },
        )
        toml = "\n".join(
            [
                "[[providers]]",
                f'id = "{GOOGLE_PROVIDER_ID}"',
                'kind = "google"',
                f'client_id = "{OAUTH_CLIENT_ID}"',
                f'client_secret = "{OAUTH_CLIENT_SECRET}"',
                f'authorize_url = "{oidc.authorize_url}"',
                f'token_url = "{oidc.token_url}"',
                f'revoke_url = "{oidc.revoke_url}"',
                f'userinfo_url = "{oidc.userinfo_url}"',
                f'api_url = "{google.api_url}"',
                f"scopes = {json.dumps(SCOPES)}",
                'authorize_params = { access_type = "offline", prompt = "consent" }',
                "",
            ]
        )
        rt = make_runtime(extra_toml=toml, public_url=public_url, worker_tick_seconds=0.5)
        schedule_id = random_guid()
        add_schedule(rt, schedule_id, random_guid(), "Ada Lovelace", "Europe/Berlin")
        with serving(rt, port) as url:
            yield OAuthSite(rt, url, schedule_id, google, oidc.authorize_url)
        assert google.violations == [], google.violations
    finally:
        google.stop()
        oidc.stop()


def _to_the_provider(site: OAuthSite, page: Any) -> None:
    """Signed in with the one-time link, on the schedule, the Google button pressed: at the
    authorization server's sign-in page, signed in there as ada."""
    page.goto(issue_signin_link(site.rt, TENANT))
    page.get_by_role("button", name="Continue to the dashboard").click()
    page.get_by_role("link", name="Ada Lovelace").click()
    page.get_by_role("button", name="Connect Google").click()
    login = page.locator("form:has(input[name=prompt][value=login])")
    login.wait_for()
    assert page.url.startswith(site.authorize_url.rsplit("/", 1)[0])  # at oidc-provider
    login.locator("input[name=login]").fill("ada")
    login.locator("input[name=password]").fill("any-password")
    screenshot(page, "oauth-01-provider-sign-in")
    login.locator("button[type=submit]").click()
    page.locator("form:has(input[name=prompt][value=consent])").wait_for()
    screenshot(page, "oauth-02-provider-consent")


def test_connect_google_from_the_dashboard(oauth_site: OAuthSite, browser: Any) -> None:
    site = oauth_site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _to_the_provider(site, page)
    page.locator("form:has(input[name=prompt][value=consent]) button[type=submit]").click()

    page.get_by_text(f"Connected: Google account {EMAIL}.").wait_for()
    assert page.url.startswith(f"{site.url}/dashboard/schedules/{site.schedule_id}?")
    card = page.locator(".connection", has_text=EMAIL)
    card.wait_for()
    screenshot(page, "oauth-03-connected")
    # The worker reads the account's calendar: the card comes to say "Up to date", and the
    # week shows the event from Google.
    for _ in range(80):
        if "Up to date" in card.inner_text():
            break
        page.wait_for_timeout(250)
        page.reload()
        card = page.locator(".connection", has_text=EMAIL)
    assert "Up to date" in card.inner_text()
    page.get_by_role("link", name="Week view").click()
    tomorrow = date.today() + timedelta(days=1)
    if tomorrow.weekday() == 0:  # next Monday: the next week's page
        page.get_by_role("link", name="Next week").click()
    page.get_by_text("Dentist").first.wait_for()
    screenshot(page, "oauth-04-week")


def test_cancelling_at_the_provider_comes_back_with_the_reason(
    oauth_site: OAuthSite, browser: Any
) -> None:
    site = oauth_site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _to_the_provider(site, page)
    page.locator("a[href$='/abort']").first.click()

    page.get_by_text("The connection was cancelled at the provider").wait_for()
    assert page.url.startswith(f"{site.url}/dashboard/schedules/{site.schedule_id}?")
    assert page.get_by_text("No calendar is connected to this schedule yet.").is_visible()
    screenshot(page, "oauth-05-cancelled")
