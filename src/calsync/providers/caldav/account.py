"""A CalDAV account's server side: logged-in sessions, discovery and calendar URLs.

Reads (``adapter``) and writes (``writer``) both reach the account through one
``CalDavServer``: RFC 6764 discovery of the principal and calendar home (kept in
``AccountRef.state``), the URL of a calendar below the home, and a collection's own properties.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urljoin, urlsplit

import httpx

from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarGone,
    Credentials,
    ProviderUnreachable,
)
from calsync.providers.caldav import dav
from calsync.providers.caldav.dav import DavClient, DavResponse, canonical_path
from calsync.providers.http import new_client

MAX_REDIRECTS = 5


class CalDavServer:
    """The CalDAV server at ``base_url`` (a caller-owned ``transport`` is borrowed)."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an absolute http(s) URL")
        self.base_url = base_url if parts.path.endswith("/") else base_url + "/"
        self._transport = transport
        self._timeout = timeout

    @contextmanager
    def session(self, credentials: Credentials | None) -> Iterator[DavClient]:
        """A WebDAV client logged in with ``credentials`` (AuthRejected without them)."""
        if credentials is None:
            raise AuthRejected("a CalDAV account needs a login and password")
        with new_client(
            auth=httpx.BasicAuth(credentials.username, credentials.password),
            transport=self._transport,
            timeout=self._timeout,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": "calsync-caldav"},
            on_request=self._refuse_other_origins,
        ) as client:
            yield DavClient(client)

    def _refuse_other_origins(self, request: httpx.Request) -> None:
        """Every request of a session, redirects included, stays within the configured
        server (``dav.within_origin``): refused before anything, credentials included, is
        sent elsewhere."""
        url = str(request.url)
        if not dav.within_origin(self.base_url, url):
            found = dav.origin(url)
            where = f"{found[1]}:{found[2]}" if found else "an address calsync cannot use"
            raise ProviderUnreachable(
                f"the calendar server at {dav.safe_url(self.base_url)} pointed calsync to "
                f"another server ({where}); calsync only follows links within the server it "
                "was configured with, so nothing was sent there"
            )

    def discover(self, client: DavClient) -> dict[str, str]:
        """The account's principal, calendar home and default calendar URLs (its state)."""
        principal = self._well_known_principal(client)
        if principal is None:
            principal = self._base_principal(client)
        if principal is None:
            raise ProviderUnreachable(
                f"{dav.safe_url(self.base_url)} is not a CalDAV server (no current-user-principal)"
            )
        props = [dav.CALENDAR_HOME_SET, dav.SCHEDULE_INBOX_URL, dav.SCHEDULE_DEFAULT_CALENDAR_URL]
        found = client.propfind(principal, props, depth="0", what="principal")
        home = dav.first_href(found.responses, dav.CALENDAR_HOME_SET, principal)
        if home is None:
            raise ProviderUnreachable(
                f"{dav.safe_url(principal)} is not a CalDAV principal (no calendar-home-set)"
            )
        state = {"principal_url": principal, "calendar_home_url": home}
        default = dav.first_href(found.responses, dav.SCHEDULE_DEFAULT_CALENDAR_URL, principal)
        inbox = dav.first_href(found.responses, dav.SCHEDULE_INBOX_URL, principal)
        if default is None and inbox is not None:
            default = self._inbox_default_calendar(client, inbox)
        if default is not None:
            state["schedule_default_calendar_url"] = default
        return state

    def _well_known_principal(self, client: DavClient) -> str | None:
        """RFC 6764 section 5: PROPFIND on /.well-known/caldav, following a few redirects."""
        url = urljoin(self.base_url, "/.well-known/caldav")
        body = dav.propfind_body([dav.CURRENT_USER_PRINCIPAL])
        for _ in range(MAX_REDIRECTS + 1):
            response = client.request("PROPFIND", url, body=body, depth="0", follow_redirects=False)
            location = response.headers.get("Location")
            if not (response.is_redirect and location):
                break
            target = urljoin(url, location)
            if not dav.within_origin(self.base_url, target):
                return None  # elsewhere: not followed, discovery goes on at the base URL
            url = target
        else:
            return None
        if response.status_code == 401:
            dav.raise_for_status(response, "discovery")
        if response.status_code not in (200, 207):
            return None  # no well-known support: fall back to base_url
        try:
            found = dav.parse_multistatus(response.content)
        except ValueError:
            return None
        return dav.first_href(found.responses, dav.CURRENT_USER_PRINCIPAL, str(response.url))

    def _base_principal(self, client: DavClient) -> str | None:
        body = dav.propfind_body([dav.CURRENT_USER_PRINCIPAL])
        response = client.request("PROPFIND", self.base_url, body=body, depth="0")
        if response.status_code in (401, 403, 429) or response.status_code >= 500:
            dav.raise_for_status(response, "discovery")
        try:  # a CalDAV server answers PROPFIND with a multistatus; anything else is not one
            found = dav.parse_multistatus(response.content)
        except ValueError:
            return None
        return dav.first_href(found.responses, dav.CURRENT_USER_PRINCIPAL, str(response.url))

    def _inbox_default_calendar(self, client: DavClient, inbox: str) -> str | None:
        try:
            found = client.scoped(on_forbidden=ProviderUnreachable).propfind(
                inbox, [dav.SCHEDULE_DEFAULT_CALENDAR_URL], depth="0", what="schedule inbox"
            )
        except ProviderUnreachable:
            return None  # optional (RFC 6638) and best effort
        return dav.first_href(found.responses, dav.SCHEDULE_DEFAULT_CALENDAR_URL, inbox)

    def home(self, client: DavClient, account: AccountRef) -> str:
        """The calendar home URL, from the account's state or discovered anew."""
        home = account.state.get("calendar_home_url")
        return home if home else self.discover(client)["calendar_home_url"]

    def calendar_url(self, client: DavClient, account: AccountRef, calendar_id: str) -> str:
        """The collection URL of the calendar ``calendar_id`` (a name below the home)."""
        return urljoin(self.home(client, account), quote(calendar_id, safe="") + "/")

    def collection_props(self, client: DavClient, url: str, props: list[str]) -> DavResponse:
        """The collection's own properties; CalendarGone when it does not exist."""
        found = client.propfind(url, props, depth="0", what="calendar")
        path = canonical_path(url, url).rstrip("/")
        matches = [r for r in found.responses if canonical_path(url, r.href).rstrip("/") == path]
        if not matches and len(found.responses) != 1:
            raise ProviderUnreachable(f"PROPFIND {dav.safe_url(url)}: the collection is not listed")
        response = matches[0] if matches else found.responses[0]
        if response.status in (404, 410):  # Xandikos: 207 whose only response says 404
            raise CalendarGone(f"PROPFIND {dav.safe_url(url)}: the calendar does not exist")
        return response
