"""``calsync serve --demo``: the whole product working offline, within a minute.

A local Radicale (``radicale.py``) with a sample account and realistic events (``events.py``)
is offered as the "Demo CalDAV" provider; a demo tenant, schedule, API key, connection and a few
sessions are created through the normal service calls (``seed.py``). All of it lives under
``<data dir>/demo/`` and is reused on restart. Radicale stops when serve stops.

Use: ``with demo.caldav_running(settings) as caldav:`` build the runtime with
``extra_providers=[demo.demo_provider(caldav)]``, migrate, then ``demo.seed(rt, caldav, today)``.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from types import FrameType

import httpx

from calsync.demo.events import BERLIN, write_calendar
from calsync.demo.radicale import DemoCalDav, DemoUnavailable, start_radicale
from calsync.demo.seed import DEMO_TENANT, DemoAccess, banner, demo_provider, seed
from calsync.settings import Settings

__all__ = [
    "DEMO_TENANT",
    "DemoAccess",
    "DemoCalDav",
    "DemoUnavailable",
    "banner",
    "caldav_running",
    "demo_provider",
    "seed",
    "today",
]


def today() -> date:
    """The demo's "today": the date in the demo schedule's time zone."""
    return datetime.now(BERLIN).date()


@contextmanager
def caldav_running(settings: Settings) -> Iterator[DemoCalDav]:
    """Radicale with the demo calendar written for the weeks around today; stopped on exit.

    While it runs, SIGTERM exits through Python (SystemExit) rather than killing the process
    outright, so Radicale is stopped even when serve is terminated.
    Raises DemoUnavailable when Radicale is missing or does not start.
    """
    caldav = start_radicale(settings.data_dir.resolve() / "demo")
    previous = _exit_on_sigterm()
    try:
        try:
            write_calendar(caldav.url, caldav.email, caldav.password, today())
        except httpx.HTTPError as exc:
            raise DemoUnavailable(f"cannot write the demo calendar into Radicale: {exc}") from exc
        yield caldav
    finally:
        caldav.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm() -> signal.Handlers | None:
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None

    def handler(signum: int, _frame: FrameType | None) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    return signal.SIG_DFL
