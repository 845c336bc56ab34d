"""The CalDAV server fixtures (``dav_server``, ``radicale_server``, ``xandikos_server``).

They live in ``tests/peers/fixtures.py``, which the root conftest registers through
``pytest_plugins``. Registering the same module here is a no-op then, and keeps these tests
runnable on their own (e.g. ``--confcutdir=tests/providers``) without defining the session
fixtures twice (which would start every server twice).
"""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("tests.peers.fixtures")
