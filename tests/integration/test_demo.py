"""``calsync serve --demo``: a newcomer sees the whole product working within a minute.

Starts the real command as a subprocess on a free port with a fresh data directory, reads the
API key it prints, and lists the demo schedule's events over HTTP: the weekly stand-up with its
moved and cancelled instances, the all-day events, the call in New York time, and the week of
the next Europe/Berlin DST change (09:30 local on both sides, a different UTC time). A restart
reuses everything (same key, no duplicates); stopping serve stops Radicale.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from calsync.demo.events import next_dst_change, week_start
from calsync.service.access import api_keys
from calsync.store.db import make_engine, make_session_factory
from calsync.store.unit import Tx
from tests.peers.tls import free_port

# Two starts, two stops and the checks take ~10 s on an idle machine; the bound is for hangs.
pytestmark = [pytest.mark.peers, pytest.mark.timeout(120)]

BERLIN = ZoneInfo("Europe/Berlin")
EVENTS = "/bookings/v2/external-calendars/events"
STARTUP_SECONDS = 30.0  # a newcomer sees it working within a minute, with time to spare


@dataclass
class Demo:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")

    def logs(self) -> str:
        return self.output() + self.stderr.read_text(errors="replace")[-4000:]

    def api_key(self) -> str:
        found = re.search(r"API key \(tenant 'demo'\):\s+(csk_\S+)", self.output())
        assert found, self.logs()
        return found.group(1)

    def radicale_pid(self) -> int:
        return int((self.data_dir / "demo" / "radicale.pid").read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def _calsync() -> list[str]:
    executable = Path(sys.executable).with_name("calsync")
    return [str(executable)] if executable.exists() else [sys.executable, "-m", "calsync.cli"]


def start_demo(data_dir: Path, port: int, run: int, *, demo: bool = True, **settings: str) -> Demo:
    """``calsync serve --demo`` (``demo=False``: plain ``calsync serve``) with a clean
    environment plus ``settings`` (``CALSYNC_*`` variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
    env.update(settings, CALSYNC_DATA_DIR=str(data_dir))
    stdout, stderr = data_dir.parent / f"out-{run}.txt", data_dir.parent / f"err-{run}.txt"
    options = ["--demo"] if demo else []
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [*_calsync(), "serve", *options, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    demo = Demo(f"http://127.0.0.1:{port}", data_dir, process, stdout, stderr)
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            if httpx.get(f"{demo.url}/v1/health", timeout=2.0).status_code == 200:
                return demo
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            demo.stop()
            pytest.fail(f"calsync serve did not come up:\n{demo.logs()}")
        time.sleep(0.1)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def started(data_dir: Path) -> Iterator[list[Demo]]:
    """Every demo process the test starts; all are stopped at the end whatever happens."""
    demos: list[Demo] = []
    yield demos
    for demo in demos:
        demo.stop()


def list_events(demo: Demo, key: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    params = {
        "from": start.astimezone(UTC).isoformat(),
        "to": end.astimezone(UTC).isoformat(),
        "fieldsets": "OWN_PI",
        "cursorPaging.limit": "1000",
    }
    response = httpx.get(
        demo.url + EVENTS, params=params, headers={"Authorization": key}, timeout=20.0
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["failedProviderIds"] == []
    return list(body["events"])


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN)


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_coming_weeks(demo: Demo, key: str, today: date) -> list[dict[str, Any]]:
    monday = week_start(today)
    events = list_events(demo, key, local(monday, 0), local(monday + timedelta(weeks=3), 0))
    starts = {(e["title"], e["start"]) for e in events}
    standups = [e for e in events if e["title"].startswith("Team stand-up")]
    # Mondays and Wednesdays for three weeks, one Monday cancelled (EXDATE).
    assert len(standups) == 5, standups
    cancelled = monday + timedelta(weeks=2)
    assert ("Team stand-up", utc_text(local(cancelled, 9, 30))) not in starts
    moved = monday + timedelta(weeks=1, days=2)
    assert ("Team stand-up (moved to 11:00)", utc_text(local(moved, 11))) in starts
    assert ("Team stand-up", utc_text(local(moved, 9, 30))) not in starts
    assert ("Team stand-up", utc_text(local(monday, 9, 30))) in starts

    offsite = monday + timedelta(weeks=1, days=3)
    all_day = [e for e in events if e["allDay"]]
    assert {e["title"] for e in all_day} == {"Team offsite", "Day off"}
    (offsite_event,) = (e for e in all_day if e["title"] == "Team offsite")
    assert offsite_event["start"] == local(offsite, 0).isoformat(timespec="milliseconds")
    assert offsite_event["end"] == local(offsite + timedelta(2), 0).isoformat(
        timespec="milliseconds"
    )

    new_york = ZoneInfo("America/New_York")
    thursday = monday + timedelta(days=3)
    call = datetime(thursday.year, thursday.month, thursday.day, 10, tzinfo=new_york)
    assert ("Call with the New York office", utc_text(call)) in starts
    titles = {e["title"] for e in events}
    assert {"Flight BER to JFK", "Customer call (London time)"} <= titles
    assert not any("timesheet" in t for t in titles)  # transparent: not busy
    return events


def check_dst_week(demo: Demo, key: str, today: date) -> None:
    change = next_dst_change(today)
    events = list_events(
        demo, key, local(change - timedelta(7), 0), local(change + timedelta(7), 0)
    )
    standups = [e for e in events if e["title"] == "Team stand-up"]
    before = [e for e in standups if e["start"] < utc_text(local(change, 0))]
    after = [e for e in standups if e["start"] > utc_text(local(change, 0))]
    assert before and after, standups
    for event in standups:  # 09:30 Berlin time on both sides of the change
        moment = _instant(event["start"]).astimezone(BERLIN)
        assert (moment.hour, moment.minute) == (9, 30), event
    offsets = {_instant(e["start"]).astimezone(BERLIN).utcoffset() for e in standups}
    assert len(offsets) == 2, standups
    (maintenance,) = (e for e in events if e["title"].startswith("Overnight maintenance"))
    start = local(change - timedelta(days=1), 22)
    end = local(change, 6)
    assert maintenance["start"] == utc_text(start)
    assert maintenance["end"] == utc_text(end)
    lasted = _instant(maintenance["end"]) - _instant(maintenance["start"])
    assert lasted in (timedelta(hours=7), timedelta(hours=9))  # spring / autumn


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def count_rows(data_dir: Path) -> dict[str, int]:
    engine = make_engine(f"sqlite:///{data_dir / 'calsync.db'}")
    try:
        with make_session_factory(engine)() as session:
            from sqlalchemy import func, select

            from calsync.store.models import Connection, PlatformSession, Schedule

            return {
                "keys": len(api_keys.list_keys(Tx(session), tenant_id="demo")),
                "schedules": session.scalar(select(func.count()).select_from(Schedule)) or 0,
                "connections": session.scalar(select(func.count()).select_from(Connection)) or 0,
                "sessions": session.scalar(select(func.count()).select_from(PlatformSession)) or 0,
            }
    finally:
        engine.dispose()


def assert_radicale_gone(pid: int) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"Radicale (pid {pid}) is still running after serve stopped")
        time.sleep(0.05)


def test_demo_shows_the_product_and_survives_a_restart(data_dir: Path, started: list[Demo]) -> None:
    today = datetime.now(BERLIN).date()
    port = free_port()
    first = start_demo(data_dir, port, 1)
    started.append(first)
    output = first.output()
    assert f"{first.url}/dashboard/signin/" in output
    assert "curl -H 'Authorization: csk_" in output
    key = first.api_key()
    events = check_coming_weeks(first, key, today)
    check_dst_week(first, key, today)
    rows = count_rows(data_dir)
    pid = first.radicale_pid()
    first.stop()
    assert_radicale_gone(pid)
    assert not (data_dir / "demo" / "radicale.pid").exists()

    second = start_demo(data_dir, port, 2)
    started.append(second)
    assert second.api_key() == key
    again = check_coming_weeks(second, key, today)
    # The same events, once each (calendarName aside: a List Events answered live, before the
    # first sync has stored the calendar, leaves it empty).
    assert _without_calendar_name(again) == _without_calendar_name(events)
    assert (
        count_rows(data_dir)
        == rows
        == {
            "keys": 1,
            "schedules": 1,
            "connections": 1,
            "sessions": 3,
        }
    )
    pid = second.radicale_pid()
    second.stop()
    assert_radicale_gone(pid)


def _without_calendar_name(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "calendarName"} for e in events]


def test_plain_serve_starts_without_demo_data(data_dir: Path, started: list[Demo]) -> None:
    """Without --demo: no CalDAV server, no demo tenant, schedule or key; the admin named by
    CALSYNC_ADMIN_TENANT gets a working one-time sign-in link."""
    port = free_port()
    plain = start_demo(data_dir, port, 1, demo=False, CALSYNC_ADMIN_TENANT="acme")
    started.append(plain)
    output = plain.output()
    assert "API key" not in output and "demo" not in output.lower(), output
    found = re.search(r"Dashboard sign-in for the admin of 'acme': (\S+)", output)
    assert found, plain.logs()
    link = found.group(1)
    assert link.startswith(f"{plain.url}/dashboard/signin/")
    page = httpx.get(link, timeout=10.0)
    assert page.status_code == 200 and "Continue to the dashboard" in page.text
    assert not (data_dir / "demo").exists()
    engine = make_engine(f"sqlite:///{data_dir / 'calsync.db'}")
    try:
        with engine.connect() as db:
            counts = {
                table: db.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
                for table in ("schedules", "connections", "api_keys", "sessions")
            }
    finally:
        engine.dispose()
    assert counts == {"schedules": 0, "connections": 0, "api_keys": 0, "sessions": 0}
