"""A small WebDAV/CalDAV client: request bodies, multistatus parsing, HTTP error mapping.

Only what the CalDAV adapter needs: PROPFIND and REPORT (calendar-query, calendar-multiget,
sync-collection), MKCALENDAR, and plain requests with extra headers (conditional PUT / DELETE)
over a sync ``httpx.Client``. Failures become ``ProviderError`` subclasses
whose messages name the method, the URL (without credentials or query) and the HTTP status,
never a header or a password.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit
from xml.sax.saxutils import escape

import httpx

from calsync.providers.base import (
    AuthRejected,
    ProviderError,
    ProviderUnreachable,
)
from calsync.providers.http import shared_status_error, transport_errors

SERVICE = "the CalDAV server"

DAV_NS = "DAV:"
CALDAV_NS = "urn:ietf:params:xml:ns:caldav"
CS_NS = "http://calendarserver.org/ns/"
_PREFIXES = {DAV_NS: "D", CALDAV_NS: "C", CS_NS: "CS"}
_NS_DECL = " ".join(f'xmlns:{prefix}="{ns}"' for ns, prefix in _PREFIXES.items())


def dav(name: str) -> str:
    return f"{{{DAV_NS}}}{name}"


def caldav(name: str) -> str:
    return f"{{{CALDAV_NS}}}{name}"


HREF = dav("href")
RESOURCETYPE = dav("resourcetype")
DISPLAYNAME = dav("displayname")
GETETAG = dav("getetag")
SYNC_TOKEN = dav("sync-token")
CURRENT_USER_PRINCIPAL = dav("current-user-principal")
CURRENT_USER_PRIVILEGE_SET = dav("current-user-privilege-set")
SUPPORTED_REPORT_SET = dav("supported-report-set")
GETCTAG = f"{{{CS_NS}}}getctag"
CALENDAR = caldav("calendar")
CALENDAR_DATA = caldav("calendar-data")
CALENDAR_HOME_SET = caldav("calendar-home-set")
SUPPORTED_COMPONENTS = caldav("supported-calendar-component-set")
SCHEDULE_INBOX_URL = caldav("schedule-inbox-URL")
SCHEDULE_DEFAULT_CALENDAR_URL = caldav("schedule-default-calendar-URL")

# Characters left unescaped in a canonical path (RFC 3986 pchar minus '%', plus '/').
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


# --- request bodies ----------------------------------------------------------------------------


def _tag(clark: str) -> str:
    ns, _, local = clark[1:].partition("}")
    return f"{_PREFIXES[ns]}:{local}"


def _props(props: Iterable[str]) -> str:
    return "<D:prop>" + "".join(f"<{_tag(p)}/>" for p in props) + "</D:prop>"


def _document(root: str, inner: str) -> bytes:
    xml = f'<?xml version="1.0" encoding="utf-8"?><{root} {_NS_DECL}>{inner}</{root}>'
    return xml.encode("utf-8")


def propfind_body(props: Iterable[str]) -> bytes:
    return _document("D:propfind", _props(props))


def calendar_query_body(props: Iterable[str], component: str = "VEVENT") -> bytes:
    """calendar-query for every ``component`` of the collection (no time-range)."""
    filter_xml = (
        '<C:filter><C:comp-filter name="VCALENDAR">'
        f'<C:comp-filter name="{escape(component)}"/>'
        "</C:comp-filter></C:filter>"
    )
    return _document("C:calendar-query", _props(props) + filter_xml)


def multiget_body(props: Iterable[str], hrefs: Iterable[str]) -> bytes:
    href_xml = "".join(f"<D:href>{escape(h)}</D:href>" for h in hrefs)
    return _document("C:calendar-multiget", _props(props) + href_xml)


def sync_collection_body(token: str, props: Iterable[str]) -> bytes:
    inner = f"<D:sync-token>{escape(token)}</D:sync-token><D:sync-level>1</D:sync-level>"
    return _document("D:sync-collection", inner + _props(props))


def mkcalendar_body(display_name: str, components: Iterable[str]) -> bytes:
    """RFC 4791 section 5.3.1: a calendar named ``display_name`` holding only ``components``."""
    comps = "".join(f'<C:comp name="{escape(c)}"/>' for c in components)
    props = (
        f"<D:displayname>{escape(display_name)}</D:displayname>"
        f"<C:supported-calendar-component-set>{comps}</C:supported-calendar-component-set>"
    )
    return _document("C:mkcalendar", f"<D:set><D:prop>{props}</D:prop></D:set>")


# --- multistatus -------------------------------------------------------------------------------


@dataclass
class DavResponse:
    """One ``<D:response>``: its href, response-level status and the properties found (2xx)."""

    href: str
    status: int | None = None
    props: dict[str, ET.Element] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        element = self.props.get(name)
        if element is None or element.text is None:
            return None
        return element.text.strip() or None

    def raw_text(self, name: str) -> str | None:
        element = self.props.get(name)
        return None if element is None else (element.text or "")

    def hrefs(self, name: str) -> list[str]:
        element = self.props.get(name)
        if element is None:
            return []
        return [h.text.strip() for h in element.iter(HREF) if h.text and h.text.strip()]

    def has_child(self, name: str, child: str) -> bool:
        element = self.props.get(name)
        return element is not None and element.find(f".//{child}") is not None


@dataclass
class Multistatus:
    responses: list[DavResponse]
    sync_token: str | None = None


def _status_code(element: ET.Element | None) -> int | None:
    if element is None or not element.text:
        return None
    parts = element.text.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


# Characters XML 1.0 forbids, raw or as references (``&#11;``), which servers pass through
# from event text: one of them made a whole REPORT "not well-formed" and lost every event.
_FORBIDDEN_RAW = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CHARACTER_REF = re.compile(rb"&#(x[0-9a-fA-F]+|[0-9]+);")


def _drop_forbidden_ref(match: re.Match[bytes]) -> bytes:
    digits = match.group(1)
    code = int(digits[1:], 16) if digits[:1] == b"x" else int(digits)
    return b"" if code < 0x20 and code not in (0x9, 0xA, 0xD) else match.group(0)


def _parse_xml(content: bytes) -> ET.Element:
    """The document's root; a document that is broken only by characters XML forbids is
    read without them (each object keeps its other text), anything else raises."""
    try:
        return ET.fromstring(content)
    except ET.ParseError as exc:
        cleaned = _CHARACTER_REF.sub(_drop_forbidden_ref, _FORBIDDEN_RAW.sub(b"", content))
        if cleaned == content:
            raise ValueError(f"malformed XML: {exc}") from None
    try:
        return ET.fromstring(cleaned)
    except ET.ParseError as exc:
        raise ValueError(f"malformed XML: {exc}") from None


def parse_multistatus(content: bytes) -> Multistatus:
    """Parse a 207 body; raises ``ValueError`` if it is not a DAV multistatus."""
    root = _parse_xml(content)
    if root.tag != dav("multistatus"):
        raise ValueError(f"expected DAV:multistatus, got {root.tag}")
    responses = []
    for element in root.findall(dav("response")):
        href = element.findtext(HREF, "").strip()
        response = DavResponse(href=href, status=_status_code(element.find(dav("status"))))
        for propstat in element.findall(dav("propstat")):
            code = _status_code(propstat.find(dav("status")))
            prop = propstat.find(dav("prop"))
            if prop is not None and code is not None and 200 <= code < 300:
                for child in prop:
                    response.props[child.tag] = child
        responses.append(response)
    token = root.findtext(SYNC_TOKEN)
    return Multistatus(responses, token.strip() if token and token.strip() else None)


def error_conditions(content: bytes) -> set[str]:
    """The precondition names (Clark notation) of a ``<D:error>`` body; empty if none."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError:
        return set()
    return {child.tag for child in root} if root.tag == dav("error") else set()


# --- URLs --------------------------------------------------------------------------------------


def safe_url(url: str | httpx.URL) -> str:
    """``url`` without userinfo, query or fragment: fit for error messages and logs."""
    parts = urlsplit(str(url))
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def canonical_path(base: str, href: str) -> str:
    """The absolute path of ``href`` (resolved against ``base``), with canonical %-escapes."""
    path = urlsplit(urljoin(base, href)).path or "/"
    return quote(unquote(path), safe=_PATH_SAFE)


# --- HTTP --------------------------------------------------------------------------------------


def raise_for_status(
    response: httpx.Response,
    what: str,
    *,
    on_missing: type[ProviderError] = ProviderUnreachable,
    on_forbidden: type[ProviderError] = AuthRejected,
) -> None:
    """Map a non-2xx answer to the adapter error tree: the shared statuses (``providers.http``;
    403 and 503 with Retry-After are throttling), then 403 -> ``on_forbidden``, 404 / 410 ->
    ``on_missing``, anything else -> ProviderUnreachable."""
    code = response.status_code
    if 200 <= code < 300:
        return
    where = f"{what}: {response.request.method} {safe_url(response.request.url)} -> HTTP {code}"
    shared = shared_status_error(response, where, SERVICE, throttled_with_retry_after=(403, 503))
    if shared is not None:
        raise shared
    if code == 403:
        raise on_forbidden(f"{where} (access forbidden)")
    if code in (404, 410):
        raise on_missing(f"{where} (not found)")
    raise ProviderUnreachable(f"{where} (unexpected answer)")


class DavClient:
    """PROPFIND / REPORT over an ``httpx.Client`` (which carries auth, timeouts, transport).

    ``on_missing`` / ``on_forbidden``: what a 404-410 / 403 on the requested URL means.
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        on_missing: type[ProviderError] = ProviderUnreachable,
        on_forbidden: type[ProviderError] = AuthRejected,
    ) -> None:
        self.client = client
        self.on_missing = on_missing
        self.on_forbidden = on_forbidden

    def scoped(
        self,
        *,
        on_missing: type[ProviderError] | None = None,
        on_forbidden: type[ProviderError] | None = None,
    ) -> DavClient:
        """The same connection with another meaning for 403 / 404."""
        return DavClient(
            self.client,
            on_missing=on_missing or self.on_missing,
            on_forbidden=on_forbidden or self.on_forbidden,
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        depth: str | None = None,
        follow_redirects: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """``body`` is XML unless ``headers`` name another Content-Type."""
        headers = dict(headers or {})
        if depth is not None:
            headers["Depth"] = depth
        if body is not None:
            headers.setdefault("Content-Type", 'application/xml; charset="utf-8"')
        with transport_errors(f"{method} {safe_url(url)}", SERVICE):
            return self.client.request(
                method, url, content=body, headers=headers, follow_redirects=follow_redirects
            )

    def check(self, response: httpx.Response, what: str) -> None:
        raise_for_status(response, what, on_missing=self.on_missing, on_forbidden=self.on_forbidden)

    def multistatus(self, response: httpx.Response, what: str) -> Multistatus:
        self.check(response, what)
        try:
            return parse_multistatus(response.content)
        except ValueError as exc:
            raise ProviderUnreachable(
                f"{what}: {response.request.method} {safe_url(response.request.url)} did not "
                f"answer with a WebDAV multistatus ({exc})"
            ) from None

    def propfind(self, url: str, props: Sequence[str], *, depth: str, what: str) -> Multistatus:
        response = self.request("PROPFIND", url, body=propfind_body(props), depth=depth)
        return self.multistatus(response, what)

    def report(self, url: str, body: bytes, *, depth: str, what: str) -> Multistatus:
        return self.multistatus(self.request("REPORT", url, body=body, depth=depth), what)


def first_href(responses: list[DavResponse], prop: str, base: str) -> str | None:
    """The first href inside ``prop`` of any response, as an absolute URL."""
    for response in responses:
        hrefs = response.hrefs(prop)
        if hrefs:
            return urljoin(base, hrefs[0])
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443}
# iCloud's documented partition hosts (pNN-caldav.icloud.com), which discovery at
# caldav.icloud.com redirects to and which later requests must use.
_ICLOUD = "caldav.icloud.com"
_ICLOUD_PARTITION = re.compile(r"p[0-9]{1,3}-caldav\.icloud\.com")


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, ports made explicit; None for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return None
    return parts.scheme, parts.hostname.lower(), port


def within_origin(configured: str, target: str) -> bool:
    """Whether calsync may send a request (with the account's credentials) to ``target`` for
    a provider configured at ``configured``: the same scheme, host and port, or, for iCloud,
    one of its https partition hosts. Links and redirects to anywhere else are refused, so a
    calendar server can never send calsync, with the user's password, to another server (a
    port of localhost, an address on the private network)."""
    home, there = origin(configured), origin(target)
    if home is None or there is None:
        return False
    if there == home:
        return True
    scheme, host, port = there
    return (
        home == ("https", _ICLOUD, 443)
        and (scheme, port) == ("https", 443)
        and _ICLOUD_PARTITION.fullmatch(host) is not None
    )
