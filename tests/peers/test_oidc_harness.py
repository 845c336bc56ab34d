"""Self-test of the OAuth/OIDC harness: the authorization server is real, and so are the drivers.

A hand-made client (httpx, PKCE S256) talks to oidc-provider on loopback; no calsync code is used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.peers.browser import LoginRejected, consent_in_chromium, consent_over_http
from tests.peers.oidc_server import (
    DENIED_ERROR,
    UNSUPPORTED_ACCOUNT_ERROR,
    OidcServer,
    account_sub,
    start_oidc_provider,
)

REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"  # never requested by the drivers
CLIENT_ID, CLIENT_SECRET = "calsync-test", "calsync-test-secret"
POST_ID, POST_SECRET = "post-client", "post-client-secret"
CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar.events"
SCOPES = f"openid email offline_access {CALENDAR_SCOPE} Calendars.ReadWrite"
ACCOUNTS: dict[str, str | None] = {
    "alice": "alice@example.com",
    "bob": "bob@example.com",  # denied: the "unsupported account"
    "nomail": None,  # an account without an e-mail claim
}


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class HandClient:
    """A minimal confidential OAuth client, written here from RFC 6749/7636/7009."""

    server: OidcServer
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    redirect_uri: str = REDIRECT_URI

    def authorization_url(
        self,
        *,
        verifier: str | None,
        method: str = "S256",
        scope: str = SCOPES,
        extra: dict[str, str] | None = None,
    ) -> tuple[str, str]:
        state = secrets.token_urlsafe(12)
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": scope,
            "state": state,
            "prompt": "consent",
        }
        if verifier is not None:
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                .rstrip(b"=")
                .decode()
                if method == "S256"
                else verifier
            )
            params |= {"code_challenge": challenge, "code_challenge_method": method}
        params |= extra or {}
        return f"{self.server.authorize_url}?{urlencode(params)}", state

    def token(self, form: dict[str, str], *, auth: str = "post") -> httpx.Response:
        if auth == "basic":
            return httpx.post(
                self.server.token_url, data=form, auth=(self.client_id, self.client_secret)
            )
        body = {**form, "client_id": self.client_id, "client_secret": self.client_secret}
        return httpx.post(self.server.token_url, data=body)

    def code_for(self, login: str = "alice", **kwargs: Any) -> tuple[str, str]:
        """(code, verifier) after a consented authorization as ``login``."""
        verifier = secrets.token_urlsafe(32)
        url, state = self.authorization_url(verifier=verifier, **kwargs)
        answer = _query(consent_over_http(url, login=login))
        assert answer.get("state") == state, answer
        assert "code" in answer, answer
        return answer["code"], verifier

    def exchange(self, code: str, verifier: str, *, auth: str = "post") -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        return self.token(form, auth=auth)

    def tokens(self, login: str = "alice", **kwargs: Any) -> dict[str, Any]:
        code, verifier = self.code_for(login, **kwargs)
        response = self.exchange(code, verifier)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def revoke(self, token: str, hint: str = "refresh_token") -> httpx.Response:
        return httpx.post(
            self.server.revoke_url,
            data={
                "token": token,
                "token_type_hint": hint,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )


def _assert_oauth_error(response: httpx.Response, error: str) -> None:
    assert response.status_code in (400, 401), (response.status_code, response.text)
    assert response.json()["error"] == error, response.text


class _CallbackHandler(BaseHTTPRequestHandler):
    """Stands in for calsync's callback: answers 302 to a fixed page, echoing the code."""

    def do_GET(self) -> None:
        query = _query(self.path)
        self.send_response(302)
        self.send_header("Location", f"/connected?got={query.get('code') or query.get('error')}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def callback_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _CallbackHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/oauth/callback"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory, callback_server: str) -> Iterator[OidcServer]:
    server = start_oidc_provider(
        tmp_path_factory.mktemp("oidc"),
        clients=[
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [REDIRECT_URI, callback_server],
            },
            {
                "client_id": POST_ID,
                "client_secret": POST_SECRET,
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": "client_secret_post",
            },
        ],
        accounts=ACCOUNTS,
        deny_accounts=["bob"],
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(oidc: OidcServer) -> HandClient:
    return HandClient(oidc)


def test_discovery_advertises_s256_only_and_the_endpoints(oidc: OidcServer) -> None:
    assert oidc.issuer == f"http://127.0.0.1:{oidc.port}"
    assert oidc.discovery["code_challenge_methods_supported"] == ["S256"]
    for url in (oidc.authorize_url, oidc.token_url, oidc.revoke_url, oidc.userinfo_url):
        assert url.startswith(oidc.issuer + "/")
    assert CALENDAR_SCOPE in oidc.discovery["scopes_supported"]


def test_code_flow_with_pkce_s256_gives_tokens_and_a_signed_id_token(
    oidc: OidcServer, client: HandClient
) -> None:
    tokens = client.tokens("alice")
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["access_token"] and tokens["refresh_token"]
    assert set(tokens["scope"].split()) == set(SCOPES.split())

    header_b64, payload_b64, signature_b64 = tokens["id_token"].split(".")
    header, claims = json.loads(_b64url_decode(header_b64)), json.loads(_b64url_decode(payload_b64))
    assert claims["iss"] == oidc.issuer
    assert claims["aud"] == CLIENT_ID
    assert claims["sub"] == account_sub("alice")
    assert claims["email"] == "alice@example.com"
    assert claims["email_verified"] is True
    jwk = next(k for k in httpx.get(oidc.jwks_url).json()["keys"] if k["kid"] == header["kid"])
    public_key = rsa.RSAPublicNumbers(
        int.from_bytes(_b64url_decode(jwk["e"]), "big"),
        int.from_bytes(_b64url_decode(jwk["n"]), "big"),
    ).public_key()
    public_key.verify(  # raises InvalidSignature when forged
        _b64url_decode(signature_b64),
        f"{header_b64}.{payload_b64}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )

    userinfo = httpx.get(
        oidc.userinfo_url, headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.status_code == 200
    assert userinfo.json() == {
        "sub": account_sub("alice"),
        "email": "alice@example.com",
        "email_verified": True,
    }


def test_the_code_is_single_use(client: HandClient) -> None:
    code, verifier = client.code_for("alice")
    assert client.exchange(code, verifier).status_code == 200
    _assert_oauth_error(client.exchange(code, verifier), "invalid_grant")


def test_a_wrong_or_missing_code_verifier_is_invalid_grant(client: HandClient) -> None:
    code, _ = client.code_for("alice")
    _assert_oauth_error(client.exchange(code, secrets.token_urlsafe(32)), "invalid_grant")
    code, _ = client.code_for("alice")
    response = client.token(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    )
    _assert_oauth_error(response, "invalid_grant")


@pytest.mark.parametrize("pkce", ["plain", "none"])
def test_authorization_without_s256_pkce_is_refused(client: HandClient, pkce: str) -> None:
    verifier = secrets.token_urlsafe(32)
    url, state = client.authorization_url(
        verifier=None if pkce == "none" else verifier, method="plain"
    )
    answer = _query(consent_over_http(url, login="alice"))
    assert answer["error"] == "invalid_request", answer
    assert answer["state"] == state
    assert "code" not in answer


def test_refresh_rotates_and_the_old_refresh_token_is_refused(
    oidc: OidcServer, client: HandClient
) -> None:
    first = client.tokens("alice")
    response = client.refresh(first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert oidc.introspect(second["access_token"]) is not None

    _assert_oauth_error(client.refresh(first["refresh_token"]), "invalid_grant")
    # oidc-provider treats the re-use of a rotated refresh token as theft: the grant is revoked.
    _assert_oauth_error(client.refresh(second["refresh_token"]), "invalid_grant")


def test_revoking_the_refresh_token_makes_refresh_fail(
    oidc: OidcServer, client: HandClient
) -> None:
    tokens = client.tokens("alice")
    assert oidc.introspect(tokens["refresh_token"]) is not None
    response = client.revoke(tokens["refresh_token"])
    assert response.status_code == 200, response.text
    _assert_oauth_error(client.refresh(tokens["refresh_token"]), "invalid_grant")
    assert oidc.introspect(tokens["refresh_token"]) is None
    assert oidc.introspect(tokens["access_token"]) is None  # the whole grant went


def test_introspection_reports_active_and_inactive_tokens(
    oidc: OidcServer, client: HandClient
) -> None:
    tokens = client.tokens("alice")
    answer = oidc.introspect(tokens["access_token"])
    assert answer is not None
    assert answer["active"] is True
    assert answer["sub"] == account_sub("alice")
    assert answer["client_id"] == CLIENT_ID
    assert CALENDAR_SCOPE in answer["scope"].split()
    assert oidc.introspect("not-a-token-" + secrets.token_urlsafe(16)) is None
    client.revoke(tokens["access_token"], hint="access_token")
    assert oidc.introspect(tokens["access_token"]) is None


def test_denial_at_the_consent_page_is_access_denied(client: HandClient) -> None:
    url, state = client.authorization_url(verifier=secrets.token_urlsafe(32))
    answer = _query(consent_over_http(url, login="alice", approve=False))
    assert answer["error"] == DENIED_ERROR == "access_denied"
    assert answer["state"] == state
    assert "code" not in answer


def test_an_unsupported_account_is_unauthorized_client(client: HandClient) -> None:
    url, state = client.authorization_url(verifier=secrets.token_urlsafe(32))
    answer = _query(consent_over_http(url, login="bob"))
    assert answer["error"] == UNSUPPORTED_ACCOUNT_ERROR == "unauthorized_client"
    assert answer["state"] == state
    assert "code" not in answer


def test_an_unknown_login_is_refused(client: HandClient) -> None:
    url, _ = client.authorization_url(verifier=secrets.token_urlsafe(32))
    with pytest.raises(LoginRejected, match="unknown login"):
        consent_over_http(url, login="mallory")


def test_an_account_without_email_has_no_email_claim(oidc: OidcServer, client: HandClient) -> None:
    tokens = client.tokens("nomail")
    userinfo = httpx.get(
        oidc.userinfo_url, headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).json()
    assert userinfo == {"sub": account_sub("nomail")}


def test_token_failure_switch_makes_the_token_endpoint_answer_500(
    oidc: OidcServer, client: HandClient
) -> None:
    code, verifier = client.code_for("alice")
    oidc.set_token_failure(True)
    try:
        response = client.exchange(code, verifier)
        assert response.status_code == 500
        assert response.json()["error"] == "server_error"
    finally:
        oidc.set_token_failure(False)
    assert client.exchange(code, verifier).status_code == 200  # the code was not consumed


def test_client_secret_basic_and_post_are_both_accepted(oidc: OidcServer) -> None:
    # oidc-provider accepts either secret method, whichever one the client registered.
    for client_id, secret in ((CLIENT_ID, CLIENT_SECRET), (POST_ID, POST_SECRET)):
        client = HandClient(oidc, client_id=client_id, client_secret=secret)
        for auth in ("basic", "post"):
            code, verifier = client.code_for("alice")
            response = client.exchange(code, verifier, auth=auth)
            assert response.status_code == 200, (client_id, auth, response.text)
    wrong = HandClient(oidc, client_secret="not-the-secret")
    code, verifier = wrong.code_for("alice")
    _assert_oauth_error(wrong.exchange(code, verifier), "invalid_client")


def test_refresh_tokens_need_offline_access_or_googles_access_type(client: HandClient) -> None:
    online = client.tokens("alice", scope=f"openid email {CALENDAR_SCOPE}")
    assert "refresh_token" not in online
    google = client.tokens(
        "alice", scope=f"openid email {CALENDAR_SCOPE}", extra={"access_type": "offline"}
    )
    assert google["refresh_token"]


def test_follow_callback_returns_where_the_callback_redirects(
    oidc: OidcServer, callback_server: str
) -> None:
    client = HandClient(oidc, redirect_uri=callback_server)
    url, _ = client.authorization_url(verifier=secrets.token_urlsafe(32))
    location = consent_over_http(url, login="alice", follow_callback=True)
    assert location.startswith(callback_server.rsplit("/oauth/", 1)[0] + "/connected?got=")


def test_a_short_access_token_ttl_expires(tmp_path: Path) -> None:
    with start_oidc_provider(
        tmp_path / "oidc",
        clients=[
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [REDIRECT_URI],
            }
        ],
        accounts={"alice": "alice@example.com"},
        access_token_ttl=2,
    ) as server:
        client = HandClient(server)
        tokens = client.tokens("alice")
        assert tokens["expires_in"] == 2
        # exp is a whole second (iat + ttl, iat rounded down): a ttl of N lives N-1 to N seconds.
        assert server.introspect(tokens["access_token"]) is not None
        time.sleep(2.5)
        assert server.introspect(tokens["access_token"]) is None
        refreshed = client.refresh(tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        assert server.introspect(refreshed.json()["access_token"]) is not None


def test_chromium_completes_a_consent(oidc: OidcServer, client: HandClient, tmp_path: Path) -> None:
    verifier = secrets.token_urlsafe(32)
    url, state = client.authorization_url(verifier=verifier)
    answer = _query(consent_in_chromium(url, login="alice", screenshot_dir=tmp_path))
    assert answer["state"] == state
    assert (tmp_path / "login.png").stat().st_size > 0
    assert (tmp_path / "consent.png").stat().st_size > 0
    response = client.exchange(answer["code"], verifier)
    assert response.status_code == 200, response.text
    assert oidc.introspect(response.json()["access_token"]) is not None


def test_chromium_denial_is_access_denied(client: HandClient) -> None:
    url, _ = client.authorization_url(verifier=secrets.token_urlsafe(32))
    answer = _query(consent_in_chromium(url, login="alice", approve=False, screenshot_dir=None))
    assert answer["error"] == "access_denied"
