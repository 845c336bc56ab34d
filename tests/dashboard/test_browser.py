"""The dashboard in a real browser (headless Debian Chromium via Playwright) against calsync
served by uvicorn and a real CalDAV server (Radicale): sign in with the one-time link, pick the
schedule, connect the account through the form (a wrong password first), choose calendars, look
at the week, on a desktop and a phone-sized screen, by mouse and by keyboard only, disconnect.
Screenshots are saved under ``tests/artifacts/screenshots/``."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from calsync.dashboard.signin import admin_identity, issue_signin_link
from calsync.dashboard.week_grid import monday_of
from calsync.service import sessions
from calsync.service.runtime import Runtime
from tests.conftest import TENANT, random_guid
from tests.dashboard.helpers import add_schedule
from tests.dashboard.live import (
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

pytestmark = pytest.mark.peers
PROVIDER_ID = "7d2c4b1a-0e9f-4c3b-8a7d-6e5f4c3b2a19"
PROVIDER_NAME = "Studio CalDAV"
USER = "ada@example.com"
PASSWORD = DAV_USERS[USER]
TZ = "Europe/Berlin"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


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
        yield Site(rt, url, schedule_id, calendar_name, monday)


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
    # The README's picture of the dashboard: the top of this page.
    DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_SCREENSHOT.with_suffix(".tmp.png")))
    shutil.move(DOCS_SCREENSHOT.with_suffix(".tmp.png"), DOCS_SCREENSHOT)

    page.goto(f"{site.url}/dashboard/schedules/{site.schedule_id}")
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
