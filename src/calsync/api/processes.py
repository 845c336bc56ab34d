"""``calsync serve --processes N``: N server processes behind one port, connections dealt in turn.

The parent process owns the listening socket. It accepts every connection and passes its file
descriptor (``SCM_RIGHTS`` over a Unix socket pair) to the next live server process, the way
Node's cluster module does; it also replaces a process that dies and stops them all on SIGTERM
or SIGINT. Each server process is a ``uvicorn.Server`` that listens on nothing itself and
serves the connections it is handed.

Why not uvicorn's own ``--workers``: there every process accepts from the shared socket, and
whichever wakes first takes a whole burst. Four keep-alive connections opened together all
went to one process, so the second one sat idle; dealt in turn, List Events' p50 at 4 in
flight halved (bench/RESULTS.md, fourth round).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import selectors
import shutil
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client.multiprocess import mark_process_dead

from calsync.api.factory import FACTORY, NO_WORKER_ENV
from calsync.metrics import MULTIPROCESS_DIR_ENV

log = logging.getLogger("calsync.serve")
# Connections taken from the listening socket per wake-up, before checking on the processes.
ACCEPT_BURST = 64
# A process that died is started again at most this often.
RESTART_SECONDS = 1.0
STOP_SECONDS = 30.0


def serve_processes(processes: int, *, worker: bool, options: dict[str, Any]) -> None:
    """Serve on ``options``' host and port with ``processes`` server processes until SIGTERM
    or SIGINT; each builds its own runtime from the environment. Their metrics go to one
    directory (``PROMETHEUS_MULTIPROC_DIR``: a fresh temporary one unless it is set), so
    ``/metrics`` of any process reports all of them."""
    os.environ[NO_WORKER_ENV] = "0" if worker else "1"
    listener = listening_socket(str(options["host"]), int(options["port"]))
    child_options = {k: v for k, v in options.items() if k not in ("host", "port")}
    ours = MULTIPROCESS_DIR_ENV not in os.environ
    if ours:
        os.environ[MULTIPROCESS_DIR_ENV] = tempfile.mkdtemp(prefix="calsync-metrics-")
    try:
        Supervisor(processes, listener, child_options).run()
    finally:
        if ours:
            shutil.rmtree(os.environ.pop(MULTIPROCESS_DIR_ENV), ignore_errors=True)


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@dataclass
class _Slot:
    process: BaseProcess | None = None
    channel: socket.socket | None = None
    started_at: float = 0.0
    handed: int = 0  # connections dealt to it


class Supervisor:
    """Starts the server processes, deals them the accepted connections, replaces the dead."""

    def __init__(self, processes: int, listener: socket.socket, options: dict[str, Any]) -> None:
        self.listener = listener
        self.options = options
        self.slots = [_Slot() for _ in range(processes)]
        self.turn = 0
        self.stopping = threading.Event()
        self.context = multiprocessing.get_context("spawn")

    def run(self) -> None:
        host, port = self.listener.getsockname()[:2]
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(len(self.slots)):
                self._start(index)
            log.info("serving on %s:%s with %d processes", host, port, len(self.slots))
            with selectors.DefaultSelector() as selector:
                selector.register(self.listener, selectors.EVENT_READ)
                while not self.stopping.is_set():
                    if selector.select(timeout=0.5):
                        self._deal()
                    self._replace_dead()
        finally:
            self.listener.close()
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopping.set()

    def _start(self, index: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        process = self.context.Process(
            target=serve_handed_connections,
            args=(theirs, self.options),
            name=f"calsync-serve-{index}",
        )
        process.start()
        theirs.close()
        ours.setblocking(False)
        self.slots[index] = _Slot(process, ours, time.monotonic())

    def _deal(self) -> None:
        for _ in range(ACCEPT_BURST):
            try:
                connection, _address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: leave the rest queued, and do not spin on it
                log.warning("accept failed: %s", exc)
                time.sleep(0.1)
                return
            with connection:
                self._hand(connection)

    def _hand(self, connection: socket.socket) -> None:
        """Pass ``connection`` to the next process in turn that takes it (a process whose
        channel is full or closed is skipped); if none does, the connection is closed."""
        for _ in range(len(self.slots)):
            slot = self.slots[self.turn % len(self.slots)]
            self.turn += 1
            if slot.channel is None:
                continue
            try:
                socket.send_fds(slot.channel, [b"c"], [connection.fileno()])
            except OSError:  # full (a stuck process) or gone: try the next
                continue
            slot.handed += 1
            return
        log.warning("no server process could take a connection; it was closed")

    def _replace_dead(self) -> None:
        now = time.monotonic()
        for index, slot in enumerate(self.slots):
            if slot.process is None or slot.process.is_alive():
                continue
            if now - slot.started_at < RESTART_SECONDS:
                continue
            log.warning(
                "server process %s exited with %s after %d connections; starting another",
                slot.process.pid,
                slot.process.exitcode,
                slot.handed,
            )
            if slot.channel is not None:
                slot.channel.close()
            if slot.process.pid is not None:  # its scrape-time gauges no longer count
                mark_process_dead(slot.process.pid)  # type: ignore[no-untyped-call]
            self._start(index)

    def _stop_all(self) -> None:
        live = [s.process for s in self.slots if s.process is not None and s.process.is_alive()]
        for process in live:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in live:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for slot in self.slots:
            if slot.channel is not None:
                slot.channel.close()


def serve_handed_connections(channel: socket.socket, options: dict[str, Any]) -> None:
    """A server process: the application from the environment, serving what the parent hands
    over ``channel``."""
    config = uvicorn.Config(FACTORY, factory=True, **options)
    HandedServer(config, channel).run()


class HandedServer(uvicorn.Server):
    """A ``uvicorn.Server`` that listens on nothing: it serves connections whose descriptors
    arrive on ``channel``; the channel closing (the parent gone) stops it."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel
        self.channel.setblocking(False)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.handing: set[asyncio.Task[None]] = set()  # held, so none is collected mid-way

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        if self.should_exit:
            return
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.channel.fileno(), self._take)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.loop is not None:
            self.loop.remove_reader(self.channel.fileno())
        await super().shutdown(sockets)
        self.channel.close()

    def _take(self) -> None:
        loop = self.loop
        assert loop is not None  # set by startup, which registers this reader
        try:
            data, fds, _flags, _address = socket.recv_fds(self.channel, 1024, ACCEPT_BURST)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        if not data:  # the parent has gone: stop like on SIGTERM
            loop.remove_reader(self.channel.fileno())
            self.should_exit = True
            return
        for fd in fds:
            connection = socket.socket(fileno=fd)
            connection.setblocking(False)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._serve_connection(loop, connection))
            self.handing.add(task)
            task.add_done_callback(self.handing.discard)

    async def _serve_connection(
        self, loop: asyncio.AbstractEventLoop, connection: socket.socket
    ) -> None:
        try:
            await loop.connect_accepted_socket(self._protocol, connection, ssl=self.config.ssl)
        except (TimeoutError, OSError):  # the client left mid-handshake (SSLError is an OSError)
            connection.close()

    def _protocol(self) -> asyncio.Protocol:
        # What uvicorn's own startup builds for each connection of its listening sockets.
        protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
        return protocol
