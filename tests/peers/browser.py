"""Drive the browser leg of an OAuth authorization (login + consent) against a real server.

Two drivers with the same contract: given the authorization URL a client built, act as the user
(sign in as ``login``, then approve or cancel at the consent page) and return the URL the
authorization server sends the browser to -- the client's redirect_uri with ``code`` and
``state``, or with ``error`` -- without requesting it.

* ``consent_over_http``: httpx with a cookie jar, redirects followed by hand, forms parsed with
  ``html.parser``. ``follow_callback=True`` also requests the callback URL (as the browser would)
  and returns the ``Location`` it answers with, without following it.
* ``consent_in_chromium``: headless Debian Chromium driven by Playwright (never a downloaded
  browser). Every request is routed: requests that leave the loopback interface are aborted,
  authorization-server responses are fetched with redirects off so the redirect to the client is
  caught before the browser follows it. Without Playwright or Chromium the test is skipped, or
  failed when ``CALSYNC_REQUIRE_BROWSER=1``.

The pages are oidc-provider's devInteractions pages (``tests/peers/oidc``): a login form (hidden
``prompt=login``, fields ``login`` and ``password``), a consent form (hidden ``prompt=consent``)
and a ``[ Cancel ]`` link to ``/interaction/<uid>/abort`` on both.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

REQUIRE_BROWSER = "CALSYNC_REQUIRE_BROWSER"
CHROMIUM_PATH = os.environ.get("CALSYNC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    # Belt and braces with the request routing below: no name outside loopback resolves.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
_MAX_STEPS = 30


class BrowserFlowError(AssertionError):
    """The authorization pages did not go as a user would expect (text of the page included)."""


class LoginRejected(BrowserFlowError):
    """The authorization server showed the login form again after the login was submitted."""


# --- HTML parsing ----------------------------------------------------------------------------


@dataclass
class _Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)  # every named input, hidden or not
    types: dict[str, str] = field(default_factory=dict)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.text: list[str] = []
        self._form: _Form | None = None
        self._link: list[Any] | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "form":
            self._form = _Form(
                action=attributes.get("action", ""),
                method=attributes.get("method", "get").lower(),
            )
            self.forms.append(self._form)
        elif tag in ("input", "button", "select", "textarea") and self._form is not None:
            name = attributes.get("name")
            if name:
                self._form.names.append(name)
                self._form.types[name] = attributes.get("type", "text").lower()
                self._form.fields[name] = attributes.get("value", "")
        elif tag == "a":
            self._link = [attributes.get("href", ""), ""]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip = max(0, self._skip - 1)
        elif tag == "form":
            self._form = None
        elif tag == "a" and self._link is not None:
            self.links.append((self._link[0], self._link[1].strip()))
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._link is not None:
            self._link[1] += data
        if data.strip():
            self.text.append(data.strip())


def _parse(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


def _page_kind(page: _PageParser) -> tuple[str, _Form | None]:
    for form in page.forms:
        if form.fields.get("prompt") == "login" or "password" in form.types.values():
            return "login", form
    for form in page.forms:
        if form.fields.get("prompt") == "consent":
            return "consent", form
    return "other", None


def _abort_link(page: _PageParser) -> str | None:
    for href, text in page.links:
        if href.rstrip("/").endswith("/abort") or "cancel" in text.lower():
            return href
    return None


def _page_text(page: _PageParser) -> str:
    return " | ".join(page.text)[:2000]


# --- where the flow ends ---------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


class _Callback:
    """Recognises the client's redirect_uri (from the authorization URL's query)."""

    def __init__(self, oauth_url: str) -> None:
        query = parse_qs(urlsplit(oauth_url).query)
        self.redirect_uri = (query.get("redirect_uri") or [""])[0]
        self.server_origin = _origin(oauth_url)

    def matches(self, url: str) -> bool:
        if self.redirect_uri:
            target, expected = urlsplit(url), urlsplit(self.redirect_uri)
            return (target.scheme, target.netloc, target.path) == (
                expected.scheme,
                expected.netloc,
                expected.path,
            )
        # No redirect_uri in the request (a client with one registered URI): anything that
        # leaves the authorization server is the way back to the client.
        return _origin(url) != self.server_origin


# --- httpx driver ----------------------------------------------------------------------------


def consent_over_http(
    oauth_url: str,
    *,
    login: str,
    approve: bool = True,
    follow_callback: bool = False,
    password: str = "any-password",
    timeout: float = 10.0,
) -> str:
    """Sign in as ``login`` and approve (or cancel) like a browser; see the module docstring."""
    callback = _Callback(oauth_url)
    with httpx.Client(follow_redirects=False, timeout=timeout) as client:
        url = _run_http_flow(client, oauth_url, callback, login, password, approve)
        if not follow_callback:
            return url
        response = client.get(url)
        location = str(response.headers.get("location") or "")
        if not response.is_redirect or not location:
            raise BrowserFlowError(
                f"the callback {url} answered {response.status_code} without a redirect: "
                f"{response.text[:500]}"
            )
        return urljoin(url, location)


def _run_http_flow(
    client: httpx.Client,
    oauth_url: str,
    callback: _Callback,
    login: str,
    password: str,
    approve: bool,
) -> str:
    request = client.build_request("GET", oauth_url)
    logged_in = False
    for _ in range(_MAX_STEPS):
        response = client.send(request)
        current = str(response.url)
        if response.is_redirect:
            target = urljoin(current, response.headers["location"])
            if callback.matches(target):
                return target
            request = client.build_request("GET", target)
            continue
        page = _parse(response.text)
        kind, form = _page_kind(page)
        if kind == "login" and form is not None:
            if logged_in:
                raise LoginRejected(f"login {login!r} was refused: {_page_text(page)}")
            fields = dict(form.fields)
            fields["login"] = login
            fields["password"] = password
            request = _submit(client, current, form, fields)
            logged_in = True
        elif kind == "consent" and form is not None:
            if approve:
                request = _submit(client, current, form, dict(form.fields))
            else:
                abort = _abort_link(page)
                if abort is None:
                    raise BrowserFlowError(
                        f"no cancel link on the consent page: {_page_text(page)}"
                    )
                request = client.build_request("GET", urljoin(current, abort))
        else:
            raise BrowserFlowError(
                f"unexpected page at {current} (HTTP {response.status_code}): {_page_text(page)}"
            )
    raise BrowserFlowError(f"no redirect to the client after {_MAX_STEPS} steps")


def _submit(
    client: httpx.Client, current: str, form: _Form, fields: dict[str, str]
) -> httpx.Request:
    action = urljoin(current, form.action or current)
    if form.method == "post":
        return client.build_request("POST", action, data=fields)
    return client.build_request("GET", action, params=fields)


# --- Chromium driver -------------------------------------------------------------------------


def _browser_unavailable(message: str) -> None:
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{message} ({REQUIRE_BROWSER}=1)")
    pytest.skip(message)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def consent_in_chromium(
    oauth_url: str,
    *,
    login: str,
    approve: bool = True,
    screenshot_dir: Path | None = None,
    password: str = "any-password",
    timeout: float = 20.0,
) -> str:
    """The same as ``consent_over_http`` (without follow_callback) in headless Chromium.

    Saves ``login.png`` and ``consent.png`` (and ``login-refused.png`` when the login is refused)
    in ``screenshot_dir`` when given.
    """
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_unavailable("the playwright Python package is not installed")
        raise  # unreachable: skip/fail raise
    if not (os.path.isfile(CHROMIUM_PATH) and os.access(CHROMIUM_PATH, os.X_OK)):
        _browser_unavailable(
            f"Chromium is not installed at {CHROMIUM_PATH} (apt-get install chromium)"
        )

    callback = _Callback(oauth_url)
    captured: list[str] = []
    if screenshot_dir is not None:
        screenshot_dir.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="calsync-chromium-") as profile,
        sync_playwright() as pw,
    ):
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM_PATH,
            headless=True,
            args=CHROMIUM_ARGS,
            timeout=timeout * 1000,
        )
        try:
            context.set_default_timeout(timeout * 1000)
            context.route("**/*", _router(context, callback, captured))
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(oauth_url, wait_until="load")
            _drive_chromium(
                page, callback, captured, login, password, approve, screenshot_dir, timeout
            )
        except PlaywrightError as exc:
            raise BrowserFlowError(f"Chromium: {exc}") from exc
        finally:
            context.close()
        shutil.rmtree(profile, ignore_errors=True)
    return captured[0]


def _router(context: Any, callback: _Callback, captured: list[str]) -> Any:
    def handle(route: Any) -> None:
        url = route.request.url
        if callback.matches(url):
            # Only reached when the browser itself is sent here (e.g. a redirect that was not
            # seen below): answer in its place, the client never sees the request.
            captured.append(url)
            route.fulfill(status=200, content_type="text/html", body=_CAPTURED_PAGE)
            return
        if not _is_loopback(url):
            route.abort("blockedbyclient")
            return
        # Redirects are followed by the browser without consulting the route handler again, so
        # fetch with redirects off and follow authorization-server redirects here, until a page
        # or the redirect to the client. The context's request API shares the browser's cookies.
        response = route.fetch(max_redirects=0)
        for _ in range(_MAX_STEPS):
            location = response.headers.get("location")
            if not (300 <= response.status < 400 and location):
                break
            target = urljoin(response.url, location)
            if callback.matches(target):
                captured.append(target)
                route.fulfill(status=200, content_type="text/html", body=_CAPTURED_PAGE)
                return
            if not _is_loopback(target):
                route.abort("blockedbyclient")
                return
            response = context.request.get(target, max_redirects=0)
        route.fulfill(response=response)

    return handle


_CAPTURED_PAGE = (
    "<!DOCTYPE html><html><head><title>redirect captured</title></head>"
    "<body><p id='captured'>The redirect to the client was captured by the test.</p></body></html>"
)


def _drive_chromium(
    page: Any,
    callback: _Callback,
    captured: list[str],
    login: str,
    password: str,
    approve: bool,
    screenshot_dir: Path | None,
    timeout: float,
) -> None:
    logged_in = False
    consented = False
    deadline = time.monotonic() + timeout
    while not captured:
        if time.monotonic() > deadline:
            raise BrowserFlowError(f"no redirect to the client within {timeout}s; at {page.url}")
        page.wait_for_load_state("load")
        login_form = page.locator("form:has(input[name=prompt][value=login])")
        consent_form = page.locator("form:has(input[name=prompt][value=consent])")
        if login_form.count():
            if logged_in:
                if screenshot_dir is not None:
                    page.screenshot(path=str(screenshot_dir / "login-refused.png"))
                raise LoginRejected(f"login {login!r} was refused: {page.inner_text('body')[:500]}")
            login_form.locator("input[name=login]").fill(login)
            login_form.locator("input[name=password]").fill(password)
            if screenshot_dir is not None:
                page.screenshot(path=str(screenshot_dir / "login.png"))
            with page.expect_navigation(wait_until="load"):
                login_form.locator("button[type=submit], input[type=submit]").first.click()
            logged_in = True
        elif consent_form.count() and not consented:
            if screenshot_dir is not None:
                page.screenshot(path=str(screenshot_dir / "consent.png"))
            target = (
                consent_form.locator("button[type=submit], input[type=submit]").first
                if approve
                else page.locator("a[href$='/abort']").first
            )
            with page.expect_navigation(wait_until="load"):
                target.click()
            consented = True
        elif not captured:
            raise BrowserFlowError(
                f"unexpected page at {page.url}: {page.inner_text('body')[:500]}"
            )
