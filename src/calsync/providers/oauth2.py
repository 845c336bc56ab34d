"""A plain OAuth 2.0 client (RFC 6749 + PKCE RFC 7636 + revocation RFC 7009) over httpx.

One instance per provider configuration. It knows endpoints and client credentials, never the
database: tokens go in and out as ``OAuthTokens``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from calsync.providers.base import (
    InvalidGrant,
    OAuthFailure,
    OAuthTokens,
    ProviderUnreachable,
    UnsupportedAccount,
)
from calsync.providers.http import new_client, transport_errors


def new_code_verifier() -> str:
    """43-128 characters from the unreserved set (RFC 7636 section 4.1); 256 bits here."""
    return secrets.token_urlsafe(32)


def code_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OAuthClient:
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        authorize_url: str,
        token_url: str,
        userinfo_url: str,
        scopes: Sequence[str],
        revoke_url: str = "",
        authorize_params: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.authorize_url = authorize_url
        self.token_url = token_url
        self.userinfo_url = userinfo_url
        self.revoke_url = revoke_url
        self.scopes = list(scopes)
        self.authorize_params = dict(authorize_params or {})
        self._http = new_client(transport=transport, timeout=timeout, headers={})

    def close(self) -> None:
        self._http.close()

    def authorization_url(self, *, state: str, challenge: str, redirect_uri: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.scopes),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **self.authorize_params,
        }
        separator = "&" if "?" in self.authorize_url else "?"
        return f"{self.authorize_url}{separator}{urlencode(params)}"

    def exchange_code(self, *, code: str, verifier: str, redirect_uri: str) -> OAuthTokens:
        return self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            previous_refresh=None,
        )

    def refresh(self, refresh_token: str) -> OAuthTokens:
        """New tokens; a rotated refresh token replaces the old one, else the old one stays."""
        return self._token_request(
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
            previous_refresh=refresh_token,
        )

    def revoke(self, token: str) -> None:
        """Best effort (RFC 7009): failures are the provider's problem, not the caller's."""
        if not self.revoke_url:
            return
        try:
            self._http.post(
                self.revoke_url,
                data={
                    "token": token,
                    "client_id": self.client_id,
                    "client_secret": self._client_secret,
                },
            )
        except httpx.HTTPError:
            return

    def account_email(self, tokens: OAuthTokens) -> str:
        """The account's e-mail from the userinfo endpoint (OIDC ``email``, Graph ``mail`` or
        ``userPrincipalName``). UnsupportedAccount when the account has none."""
        with transport_errors("userinfo", "the userinfo endpoint"):
            response = self._http.get(
                self.userinfo_url, headers={"Authorization": f"Bearer {tokens.access_token}"}
            )
        if response.status_code >= 500:
            raise ProviderUnreachable(f"userinfo endpoint answered {response.status_code}")
        if response.status_code != 200:
            raise OAuthFailure("server_error", f"userinfo answered {response.status_code}")
        data = _json(response)
        for key in ("email", "mail", "userPrincipalName"):
            value = data.get(key)
            if isinstance(value, str) and "@" in value:
                return value
        raise UnsupportedAccount("the account has no e-mail address")

    def _token_request(self, form: dict[str, str], previous_refresh: str | None) -> OAuthTokens:
        body = {**form, "client_id": self.client_id, "client_secret": self._client_secret}
        with transport_errors("token request", "the token endpoint"):
            response = self._http.post(
                self.token_url, data=body, headers={"Accept": "application/json"}
            )
        data = _json(response)
        if response.status_code >= 500:
            raise ProviderUnreachable(f"token endpoint answered {response.status_code}")
        if response.status_code != 200 or "access_token" not in data:
            error = str(data.get("error") or "server_error")
            description = str(data.get("error_description") or "")[:200]
            if error == "invalid_grant":
                raise InvalidGrant(f"invalid_grant: {description}")
            raise OAuthFailure(error, description)
        expires_in = data.get("expires_in")
        expires_at = (
            datetime.now(UTC) + timedelta(seconds=int(expires_in))
            if isinstance(expires_in, int | str) and str(expires_in).isdigit()
            else None
        )
        return OAuthTokens(
            access_token=str(data["access_token"]),
            refresh_token=str(data.get("refresh_token") or previous_refresh or "") or None,
            expires_at=expires_at,
            scope=str(data.get("scope") or ""),
            id_token=str(data["id_token"]) if data.get("id_token") else None,
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
