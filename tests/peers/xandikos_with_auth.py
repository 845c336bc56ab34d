"""Run Xandikos (multi-user mode) with HTTP Basic auth on plain HTTP, for tests only.

Xandikos 0.4.10 ships its own Basic-auth middleware and htpasswd reader, but its CLI only
allows ``--htpasswd`` together with ``--autocert`` (self-signed HTTPS). This launcher wires
the very same pieces (``MultiUserXandikosApp`` + ``basic_auth_middleware``) into an aiohttp
app served on plain HTTP on a loopback socket, so wrong passwords get Xandikos's real 401
and every user gets their own principal ``/<user>/`` (home ``/<user>/calendars/``).

Usage: python xandikos_with_auth.py DATA_DIR HTPASSWD_FILE
Binds 127.0.0.1 on a free port and prints ``LISTENING <port>`` once ready to accept.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from aiohttp import web
from xandikos.htpasswd import HtpasswdFile
from xandikos.multi_user import MultiUserFilesystemBackend, MultiUserXandikosApp
from xandikos.web import WELLKNOWN_DAV_PATHS, RedirectDavHandler, basic_auth_middleware
from xandikos.webdav import ForbiddenError


def build_app(directory: str, htpasswd_path: str) -> web.Application:
    backend = MultiUserFilesystemBackend(
        os.path.abspath(directory),
        principal_path_prefix="/",
        principal_path_suffix="/",
        create_defaults=True,  # a "calendar" + inbox with schedule-default-calendar-URL
    )
    dav = MultiUserXandikosApp(
        backend,
        current_user_principal="/%(REMOTE_USER)s/",
        state_dir=os.path.join(os.path.abspath(directory), ".state"),
    )

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await dav.aiohttp_handler(request, "/")
        except ForbiddenError as exc:
            # MultiUserXandikosApp.check_access raises outside xandikos's own error mapping,
            # which would surface as a 500 for a user touching someone else's principal.
            return web.Response(status=403, text=f"{exc.message}\n")
        return response

    app = web.Application(middlewares=[basic_auth_middleware(HtpasswdFile(htpasswd_path))])
    for path in WELLKNOWN_DAV_PATHS:
        app.router.add_route("*", path, RedirectDavHandler("/").__call__)
    app.router.add_route("*", "/{path_info:.*}", handler)
    return app


def main(argv: list[str]) -> None:
    directory, htpasswd_path = argv
    os.makedirs(directory, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app = build_app(directory, htpasswd_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main(sys.argv[1:])
