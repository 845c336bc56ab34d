"""Connect By OAuth against a real authorization server (oidc-provider) with the Google and
Graph fakes behind it: the whole flow, every failure redirect, state handling, and the token
lifecycle, for both OAuth provider kinds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from calsync.api.app import create_app
from calsync.providers.base import OAuthTokens
from calsync.providers.registry import GOOGLE_PROVIDER_ID, MICROSOFT_PROVIDER_ID
from calsync.service.connections.accounts import current_access_token, unseal
from calsync.service.runtime import Runtime
from calsync.service.sync.run import sync_connection
from calsync.store.models import Connection, OAuthAttempt
from tests.conftest import EXT, Api, new_key, random_guid
from tests.peers.browser import consent_over_http
from tests.peers.google_fake import GoogleFake, start_google_fake
from tests.peers.graph_fake import GraphFake, start_graph_fake
from tests.peers.oidc_server import OidcServer, account_sub, start_oidc_provider

PUBLIC_URL = "http://testserver"
CLIENT_ID, CLIENT_SECRET = "calsync-test", "calsync-test-secret"
ACCOUNTS = {
    "ada": "ada@example.com",
    "bob": "bob@example.com",
    "nomail": None,
    "blocked": "blocked@example.com",
    "nomailbox": "nomailbox@example.com",
}
PLATFORM = "https://platform.example/after-connect?tab=calendars"


@dataclass
class Service:
    """One OAuth provider's calendar API (a fake), seen the same way for Google and Graph."""

    kind: str
    provider_id: str
    calendar_type: str
    api_url: str
    scopes: list[str]
    authorize_params: str
    put_event: Callable[[str, str, datetime, datetime], None]
    fail_next_401: Callable[[], None]
    request_count: Callable[[], int]


@dataclass
class Peers:
    oidc: OidcServer
    graph: GraphFake
    google: GoogleFake

    def service(self, kind: str) -> Service:
        if kind == "microsoft":
            graph = self.graph

            def put_graph(email: str, title: str, start: datetime, end: datetime) -> None:
                graph.put_event(
                    email, graph.default_calendar(email).id, subject=title, start=start, end=end
                )

            return Service(
                kind,
                MICROSOFT_PROVIDER_ID,
                "MICROSOFT",
                graph.api_url,
                ["openid", "email", "offline_access", "Calendars.ReadWrite"],
                # oidc-provider grants offline_access (a refresh token) only with prompt=consent.
                '{ prompt = "consent" }',
                put_graph,
                lambda: graph.fail_next(401),
                lambda: len(graph.requests),
            )
        google = self.google

        def put_google(email: str, title: str, start: datetime, end: datetime) -> None:
            google.put_event(
                email,
                email,
                {
                    "summary": title,
                    "start": {"dateTime": start.isoformat()},
                    "end": {"dateTime": end.isoformat()},
                },
            )

        return Service(
            kind,
            GOOGLE_PROVIDER_ID,
            "GOOGLE",
            google.api_url,
            ["openid", "email", "https://www.googleapis.com/auth/calendar.events"],
            '{ access_type = "offline", prompt = "consent" }',
            put_google,
            lambda: google.fail_next(401),
            lambda: len(google.requests),
        )


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    oidc = start_oidc_provider(
        tmp_path_factory.mktemp("oidc"),
        clients=[
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{PUBLIC_URL}/oauth/callback"],
            }
        ],
        accounts=ACCOUNTS,
        access_token_ttl=3600,
        deny_accounts=["blocked"],
    )
    subs = {account_sub(login): email for login, email in ACCOUNTS.items() if email}

    def validate(token: str) -> str | None:
        claims = oidc.introspect(token)
        return subs.get(str(claims.get("sub"))) if claims else None

    graph = start_graph_fake(validate)
    google = start_google_fake(token_validator=validate)
    for email in ("ada@example.com", "bob@example.com", "blocked@example.com"):
        graph.add_account(email)
        google.add_account(email)
        google.add_calendar(email, email, "Calendar", primary=True)
    graph.add_account("nomailbox@example.com", mailbox_enabled=False)
    google.add_account("nomailbox@example.com", calendar_user=False)
    try:
        yield Peers(oidc, graph, google)
    finally:
        assert google.violations == [], google.violations
        google.stop()
        graph.stop()
        oidc.stop()


def provider_toml(peers: Peers, service: Service) -> str:
    return "\n".join(
        [
            "[[providers]]",
            f'id = "{service.provider_id}"',
            f'kind = "{service.kind}"',
            f'client_id = "{CLIENT_ID}"',
            f'client_secret = "{CLIENT_SECRET}"',
            f'authorize_url = "{peers.oidc.authorize_url}"',
            f'token_url = "{peers.oidc.token_url}"',
            f'revoke_url = "{peers.oidc.revoke_url}"',
            f'userinfo_url = "{peers.oidc.userinfo_url}"',
            f'api_url = "{service.api_url}"',
            f"scopes = {json.dumps(service.scopes)}",
            f"authorize_params = {service.authorize_params}",
            "",
        ]
    )


@dataclass
class World:
    api: Api
    rt: Runtime
    peers: Peers
    service: Service
    schedule_id: str

    def start(self, redirect: str = PLATFORM) -> str:
        response = self.api.post(
            f"{EXT}/connections:connectByOAuth",
            {
                "scheduleId": self.schedule_id,
                "providerId": self.service.provider_id,
                "redirectUrl": redirect,
            },
        )
        assert response.status_code == 200, response.text
        return str(response.json()["oauthUrl"])

    def callback(self, provider_redirect: str):  # type: ignore[no-untyped-def]
        parts = urlsplit(provider_redirect)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC_URL
        return self.api.client.get(f"{parts.path}?{parts.query}", follow_redirects=False)

    def connect(self, login: str = "ada", approve: bool = True) -> dict[str, list[str]]:
        """The whole round trip; returns the query the platform's redirect URL received."""
        response = self.callback(consent_over_http(self.start(), login=login, approve=approve))
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith("https://platform.example/after-connect?")
        query = parse_qs(urlsplit(location).query)
        assert query["tab"] == ["calendars"]
        return query

    def connections(self) -> list[dict]:  # type: ignore[type-arg]
        return self.api.get(f"{EXT}/connections").json()["connections"]  # type: ignore[no-any-return]


@pytest.fixture(params=["microsoft", "google"])
def service(request: pytest.FixtureRequest, peers: Peers) -> Service:
    return peers.service(request.param)


@pytest.fixture
def world(make_runtime: Callable[..., Runtime], peers: Peers, service: Service) -> Iterator[World]:
    rt = make_runtime(extra_toml=provider_toml(peers, service), public_url=PUBLIC_URL)
    with TestClient(create_app(rt, worker=False)) as client:
        api = Api(client, new_key(rt))
        schedule_id = random_guid()
        api.put(
            f"/v1/schedules/{schedule_id}",
            {"ownerUserId": random_guid(), "ownerName": "Ada", "timeZone": "UTC"},
        )
        yield World(api, rt, peers, service, schedule_id)


def stored_tokens(rt: Runtime, connection_id: str) -> OAuthTokens:
    with rt.db() as session:
        row = session.get(Connection, connection_id)
        assert row is not None
        tokens = unseal(rt, row.secret)
    assert isinstance(tokens, OAuthTokens)
    return tokens


def test_listed_only_with_a_client_id(world: World) -> None:
    providers = {p["id"]: p for p in world.api.get(f"{EXT}/providers").json()["providers"]}
    ours = providers[world.service.provider_id]
    assert ours["features"]["connectMethods"] == ["OAUTH"]
    assert ours["calendarType"] == world.service.calendar_type
    # The other built-in OAuth provider has no client_id here, so it is not offered.
    assert {GOOGLE_PROVIDER_ID, MICROSOFT_PROVIDER_ID} - set(providers) != set()


def test_authorization_url_has_pkce_state_and_scopes(world: World) -> None:
    query = parse_qs(urlsplit(world.start()).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 43
    assert query["scope"] == [" ".join(world.service.scopes)]
    assert query["prompt"] == ["consent"]
    assert query["redirect_uri"] == [f"{PUBLIC_URL}/oauth/callback"]


def test_success_creates_connection_and_reads_calendar(world: World) -> None:
    world.service.put_event(
        "ada@example.com",
        f"Dentist {world.schedule_id}",
        datetime(2027, 1, 5, 9, tzinfo=UTC),
        datetime(2027, 1, 5, 10, tzinfo=UTC),
    )
    query = world.connect()
    [connection_id] = query["connectionId"]
    connection = world.api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
    assert connection["externalAccountEmail"] == "ada@example.com"
    assert connection["status"] == "CONNECTED"
    assert connection["syncConfig"]["listEventFromCalendars"] == {
        "enabled": True,
        "primaryCalendar": {},
    }
    calendars = world.api.get(f"{EXT}/connections/{connection_id}/calendars").json()["calendars"]
    assert calendars[0]["name"] == "Calendar"
    events = world.api.get(
        f"{EXT}/events",
        params={
            "from": "2027-01-01T00:00:00Z",
            "to": "2027-02-01T00:00:00Z",
            "fieldsets": "OWN_PI",
        },
    ).json()["events"]
    mine = [e for e in events if e["title"] == f"Dentist {world.schedule_id}"]
    assert [(e["start"], e["end"], e["calendarType"]) for e in mine] == [
        ("2027-01-05T09:00:00.000Z", "2027-01-05T10:00:00.000Z", world.service.calendar_type)
    ]
    tokens = stored_tokens(world.rt, connection_id)
    assert tokens.refresh_token and tokens.access_token
    with world.rt.db() as session:
        row = session.get(Connection, connection_id)
        assert row is not None and row.secret is not None
        assert tokens.access_token.encode() not in row.secret


@pytest.mark.parametrize(
    ("login", "approve", "error"),
    [
        ("ada", False, "reject"),
        ("blocked", True, "unsupported"),
        ("nomail", True, "unsupported"),
        ("nomailbox", True, "unsupported"),
    ],
)
def test_failures_redirect_with_error_and_create_nothing(
    world: World, login: str, approve: bool, error: str
) -> None:
    query = world.connect(login=login, approve=approve)
    assert query["error"] == [error] and "connectionId" not in query
    assert world.connections() == []


def test_token_endpoint_down_is_internal(world: World) -> None:
    world.peers.oidc.set_token_failure(True)
    try:
        query = world.connect()
    finally:
        world.peers.oidc.set_token_failure(False)
    assert query["error"] == ["internal"] and world.connections() == []


def test_state_is_single_use_and_unforgeable(world: World) -> None:
    provider_redirect = consent_over_http(world.start(), login="ada")
    first = world.callback(provider_redirect)
    assert first.status_code == 302 and "connectionId=" in first.headers["location"]
    replay = world.callback(provider_redirect)
    assert replay.status_code == 400 and "location" not in replay.headers
    forged = world.api.client.get("/oauth/callback?state=forged&code=x", follow_redirects=False)
    assert forged.status_code == 400 and "location" not in forged.headers
    assert len(world.connections()) == 1


def test_expired_state_is_internal(world: World) -> None:
    provider_redirect = consent_over_http(world.start(), login="ada")
    with world.rt.db() as session, session.begin():
        session.execute(
            update(OAuthAttempt).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = world.callback(provider_redirect)
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["internal"]
    assert world.connections() == []


def test_pkce_mismatch_is_internal(world: World) -> None:
    provider_redirect = consent_over_http(world.start(), login="ada")
    with world.rt.db() as session, session.begin():
        session.execute(
            update(OAuthAttempt).values(code_verifier=world.rt.secrets.encrypt("x" * 43))
        )
    response = world.callback(provider_redirect)
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == ["internal"]
    assert world.connections() == []


def test_redirect_origins_can_be_restricted(
    make_runtime: Callable[..., Runtime], peers: Peers, service: Service
) -> None:
    rt = make_runtime(
        extra_toml=provider_toml(peers, service),
        public_url=PUBLIC_URL,
        oauth_redirect_origins=json.dumps({"*": ["https://platform.example"]}),
    )
    with TestClient(create_app(rt, worker=False)) as client:
        api = Api(client, new_key(rt))
        schedule_id = random_guid()
        api.put(f"/v1/schedules/{schedule_id}", {"timeZone": "UTC"})
        body = {"scheduleId": schedule_id, "providerId": service.provider_id}
        evil = api.post(
            f"{EXT}/connections:connectByOAuth",
            {**body, "redirectUrl": "https://evil.example/steal"},
        )
        assert evil.status_code == 400
        ok = api.post(f"{EXT}/connections:connectByOAuth", {**body, "redirectUrl": PLATFORM})
        assert ok.status_code == 200


def expire_access_token(rt: Runtime, connection_id: str) -> None:
    """Make the stored access token look expired so the next use refreshes it."""
    tokens = stored_tokens(rt, connection_id)
    expired = OAuthTokens(
        tokens.access_token,
        tokens.refresh_token,
        datetime.now(UTC) - timedelta(seconds=5),
        tokens.scope,
    )
    from calsync.service.connections.accounts import seal_tokens

    with rt.db() as session, session.begin():
        session.execute(
            update(Connection)
            .where(Connection.id == connection_id)
            .values(secret=seal_tokens(rt, expired))
        )


def test_refresh_rotates_and_concurrent_refresh_happens_once(world: World) -> None:
    [connection_id] = world.connect()["connectionId"]
    before = stored_tokens(world.rt, connection_id)
    expire_access_token(world.rt, connection_id)
    results: list[str] = []
    errors: list[BaseException] = []

    def use() -> None:
        try:
            results.append(current_access_token(world.rt, connection_id, rejected_token=None))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(results)) == 1
    after = stored_tokens(world.rt, connection_id)
    assert after.access_token == results[0] != before.access_token
    assert after.refresh_token != before.refresh_token  # rotated
    # Had two threads refreshed with the same refresh token, oidc-provider would have revoked
    # the whole grant (reuse detection): the rotated token still works.
    assert world.peers.oidc.introspect(after.access_token) is not None
    world.rt.settings.freshness_seconds = 0
    sync_connection(world.rt, connection_id)
    connection = world.api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
    assert connection["status"] == "SYNCED"


def test_access_token_rejected_by_api_is_refreshed_once(world: World) -> None:
    [connection_id] = world.connect()["connectionId"]
    before = stored_tokens(world.rt, connection_id)
    world.service.fail_next_401()
    sync_connection(world.rt, connection_id)
    assert stored_tokens(world.rt, connection_id).access_token != before.access_token
    connection = world.api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
    assert connection["status"] == "SYNCED"


def test_revoked_grant_is_token_revoked_and_reconnect_repairs(world: World) -> None:
    [connection_id] = world.connect()["connectionId"]
    tokens = stored_tokens(world.rt, connection_id)
    import httpx

    httpx.post(
        world.peers.oidc.revoke_url,
        data={"token": tokens.refresh_token},
        auth=(CLIENT_ID, CLIENT_SECRET),
    ).raise_for_status()
    expire_access_token(world.rt, connection_id)
    with pytest.raises(Exception, match="refused"):
        sync_connection(world.rt, connection_id)
    connection = world.api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
    assert (connection["status"], connection["errorReason"]) == ("ERROR", "TOKEN_REVOKED")
    calls_before = world.service.request_count()
    failed = world.api.get(
        f"{EXT}/events", params={"from": "2027-01-01T00:00:00Z", "to": "2027-02-01T00:00:00Z"}
    )
    assert failed.status_code == 503
    assert world.service.request_count() == calls_before  # no calls while revoked
    again = world.connect()["connectionId"]
    assert again == [connection_id]
    repaired = world.api.get(f"{EXT}/connections/{connection_id}").json()["connection"]
    assert repaired["errorReason"] == "UNDEFINED" and repaired["status"] != "ERROR"


def test_disconnect_revokes_the_grant(world: World) -> None:
    [connection_id] = world.connect()["connectionId"]
    tokens = stored_tokens(world.rt, connection_id)
    assert world.peers.oidc.introspect(tokens.access_token) is not None
    response = world.api.post(f"{EXT}/connections/{connection_id}/disconnect", {})
    assert response.json()["connection"]["status"] == "DISCONNECTED"
    deadline = time.monotonic() + 10
    while world.peers.oidc.introspect(str(tokens.refresh_token)) is not None:
        assert time.monotonic() < deadline, "refresh token still active after disconnect"
        time.sleep(0.1)
    with world.rt.db() as session:
        row = session.get(Connection, connection_id)
        assert row is not None and row.secret is None


def test_browser_leg_in_chromium(world: World, tmp_path: Path) -> None:
    from tests.peers.browser import consent_in_chromium

    artifacts = Path("test-artifacts") / "oauth"
    provider_redirect = consent_in_chromium(world.start(), login="ada", screenshot_dir=artifacts)
    response = world.callback(provider_redirect)
    assert "connectionId=" in response.headers["location"]
