"""Start real CalDAV servers (Radicale, Xandikos) on loopback ports, and seed them over HTTP.

Plain helpers, no pytest fixtures (those live in ``tests/peers/fixtures.py``). Each server is a
subprocess bound to 127.0.0.1 on a free port (Xandikos binds port 0 itself; Radicale refuses
port 0, so we pick one and retry on a clash); its output goes to ``<root>/server.log``.

* Radicale: htpasswd auth with ``plain`` encryption (Radicale 3.9 supports plain, md5, sha256,
  sha512 without extra packages; bcrypt/argon2 need modules that are not installed), rights
  ``owner_only``, multifilesystem storage under ``root``. Principal ``/<user>/`` which is also
  the calendar home; no calendars exist until created.
* Xandikos: see ``xandikos_with_auth.py`` (Xandikos's own Basic-auth middleware, ``{SHA}``
  htpasswd entries, multi-user principals ``/<user>/``, home ``/<user>/calendars/``, and a
  default calendar ``calendar`` that is the inbox's schedule-default-calendar-URL).
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote, urljoin

import httpx

_HERE = Path(__file__).resolve().parent
_STARTUP_TIMEOUT = 20.0
_DAV = "{DAV:}"


@dataclass
class DavServer:
    kind: str  # "radicale" | "xandikos"
    base_url: str  # e.g. "http://127.0.0.1:PORT/"
    users: dict[str, str]  # username -> password
    root: Path = field(repr=False, default=Path("."))
    _process: subprocess.Popen[bytes] | None = field(repr=False, default=None)
    _log: IO[bytes] | None = field(repr=False, default=None)

    @property
    def port(self) -> int:
        return int(self.base_url.rstrip("/").rsplit(":", 1)[1])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def log_text(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""


def _spawn(
    kind: str, root: Path, argv: list[str], port_pattern: str, users: dict[str, str]
) -> DavServer:
    log_path = root / "server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=root
    )
    server = DavServer(kind, "", dict(users), root=root, _process=process, _log=log)
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    try:
        port = None
        while port is None:
            match = re.search(port_pattern, server.log_text())
            if match:
                port = int(match.group(1))
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start:\n{server.log_text()[-4000:]}")
            time.sleep(0.05)
        server.base_url = f"http://127.0.0.1:{port}/"
        while True:  # wait until it answers HTTP (any status, 401 included)
            try:
                httpx.request("OPTIONS", server.base_url, timeout=2.0)
                return server
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{kind} is not answering:\n{server.log_text()[-4000:]}"
                    ) from None
                time.sleep(0.05)
    except BaseException:
        server.stop()
        raise


def start_radicale(root: Path, users: dict[str, str]) -> DavServer:
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = root / "users"
    htpasswd.write_text("".join(f"{user}:{password}\n" for user, password in users.items()))
    config = root / "radicale.conf"
    config_text = (
        "[server]\n"
        "hosts = 127.0.0.1:{PORT}\n"
        "delay_on_error = 0\n"
        "[auth]\n"
        "type = htpasswd\n"
        f"htpasswd_filename = {htpasswd}\n"
        "htpasswd_encryption = plain\n"
        "delay = 0\n"
        "[rights]\n"
        "type = owner_only\n"
        "[storage]\n"
        f"filesystem_folder = {root / 'collections'}\n"
        "[web]\n"
        "type = none\n"
        "[logging]\n"
        "level = info\n"
        "mask_passwords = True\n"
    )
    argv = [sys.executable, "-m", "radicale", "--config", str(config)]
    # Radicale refuses port 0: pick a free port, and retry if another process grabs it first.
    for attempt in range(5):
        port = _free_port()
        config.write_text(config_text.replace("{PORT}", str(port)))
        try:
            return _spawn("radicale", root, argv, r"Listening on '?127\.0\.0\.1:(\d+)", users)
        except RuntimeError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_xandikos(root: Path, users: dict[str, str]) -> DavServer:
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = root / "htpasswd"
    lines = []
    for user, password in users.items():
        digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
        lines.append(f"{user}:{{SHA}}{digest}\n")
    htpasswd.write_text("".join(lines))
    argv = [sys.executable, str(_HERE / "xandikos_with_auth.py"), str(root / "data"), str(htpasswd)]
    return _spawn("xandikos", root, argv, r"LISTENING (\d+)", users)


# --- seeding helpers (independent of the adapter under test) ---------------------------------


def _client(user: str, password: str) -> httpx.Client:
    return httpx.Client(auth=(user, password), timeout=10.0, follow_redirects=True)


def _propfind_href(client: httpx.Client, url: str, prop: str) -> str:
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><{prop}/></D:prop></D:propfind>"
    )
    response = client.request(
        "PROPFIND", url, content=body, headers={"Depth": "0", "Content-Type": "application/xml"}
    )
    response.raise_for_status()
    for prop_el in ET.fromstring(response.content).iter(f"{_DAV}prop"):
        for href in prop_el.iter(f"{_DAV}href"):
            if href.text:
                return urljoin(str(response.url), href.text.strip())
    raise RuntimeError(f"no {prop} at {url}")


def calendar_home(server: DavServer, user: str, password: str) -> str:
    """The user's calendar-home-set URL (discovered the CalDAV way)."""
    with _client(user, password) as client:
        principal = _propfind_href(client, server.base_url, "D:current-user-principal")
        return _propfind_href(client, principal, "C:calendar-home-set")


def make_calendar(
    server: DavServer,
    user: str,
    password: str,
    name: str,
    display_name: str,
    *,
    components: Sequence[str] = ("VEVENT",),
) -> str:
    """MKCALENDAR ``<home>/<name>/``; returns the collection URL."""
    url = urljoin(calendar_home(server, user, password), quote(name) + "/")
    comps = "".join(f'<C:comp name="{c}"/>' for c in components)
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:set><D:prop>"
        f"<D:displayname>{_xml_escape(display_name)}</D:displayname>"
        f"<C:supported-calendar-component-set>{comps}</C:supported-calendar-component-set>"
        "</D:prop></D:set></C:mkcalendar>"
    )
    with _client(user, password) as client:
        response = client.request(
            "MKCALENDAR", url, content=body, headers={"Content-Type": "application/xml"}
        )
    if response.status_code not in (200, 201):
        raise RuntimeError(f"MKCALENDAR {url} -> {response.status_code}: {response.text[:500]}")
    return url


def put_event(calendar_url: str, user: str, password: str, filename: str, ical_text: str) -> str:
    """PUT ``<calendar>/<filename>``; returns the new ETag."""
    url = urljoin(calendar_url, quote(filename))
    with _client(user, password) as client:
        response = client.put(
            url, content=ical_text.encode(), headers={"Content-Type": "text/calendar"}
        )
        if response.status_code not in (200, 201, 204):
            raise RuntimeError(f"PUT {url} -> {response.status_code}: {response.text[:500]}")
        etag = response.headers.get("ETag")
        if not etag:
            head = client.head(url)
            head.raise_for_status()
            etag = head.headers["ETag"]
        return str(etag)


def delete_event(calendar_url: str, user: str, password: str, filename: str) -> None:
    delete_collection(urljoin(calendar_url, quote(filename)), user, password)


def delete_collection(url: str, user: str, password: str) -> None:
    """DELETE any resource (a calendar collection included)."""
    with _client(user, password) as client:
        response = client.delete(url)
    if response.status_code not in (200, 204):
        raise RuntimeError(f"DELETE {url} -> {response.status_code}")


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def simple_event(uid: str, summary: str, start: str = "20300101T100000Z") -> str:
    """A minimal one-VEVENT VCALENDAR (``start`` as UTC basic format)."""
    end = start[:9] + f"{(int(start[9:11]) + 1) % 24:02d}" + start[11:]
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync tests//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20250101T000000Z\r\n"
        f"DTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )


def simple_todo(uid: str, summary: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync tests//EN\r\n"
        f"BEGIN:VTODO\r\nUID:{uid}\r\nDTSTAMP:20250101T000000Z\r\nSUMMARY:{summary}\r\n"
        "END:VTODO\r\nEND:VCALENDAR\r\n"
    )
