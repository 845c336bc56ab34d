"""The OAuth 2.0 client's wire behaviour and error mapping, at the httpx transport seam."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from calsync.providers.base import (
    InvalidGrant,
    OAuthFailure,
    OAuthTokens,
    ProviderUnreachable,
    UnsupportedAccount,
)
from calsync.providers.oauth2 import OAuthClient, code_challenge
from calsync.service.connections.oauth import with_query


def client(handler: httpx.MockTransport) -> OAuthClient:
    return OAuthClient(
        client_id="cid",
        client_secret="shh",
        authorize_url="https://as.test/authorize?x=1",
        token_url="https://as.test/token",
        userinfo_url="https://as.test/me",
        revoke_url="https://as.test/revoke",
        scopes=["openid", "email"],
        authorize_params={"access_type": "offline"},
        transport=handler,
    )


def test_authorization_url_carries_pkce_state_and_extra_params() -> None:
    oauth = client(httpx.MockTransport(lambda r: httpx.Response(500)))
    url = oauth.authorization_url(
        state="st",
        challenge=code_challenge("v" * 43),
        redirect_uri="https://cs.test/oauth/callback",
    )
    query = parse_qs(urlsplit(url).query)
    assert query["x"] == ["1"] and query["state"] == ["st"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["scope"] == ["openid email"] and query["access_type"] == ["offline"]
    assert query["response_type"] == ["code"] and query["client_id"] == ["cid"]
    # RFC 7636 appendix B test vector.
    assert code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    oauth.close()


def test_refresh_keeps_old_refresh_token_unless_rotated() -> None:
    answers = iter(
        [
            {"access_token": "a1", "expires_in": 3600, "token_type": "Bearer"},
            {"access_token": "a2", "refresh_token": "r2", "expires_in": "60"},
        ]
    )
    seen: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(parse_qs(request.content.decode()))
        return httpx.Response(200, json=next(answers))

    oauth = client(httpx.MockTransport(handler))
    first = oauth.refresh("r1")
    assert (first.access_token, first.refresh_token) == ("a1", "r1")
    assert first.expires_at is not None
    second = oauth.refresh("r1")
    assert second.refresh_token == "r2"
    assert seen[0]["grant_type"] == ["refresh_token"] and seen[0]["client_secret"] == ["shh"]
    oauth.close()


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": "invalid_grant", "error_description": "revoked"}, InvalidGrant),
        (400, {"error": "invalid_client"}, OAuthFailure),
        (401, {"error": "unauthorized_client"}, OAuthFailure),
        (500, {}, ProviderUnreachable),
        (200, {"no": "token"}, OAuthFailure),
    ],
)
def test_token_errors_are_mapped(status: int, body: dict, error: type[Exception]) -> None:  # type: ignore[type-arg]
    oauth = client(httpx.MockTransport(lambda r: httpx.Response(status, json=body)))
    with pytest.raises(error):
        oauth.exchange_code(code="c", verifier="v", redirect_uri="https://cs.test/cb")
    oauth.close()


def test_network_failure_is_unreachable_and_messages_hold_no_secret() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    oauth = client(httpx.MockTransport(boom))
    with pytest.raises(ProviderUnreachable) as caught:
        oauth.refresh("secret-refresh-token")
    assert "secret-refresh-token" not in str(caught.value) and "shh" not in str(caught.value)
    oauth.close()


@pytest.mark.parametrize(
    ("body", "email"),
    [
        ({"email": "a@x.test"}, "a@x.test"),
        ({"mail": None, "userPrincipalName": "b@y.test"}, "b@y.test"),
    ],
)
def test_account_email_from_userinfo(body: dict, email: str) -> None:  # type: ignore[type-arg]
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer at"
        return httpx.Response(200, json=body)

    oauth = client(httpx.MockTransport(handler))
    assert oauth.account_email(OAuthTokens("at", None, None)) == email
    oauth.close()


def test_account_without_email_is_unsupported() -> None:
    oauth = client(httpx.MockTransport(lambda r: httpx.Response(200, json={"sub": "1"})))
    with pytest.raises(UnsupportedAccount):
        oauth.account_email(OAuthTokens("at", None, None))
    oauth.close()


def test_revoke_is_best_effort() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.dumps(parse_qs(request.content.decode())))
        return httpx.Response(503)

    oauth = client(httpx.MockTransport(handler))
    oauth.revoke("r1")
    assert calls and "r1" in calls[0]
    oauth.close()


def test_redirect_keeps_existing_query_and_fragment() -> None:
    assert with_query("https://p.test/cb?a=1&b=&c=x%20y#frag", {"connectionId": "abc"}) == (
        "https://p.test/cb?a=1&b=&c=x+y&connectionId=abc#frag"
    )
