"""A local webhook receiver for tests: records every request, and answers as told (a status,
a delay, a redirect, a reset connection)."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import standardwebhooks


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def message(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    # What the next requests get: a status ("reset" drops the connection), used in order,
    # then ``default``.
    answers: list[int | str] = field(default_factory=list)
    default: int | str = 204
    delay: float = 0.0
    location: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> int | str:
        with self.lock:
            return self.answers.pop(0) if self.answers else self.default

    def of_type(self, event_type: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.message["type"] == event_type]

    def wait_for(self, event_type: str, count: int = 1, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of_type(event_type)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"{count} {event_type} message(s) never arrived; got "
            f"{[r.message['type'] for r in self.received]}"
        )


def verify(secret: str, item: Received) -> dict[str, Any]:
    """What a receiver does: check the signature with the standardwebhooks library."""
    verified: dict[str, Any] = standardwebhooks.Webhook(secret).verify(item.body, item.headers)
    return verified


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            answer = receiver.next_answer()
            with receiver.lock:
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(headers, body))
            if receiver.delay:
                time.sleep(receiver.delay)
            if answer == "reset":
                linger = struct.pack("ii", 1, 0)  # RST instead of FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.connection.close()
                return
            self.send_response(int(answer))
            if receiver.location:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    receiver = Receiver(url=f"http://127.0.0.1:{httpd.server_address[1]}/hooks/calsync")
    httpd.RequestHandlerClass = _handler(receiver)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        httpd.shutdown()
        httpd.server_close()
