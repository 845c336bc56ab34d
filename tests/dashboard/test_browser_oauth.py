"""The dashboard's OAuth round trip in a real browser (headless Debian Chromium): the "Connect
Google" button, the sign-in and consent pages of a real authorization server (oidc-provider),
calsync's callback, and back on the dashboard with the new connection shown and its calendar
read; cancelling at the consent page comes back with the reason. Google's calendar API is the
discovery-checked fake, its tokens checked against the authorization server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from calsync.dashboard.signin import issue_signin_link
from calsync.providers.registry import GOOGLE_PROVIDER_ID
from calsync.service.runtime import Runtime
from tests.conftest import TENANT, random_guid
from tests.dashboard.helpers import add_schedule
from tests.dashboard.live import chromium, free_port, screenshot, serving
from tests.peers.google_fake import GoogleFake, start_google_fake
from tests.peers.oidc_server import account_sub, start_oidc_provider

pytestmark = pytest.mark.peers
CLIENT_ID, CLIENT_SECRET = "calsync-dashboard", "calsync-dashboard-secret"
EMAIL = "ada@example.com"
SCOPES = ["openid", "email", "https://www.googleapis.com/auth/calendar.events"]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The browser tests exercise pages, not databases: SQLite only."""
    return f"sqlite:///{tmp_path / 'calsync.db'}"


@dataclass
class OAuthSite:
    rt: Runtime
    url: str
    schedule_id: str
    google: GoogleFake
    authorize_url: str


@pytest.fixture
def site(make_runtime: Callable[..., Runtime], tmp_path: Path) -> Iterator[OAuthSite]:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    oidc = start_oidc_provider(
        tmp_path / "oidc",
        clients=[
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
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
                f'client_id = "{CLIENT_ID}"',
                f'client_secret = "{CLIENT_SECRET}"',
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


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


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


def test_connect_google_from_the_dashboard(site: OAuthSite, browser: Any) -> None:
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
    site: OAuthSite, browser: Any
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    _to_the_provider(site, page)
    page.locator("a[href$='/abort']").first.click()

    page.get_by_text("The connection was cancelled at the provider").wait_for()
    assert page.url.startswith(f"{site.url}/dashboard/schedules/{site.schedule_id}?")
    assert page.get_by_text("No calendar is connected to this schedule yet.").is_visible()
    screenshot(page, "oauth-05-cancelled")
