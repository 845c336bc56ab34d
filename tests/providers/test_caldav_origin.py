"""A calendar server cannot send calsync, with the user's password, anywhere (red-team finding
1): hrefs and redirects are followed only within the configured origin (scheme, host and
port; iCloud's partition hosts by an explicit rule), and provider errors say what happened in
plain words that do not tell open ports from closed ones."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from calsync.providers.base import Credentials, ProviderError
from calsync.providers.caldav.adapter import CalDavProvider
from calsync.providers.caldav.dav import within_origin

MULTISTATUS = (
    '<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/</D:href>'
    "<D:propstat><D:prop><D:current-user-principal><D:href>{href}</D:href>"
    "</D:current-user-principal></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
    "</D:response></D:multistatus>"
)


@dataclass
class Listener:
    """A loopback HTTP server that records what reaches it."""

    answer: tuple[int, dict[str, str], str] = (404, {}, "")
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    port: int = 0


def _serve(listener: Listener) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _any(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            listener.seen.append((self.command, self.path, self.headers.get("Authorization")))
            status, headers, body = listener.answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            data = body.encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_PROPFIND = do_GET = do_REPORT = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    listener.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def two_ports() -> Iterator[tuple[Listener, Listener]]:
    """The configured server, and another port of the same host that must see nothing."""
    hostile, bystander = Listener(), Listener()
    servers = [_serve(hostile), _serve(bystander)]
    yield hostile, bystander
    for server in servers:
        server.shutdown()
        server.server_close()


def _connect(port: int) -> Exception:
    adapter = CalDavProvider(f"http://127.0.0.1:{port}/", timeout=2)
    with pytest.raises(ProviderError) as raised:
        adapter.verify(Credentials("ada", "secret-password"))
    return raised.value


def test_a_principal_on_another_port_gets_nothing(two_ports: tuple[Listener, Listener]) -> None:
    hostile, bystander = two_ports
    other = f"http://127.0.0.1:{bystander.port}/p/"
    hostile.answer = (207, {"Content-Type": "application/xml"}, MULTISTATUS.format(href=other))
    error = _connect(hostile.port)
    assert bystander.seen == []  # no request, no credentials
    assert f"127.0.0.1:{bystander.port}" in str(error) and "nothing was sent" in str(error)
    assert "secret-password" not in str(error)


def test_a_redirect_to_another_port_is_not_followed(two_ports: tuple[Listener, Listener]) -> None:
    hostile, bystander = two_ports
    hostile.answer = (301, {"Location": f"http://127.0.0.1:{bystander.port}/dav/"}, "")
    _connect(hostile.port)
    assert bystander.seen == []


def test_a_redirect_within_the_server_is_followed(two_ports: tuple[Listener, Listener]) -> None:
    """The control: the same server's own paths work as before."""
    hostile, _ = two_ports
    hostile.answer = (301, {"Location": "/elsewhere/"}, "")
    _connect(hostile.port)
    paths = [path for _, path, _ in hostile.seen]
    assert "/elsewhere/" in paths
    assert all(auth is not None for _, _, auth in hostile.seen)  # its own: with credentials


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("https://caldav.example.org/dav/ada/", True),
        ("https://caldav.example.org:443/x", True),  # the default port, written out
        ("http://caldav.example.org/dav/", False),  # another scheme
        ("https://caldav.example.org:8443/dav/", False),  # another port
        ("https://evil.example.org/dav/", False),  # same registrable domain is not enough
        ("https://127.0.0.1/", False),
        ("https://10.0.0.5/", False),
        ("https://[::1]/", False),
        ("ftp://caldav.example.org/", False),
    ],
)
def test_the_origin_rule(target: str, allowed: bool) -> None:
    assert within_origin("https://caldav.example.org/", target) is allowed


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("https://p42-caldav.icloud.com/123/principal/", True),
        ("https://p07-caldav.icloud.com:443/123/calendars/", True),
        ("https://caldav.icloud.com/.well-known/caldav", True),
        ("http://p42-caldav.icloud.com/", False),
        ("https://p42-caldav.icloud.com:8443/", False),
        ("https://p42-caldav.icloud.com.evil.example/", False),
        ("https://evil-caldav.icloud.com/", False),
        ("https://p42-caldav.icloud.com@evil.example/", False),
    ],
)
def test_icloud_partition_hosts_by_an_explicit_rule(target: str, allowed: bool) -> None:
    assert within_origin("https://caldav.icloud.com/", target) is allowed
    # ... and only for iCloud: another provider may not be led to iCloud's hosts.
    assert not within_origin("https://caldav.example.org/", target) or not allowed


def test_transport_failures_do_not_tell_open_ports_from_closed(
    two_ports: tuple[Listener, Listener],
) -> None:
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connection refused
    refused = str(_connect(closed_port))
    assert "could not be reached" in refused
    for name in ("ConnectError", "RemoteProtocolError", "ReadError", "Error:"):
        assert name not in refused
