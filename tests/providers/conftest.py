"""Real CalDAV servers for the provider tests (fixtures defined in ``tests/peers/fixtures.py``)."""

try:
    from tests.peers.fixtures import dav_server, radicale_server, xandikos_server
except ModuleNotFoundError:  # ``tests`` itself not importable: pytest put tests/ on sys.path
    from peers.fixtures import dav_server, radicale_server, xandikos_server  # type: ignore[no-redef]

__all__ = ["dav_server", "radicale_server", "xandikos_server"]
