"""pytest fixtures that run real CalDAV servers once per session.

Import them into a conftest (``from tests.peers.fixtures import dav_server, ...`` or
``pytest_plugins = ["tests.peers.fixtures"]`` from the root conftest):

* ``radicale_server`` / ``xandikos_server``: one server of that kind for the whole session.
* ``dav_server``: parametrised over both kinds (``[radicale]`` / ``[xandikos]`` test ids).

Every server knows the users of ``DAV_USERS``. Tests must not depend on what other tests
created: make calendars with unique names (``unique_name()``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from .dav_servers import DavServer, start_radicale, start_xandikos

DAV_USERS: dict[str, str] = {
    "alice": "alice-pw-1",
    "bob": "bob-pw-2",
    "carol": "carol-pw-3",
    "dave": "dave-pw-4",
    # calsync logs in with the account e-mail, so end-to-end tests use e-mail-shaped users.
    "ada@example.com": "ada-app-pw-5",
    "grace@example.com": "grace-app-pw-6",
}

_STARTERS = {"radicale": start_radicale, "xandikos": start_xandikos}


def unique_name(prefix: str = "cal") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _run(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    server = _STARTERS[kind](tmp_path_factory.mktemp(kind), DAV_USERS)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def radicale_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    yield from _run("radicale", tmp_path_factory)


@pytest.fixture(scope="session")
def xandikos_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    yield from _run("xandikos", tmp_path_factory)


@pytest.fixture(scope="session", params=["radicale", "xandikos"])
def dav_server(request: pytest.FixtureRequest) -> DavServer:
    server: DavServer = request.getfixturevalue(f"{request.param}_server")
    return server
