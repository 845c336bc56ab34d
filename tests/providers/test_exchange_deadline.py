"""A server that drips its answer a byte at a time cannot hold a request past its deadline
(red-team finding 7: a 265-byte answer dripped over 265 s, then the sync succeeded)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from calsync.providers.base import AccountRef, Credentials, ProviderError
from calsync.providers.caldav.adapter import CalDavProvider
from calsync.providers.http import EXCHANGE_DEADLINE_FACTOR, new_client

ANSWER = (
    b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Length: 60\r\n\r\n"
    + b'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"/>'.ljust(60)
)


@pytest.fixture
def dripping() -> Iterator[tuple[str, list[float]]]:
    """A loopback server that sends its answer one byte every 0.1 s (each read gets a byte
    well within any read timeout); yields its URL and when each connection closed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    closed: list[float] = []
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                for byte in ANSWER:
                    if stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(0.1)
            except OSError:
                pass
            finally:
                closed.append(time.monotonic())

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/", closed
    stop.set()
    listener.close()


def test_a_dripping_answer_is_cut_at_the_deadline(dripping: tuple[str, list[float]]) -> None:
    url, _ = dripping
    timeout = 0.5  # per read; the whole exchange gets EXCHANGE_DEADLINE_FACTOR times that
    started = time.monotonic()
    with (
        new_client(transport=None, timeout=timeout, headers={}) as client,
        pytest.raises(Exception) as raised,
    ):
        client.request("PROPFIND", url)
    took = time.monotonic() - started
    assert took < timeout * EXCHANGE_DEADLINE_FACTOR + 1.0  # not the ~15 s the drip takes
    assert "timeout" in type(raised.value).__name__.lower()


def test_a_caldav_read_of_a_dripping_server_fails_in_plain_words(
    dripping: tuple[str, list[float]],
) -> None:
    url, _ = dripping
    adapter = CalDavProvider(url, timeout=0.5)
    account = AccountRef(
        email="ada@example.org",
        credentials=Credentials("ada", "pw"),
        state={"calendar_home_url": url + "home/"},
    )
    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        adapter.change_check.changed_calendars(account, {"work": "sync:1"})
    assert time.monotonic() - started < 0.5 * EXCHANGE_DEADLINE_FACTOR + 1.0
    assert "timed out" in str(raised.value) and "Error" not in str(raised.value)


def test_a_prompt_server_is_not_affected() -> None:
    """The control: a whole answer in time comes through the same transport."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(ANSWER)

    threading.Thread(target=answer, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    with new_client(transport=None, timeout=0.5, headers={}) as client:
        assert client.request("PROPFIND", url).status_code == 207
    listener.close()
