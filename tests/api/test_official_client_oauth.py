"""The official JavaScript client completes Connect By OAuth against a real calsync server.

``calsync serve`` runs over HTTPS (self-signed certificate for 127.0.0.1, trusted by Node via
``NODE_EXTRA_CA_CERTS``) with its built-in Google provider pointed at a real authorization server
(oidc-provider, ``tests/peers/oidc``) and at the Google Calendar fake, which authenticates
calsync's bearer tokens by introspecting them at oidc-provider (``sub`` -> e-mail).
``tests/js/oauth_flow.mjs`` drives the client in phases: ``start`` (connectByOAuth), then the
browser leg happens here over HTTP (login + consent at oidc-provider, the redirect to calsync's
``/oauth/callback``), then ``finish`` (getConnection, listCalendars, listEvents) or ``list``
(listConnections). Helpers (certificate, server process, API key, schedule) come from
``tests/api/test_official_client.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from calsync.providers.registry import GOOGLE_PROVIDER_ID
from tests.api import test_official_client as official
from tests.peers.browser import consent_over_http
from tests.peers.google_fake import GoogleFake, start_google_fake
from tests.peers.oidc_server import OidcServer, account_sub, start_oidc_provider
from tests.peers.tls import free_port, write_self_signed_cert

pytestmark = pytest.mark.js

# The fixture of the credentials-flow test (skips without node, npm ci when needed).
node_harness = official.node_harness

SCRIPT = official.JS_DIR / "oauth_flow.mjs"
BERLIN = ZoneInfo("Europe/Berlin")  # the schedule's zone (official._register_schedule)
UTC = dt.UTC
CLIENT_ID, CLIENT_SECRET = "calsync-google-test", "calsync-google-test-secret"
LOGIN, EMAIL = "ada", "ada@example.com"
PRIMARY_NAME = "Ada Lovelace"
# Sorts before the primary by name: listCalendars must still put the primary first.
OTHER_CALENDAR_ID, OTHER_NAME = "c_team123@group.calendar.google.com", "Aardvark team"
GOOGLE_SCOPES = [
    "openid",
    "email",
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar.events",
]
PLATFORM = "https://platform.example/after-connect?tab=calendars"
NODE_TIMEOUT = 120


@dataclass(frozen=True)
class Expected:
    title: str
    start: str  # exactly as calsync sends it
    end: str
    all_day: bool


@dataclass
class World:
    server: official.CalsyncServer
    oidc: OidcServer
    google: GoogleFake
    expected: list[Expected]
    window: tuple[str, str]  # List Events from / to


# --- set-up ------------------------------------------------------------------------------------


def _utc_wire(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _seed_google(google: GoogleFake) -> tuple[list[Expected], tuple[str, str]]:
    """Ada's calendars and events on the fake; returns what List Events must show, and a window."""
    google.add_account(EMAIL)
    google.add_calendar(EMAIL, EMAIL, PRIMARY_NAME, primary=True, time_zone="Europe/Berlin")
    google.add_calendar(EMAIL, OTHER_CALENDAR_ID, OTHER_NAME, access_role="reader")

    d0 = dt.datetime.now(UTC).date() + dt.timedelta(days=3)
    d1, d2, d3 = (d0 + dt.timedelta(days=n) for n in (1, 2, 3))

    def at(day: dt.date, hour: int, minute: int, tz: dt.tzinfo) -> dt.datetime:
        return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)

    def timed(moment: dt.datetime) -> dict[str, str]:
        return {"dateTime": moment.isoformat(), "timeZone": str(moment.tzinfo)}

    review = (at(d0, 9, 15, BERLIN), at(d0, 10, 30, BERLIN))
    google.put_event(
        EMAIL,
        EMAIL,
        {"summary": "Design review", "start": timed(review[0]), "end": timed(review[1])},
    )
    google.put_event(
        EMAIL,
        EMAIL,
        {
            "summary": "Offsite",
            "start": {"date": d2.isoformat()},
            "end": {"date": (d2 + dt.timedelta(days=1)).isoformat()},
        },
    )
    dentist = (at(d3, 7, 15, UTC), at(d3, 8, 0, UTC))
    google.put_event(  # an invitation the owner accepted: busy
        EMAIL,
        EMAIL,
        {
            "summary": "Dentist",
            "start": timed(dentist[0]),
            "end": timed(dentist[1]),
            "organizer": {"email": "frontdesk@dentist.example"},
            "attendees": [
                {"email": "frontdesk@dentist.example", "organizer": True},
                {"email": EMAIL, "self": True, "responseStatus": "accepted"},
            ],
        },
    )
    google.put_event(  # free time never blocks: must not be listed
        EMAIL,
        EMAIL,
        {
            "summary": "Focus time",
            "transparency": "transparent",
            "start": timed(at(d0, 13, 0, UTC)),
            "end": timed(at(d0, 14, 0, UTC)),
        },
    )
    google.put_event(  # declined by the account owner: must not be listed
        EMAIL,
        EMAIL,
        {
            "summary": "Vendor pitch",
            "start": timed(at(d1, 10, 0, UTC)),
            "end": timed(at(d1, 11, 0, UTC)),
            "organizer": {"email": "sales@vendor.example"},
            "attendees": [
                {"email": "sales@vendor.example", "organizer": True, "responseStatus": "accepted"},
                {"email": EMAIL, "self": True, "responseStatus": "declined"},
            ],
        },
    )
    google.put_event(  # not the primary calendar: a new connection imports the primary only
        EMAIL,
        OTHER_CALENDAR_ID,
        {
            "summary": "Team lunch",
            "start": timed(at(d1, 12, 0, UTC)),
            "end": timed(at(d1, 13, 0, UTC)),
        },
    )

    def berlin_midnight(day: dt.date) -> str:
        return at(day, 0, 0, BERLIN).isoformat(timespec="milliseconds")

    expected = [
        Expected("Design review", _utc_wire(review[0]), _utc_wire(review[1]), False),
        Expected("Offsite", berlin_midnight(d2), berlin_midnight(d2 + dt.timedelta(days=1)), True),
        Expected("Dentist", _utc_wire(dentist[0]), _utc_wire(dentist[1]), False),
    ]
    window_from = dt.datetime.combine(d0 - dt.timedelta(days=1), dt.time(), UTC)
    window_to = window_from + dt.timedelta(days=30)
    return expected, (_utc_wire(window_from), _utc_wire(window_to))


def _providers_toml(oidc: OidcServer, google: GoogleFake) -> str:
    return "\n".join(
        [
            "[[providers]]",
            f'id = "{GOOGLE_PROVIDER_ID}"',
            'kind = "google"',
            f"client_id = {json.dumps(CLIENT_ID)}",
            f"client_secret = {json.dumps(CLIENT_SECRET)}",
            f"authorize_url = {json.dumps(oidc.authorize_url)}",
            f"token_url = {json.dumps(oidc.token_url)}",
            f"revoke_url = {json.dumps(oidc.revoke_url)}",
            f"userinfo_url = {json.dumps(oidc.userinfo_url)}",
            f"api_url = {json.dumps(google.api_url)}",
            f"scopes = {json.dumps(GOOGLE_SCOPES)}",
            # oidc-provider issues a refresh token only with prompt=consent (access_type=offline
            # counts as asking for offline_access).
            'authorize_params = { access_type = "offline", prompt = "consent" }',
            "",
        ]
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """oidc-provider, the Google fake (seeded) and calsync over HTTPS, for the whole module."""
    root = tmp_path_factory.mktemp("oauth-client")
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    oidc = start_oidc_provider(  # skips (or fails with CALSYNC_REQUIRE_NODE=1) without node
        root / "oidc",
        clients=[
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{url}/oauth/callback"],
            }
        ],
        accounts={LOGIN: EMAIL},
    )
    subs = {account_sub(LOGIN): EMAIL}

    def validate(token: str) -> str | None:
        claims = oidc.introspect(token)
        return subs.get(str(claims.get("sub"))) if claims else None

    google = start_google_fake(token_validator=validate)
    process: subprocess.Popen[bytes] | None = None
    server: official.CalsyncServer | None = None
    log = None
    try:
        expected, window = _seed_google(google)
        cert, key = write_self_signed_cert(root)
        data_dir = root / "data"
        data_dir.mkdir()
        providers_file = root / "providers.toml"
        providers_file.write_text(_providers_toml(oidc, google))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
        env.update(
            CALSYNC_DATA_DIR=str(data_dir),
            CALSYNC_PROVIDERS_FILE=str(providers_file),
            CALSYNC_PUBLIC_URL=url,
        )
        server = official.CalsyncServer(
            base=f"127.0.0.1:{port}",
            url=url,
            cert=cert,
            provider_id=GOOGLE_PROVIDER_ID,
            env=env,
            log_path=root / "calsync.log",
        )
        server.cli("db", "upgrade")
        log = server.log_path.open("wb")
        process = official.start_tls_server(port, cert, key, env, log)
        server.process = process
        official._wait_until_serving(server)
        yield World(server, oidc, google, expected, window)
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        if log is not None:
            log.close()
        if server is not None:
            print(f"--- calsync server log (tail) ---\n{server.log_tail()}")
        google.stop()
        oidc.stop()


@dataclass
class Site:
    """A tenant with an API key and one registered schedule."""

    tenant: str
    key: str
    schedule_id: str
    owner_id: str


def _new_site(server: official.CalsyncServer) -> Site:
    tenant = str(uuid.uuid4())
    schedule_id, owner_id = str(uuid.uuid4()), str(uuid.uuid4())
    key = official._create_api_key(server, tenant)
    official._register_schedule(server, key, schedule_id, owner_id)
    return Site(tenant, key, schedule_id, owner_id)


# --- driving the client and the browser ------------------------------------------------------


def _run_phase(node: Path, world: World, site: Site, phase: str, **extra: str) -> dict[str, Any]:
    """Run one phase of oauth_flow.mjs; its JSON output (the test fails if it did not succeed)."""
    env = {k: v for k, v in os.environ.items() if k != "NODE_TLS_REJECT_UNAUTHORIZED"}
    env.update(
        NODE_EXTRA_CA_CERTS=str(world.server.cert),
        CALSYNC_API_BASE=world.server.base,
        CALSYNC_API_KEY=site.key,
        CALSYNC_SITE_ID=site.tenant,
        SCHEDULE_ID=site.schedule_id,
        **extra,
    )
    completed = subprocess.run(
        [str(node), str(SCRIPT), phase],
        cwd=official.JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
    )
    try:
        out: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"oauth_flow.mjs {phase} exited {completed.returncode} without one JSON object:\n"
            f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
        )
    print(f"--- oauth_flow.mjs {phase} ---\n{json.dumps(out, indent=1)}\n{completed.stderr}")
    assert out["unexpected"] == [], f"{phase}: calls failed (see output above)"
    assert out["ok"] is True and completed.returncode == 0, completed.stderr
    return out


def _result(out: dict[str, Any], name: str) -> Any:
    step = out["steps"][name]
    assert "result" in step, f"{name} failed: {step.get('error')}"
    return step["result"]


def _start(node: Path, world: World, site: Site) -> str:
    """connectByOAuth through the client; the authorization URL, checked."""
    out = _run_phase(
        node, world, site, "start", PROVIDER_ID=GOOGLE_PROVIDER_ID, REDIRECT_URL=PLATFORM
    )
    oauth_url = str(out["oauthUrl"])
    assert _result(out, "connectByOAuth") == {"oauthUrl": oauth_url}
    assert oauth_url.startswith(world.oidc.authorize_url + "?"), oauth_url
    query = parse_qs(urlsplit(oauth_url).query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [f"{world.server.url}/oauth/callback"]
    assert query["response_type"] == ["code"]
    assert set(query["scope"][0].split()) == set(GOOGLE_SCOPES)
    assert (query["access_type"], query["prompt"]) == (["offline"], ["consent"])
    assert query["code_challenge_method"] == ["S256"]
    return oauth_url


def _browser_leg(world: World, oauth_url: str, *, approve: bool) -> dict[str, list[str]]:
    """Consent as Ada, then the browser's request to calsync's HTTPS callback.

    ``consent_over_http(follow_callback=True)`` would request the callback with httpx's default
    trust store, which does not know the self-signed certificate: the callback is requested here
    with ``verify`` set to it. Returns the query the platform's redirect URL received.
    """
    provider_redirect = consent_over_http(oauth_url, login=LOGIN, approve=approve)
    parts = urlsplit(provider_redirect)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{world.server.url}/oauth/callback"
    with httpx.Client(verify=world.server.ssl_context(), timeout=30.0) as client:
        response = client.get(provider_redirect, follow_redirects=False)
    assert response.status_code == 302, f"callback -> {response.status_code}: {response.text}"
    location = response.headers["location"]
    assert location.startswith("https://platform.example/after-connect?"), location
    query = parse_qs(urlsplit(location).query)
    assert query["tab"] == ["calendars"], location  # the platform's own query is kept
    return query


# --- the tests -----------------------------------------------------------------------------


def test_official_client_connects_by_oauth_and_reads_google_events(
    node_harness: Path, world: World
) -> None:
    site = _new_site(world.server)
    oauth_url = _start(node_harness, world, site)

    query = _browser_leg(world, oauth_url, approve=True)
    assert "error" not in query, query
    [connection_id] = query["connectionId"]
    # The client puts path parameters into the URL raw (WIRE-NOTES.md section 2).
    assert re.fullmatch(r"[A-Za-z0-9_-]+", connection_id), connection_id

    window_from, window_to = world.window
    out = _run_phase(
        node_harness,
        world,
        site,
        "finish",
        CONNECTION_ID=connection_id,
        EVENTS_FROM=window_from,
        EVENTS_TO=window_to,
    )

    connection = _result(out, "getConnection")["connection"]
    assert "id" not in connection  # the server sends `id`, the client renames it to `_id`
    assert connection["_id"] == connection_id
    assert connection["status"] in official.ACTIVE_STATUSES
    assert connection["errorReason"] == "UNDEFINED"
    assert connection["externalAccountEmail"] == EMAIL
    assert connection["calendarType"] == "GOOGLE"
    assert connection["providerId"] == GOOGLE_PROVIDER_ID
    assert connection["scheduleId"] == site.schedule_id

    calendars = _result(out, "listCalendars")["calendars"]
    assert calendars[0] == {"_id": EMAIL, "name": PRIMARY_NAME}, calendars
    assert {"_id": OTHER_CALENDAR_ID, "name": OTHER_NAME} in calendars[1:], calendars

    pages = _result(out, "listEvents")["pages"]
    events = [event for page in pages for event in page["result"]["events"]]
    for page in pages:
        assert page["result"]["failedProviderIds"] == []
    for event in events:
        assert event["scheduleId"] == site.schedule_id, event
        assert event["calendarType"] == "GOOGLE", event
        assert event["calendarName"] == PRIMARY_NAME, event
        assert event["scheduleOwnerId"] == site.owner_id, event
        assert event["scheduleOwnerName"] == "Ada", event
    got = [Expected(e.get("title"), e["start"], e["end"], e["allDay"]) for e in events]
    titles = {e.title for e in got}
    assert "Focus time" not in titles, "a transparent (free) event was listed"
    assert "Vendor pitch" not in titles, "an event the owner declined was listed"
    assert "Team lunch" not in titles, "an event of a calendar that is not imported was listed"
    assert got == world.expected

    # calsync used the fake as Google would be used, with tokens oidc-provider issued.
    assert world.google.violations == []
    assert world.google.response_violations == []
    assert world.google.requests_for("calendar.events.list"), "the fake was never read"


def test_declined_consent_redirects_with_reject_and_creates_no_connection(
    node_harness: Path, world: World
) -> None:
    site = _new_site(world.server)
    oauth_url = _start(node_harness, world, site)

    query = _browser_leg(world, oauth_url, approve=False)
    assert query.get("error") == ["reject"], query
    assert "connectionId" not in query, query

    listed = _result(_run_phase(node_harness, world, site, "list"), "listConnections")
    assert listed["connections"] == [], listed
    assert listed.get("failedProviderIds", []) == []
