"""The official JavaScript client drives all nine methods against a real calsync server.

Starts ``calsync serve`` over HTTPS (self-signed certificate for 127.0.0.1, trusted by Node via
``NODE_EXTRA_CA_CERTS``) with a Radicale CalDAV provider, seeds two calendars, and runs
``tests/js/all_methods.mjs`` (``@wix/sdk`` + ``@wix/auto_sdk_bookings_external-calendars``,
versions pinned in ``tests/js/package-lock.json``). The script prints one JSON object with every
result and every error exactly as the client reports them; this test asserts on it.
What the client sends and how it reads responses is written down in ``tests/js/WIRE-NOTES.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.peers.tls import free_port, write_self_signed_cert

pytestmark = pytest.mark.js

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "all_methods.mjs"
BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC
PAGE_LIMIT = 2
PROVIDER_NAME = "Radicale (test)"
DAV_USER, DAV_PASSWORD = "ada@example.com", "ada-caldav-pw-7"
# Seconds all_methods.mjs may retry the paged List Events walk until every seeded event shows up.
# 0 = the first walk must already be complete (the API promises an up-to-date list).
LIST_EVENTS_SETTLE_SECONDS = 0
ACTIVE_STATUSES = {"CONNECTED", "SYNC_IN_PROGRESS", "SYNCED"}
SYNC_TO_CALENDAR_VALUES = {
    "UNDEFINED",
    "NOT_SUPPORTED",
    "PRIMARY_CALENDAR_ONLY",
    "SPECIFIC_CALENDAR",
    "DEDICATED_CALENDAR",
}
STARTUP_TIMEOUT = 60.0

VTIMEZONE_BERLIN = (
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"
    "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n"
    "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
    "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n"
    "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
    "END:VTIMEZONE\r\n"
)


# --- helpers -----------------------------------------------------------------------------------


def start_tls_server(
    port: int, cert: Path, key: Path, env: dict[str, str], log: Any
) -> subprocess.Popen[bytes]:
    """``calsync serve`` over TLS on 127.0.0.1:``port``, its output going to ``log``."""
    command = [*_calsync_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(
        [*command, "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _calsync_command() -> list[str]:
    executable = Path(sys.executable).with_name("calsync")
    if executable.exists():
        return [str(executable)]
    return [sys.executable, "-m", "calsync.cli"]


def _unavailable(reason: str) -> None:
    """CI (CALSYNC_REQUIRE_NODE=1) must run this test; elsewhere a missing tool skips it."""
    if os.environ.get("CALSYNC_REQUIRE_NODE") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def node_harness() -> Path:
    """Skip without node/npm; ``npm ci`` in tests/js when the pinned packages are missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are required to drive the official JavaScript client")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 18:
        _unavailable(
            f"the official JavaScript client needs Node >= 18 (global fetch), found {version}"
        )
    installed = JS_DIR / "node_modules" / "@wix"
    if not (
        (installed / "sdk").is_dir()
        and (installed / "auto_sdk_bookings_external-calendars").is_dir()
    ):
        completed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if completed.returncode != 0:
            pytest.fail(f"npm ci failed in {JS_DIR}:\n{completed.stdout}\n{completed.stderr}")
    return Path(node)


@dataclass
class CalsyncServer:
    base: str  # "127.0.0.1:PORT", as the JS client wants it
    url: str  # "https://127.0.0.1:PORT"
    cert: Path
    provider_id: str  # the CalDAV provider pointing at the Radicale fixture
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def cli(self, *args: str) -> str:
        completed = subprocess.run(
            [*_calsync_command(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if completed.returncode != 0:
            pytest.fail(
                f"calsync {' '.join(args)} exited {completed.returncode}:\n"
                f"{completed.stdout}\n{completed.stderr}"
            )
        return completed.stdout

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Radicale of its own whose user is named by an e-mail address.

    Connect By Credentials validates ``email`` as EMAIL and calsync logs in to CalDAV with it,
    so the session-wide servers of ``tests.peers.fixtures`` (users ``alice``, ``bob``...) do not
    fit. Returns a ``DavServer`` (``.base_url``, ``.users``).
    """
    from tests.peers.dav_servers import start_radicale

    server = start_radicale(tmp_path_factory.mktemp("radicale"), {DAV_USER: DAV_PASSWORD})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def calsync_server(tmp_path: Path, radicale: Any) -> Iterator[CalsyncServer]:
    """calsync over HTTPS with one CalDAV provider pointing at the Radicale fixture."""
    cert, key = write_self_signed_cert(tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    provider_id = str(uuid.uuid4())
    providers_file = tmp_path / "providers.toml"
    providers_file.write_text(
        "[[providers]]\n"
        f'id = "{provider_id}"\n'
        f'name = "{PROVIDER_NAME}"\n'
        'kind = "caldav"\n'
        'calendar_type = "OTHER"\n'
        f"url = {json.dumps(radicale.base_url)}\n"
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
    env.update(
        CALSYNC_DATA_DIR=str(data_dir),
        CALSYNC_PROVIDERS_FILE=str(providers_file),
        CALSYNC_PUBLIC_URL=f"https://127.0.0.1:{port}",
    )
    server = CalsyncServer(
        base=f"127.0.0.1:{port}",
        url=f"https://127.0.0.1:{port}",
        cert=cert,
        provider_id=provider_id,
        env=env,
        log_path=tmp_path / "calsync.log",
    )
    server.cli("db", "upgrade")
    log = server.log_path.open("wb")
    try:
        server.process = start_tls_server(port, cert, key, env, log)
        _wait_until_serving(server)
        yield server
    finally:
        process = server.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        log.close()
        print(f"--- calsync server log (tail) ---\n{server.log_tail()}")


def _wait_until_serving(server: CalsyncServer) -> None:
    assert server.process is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(verify=server.ssl_context(), timeout=2.0) as client:
        while True:
            try:
                client.get(f"{server.url}/v2/external-calendars/providers")
                return  # any HTTP answer (401 included) means it is up
            except httpx.TransportError:
                if server.process.poll() is not None:
                    pytest.fail(f"calsync serve exited early:\n{server.log_tail()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"calsync serve did not answer over TLS:\n{server.log_tail()}")
                time.sleep(0.1)


def _ics(uid: str, body: str, *, with_berlin: bool = False) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync tests//official client//EN\r\n"
        + (VTIMEZONE_BERLIN if with_berlin else "")
        + f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20250101T000000Z\r\n{body}END:VEVENT\r\n"
        + "END:VCALENDAR\r\n"
    )


def _basic(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


@dataclass(frozen=True)
class Expected:
    title: str
    calendar_name: str
    start: dt.datetime
    end: dt.datetime
    all_day: bool


def _seed_calendars(radicale: Any, user: str, password: str, suffix: str) -> list[Expected]:
    """Two calendars with five VEVENTs (one recurring x3, one all-day, one transparent)."""
    from tests.peers.dav_servers import make_calendar, put_event

    work_name, personal_name = f"Work {suffix}", f"Personal {suffix}"
    work = make_calendar(radicale, user, password, f"work-{suffix}", work_name)
    personal = make_calendar(radicale, user, password, f"personal-{suffix}", personal_name)

    base = dt.datetime.now(UTC).date() + dt.timedelta(days=3)
    d0, d1, d2, d3 = (base + dt.timedelta(days=n) for n in range(4))

    put_event(
        work,
        user,
        password,
        "review.ics",
        _ics(
            f"review-{suffix}",
            "SUMMARY:Design review\r\n"
            f"DTSTART;TZID=Europe/Berlin:{_basic(d0)}T091500\r\n"
            f"DTEND;TZID=Europe/Berlin:{_basic(d0)}T103000\r\n",
            with_berlin=True,
        ),
    )
    put_event(
        work,
        user,
        password,
        "weekly.ics",
        _ics(
            f"weekly-{suffix}",
            "SUMMARY:Weekly sync\r\n"
            f"DTSTART:{_basic(d1)}T140000Z\r\nDTEND:{_basic(d1)}T143000Z\r\n"
            "RRULE:FREQ=WEEKLY;COUNT=3\r\n",
        ),
    )
    put_event(
        work,
        user,
        password,
        "offsite.ics",
        _ics(
            f"offsite-{suffix}",
            "SUMMARY:Offsite\r\n"
            f"DTSTART;VALUE=DATE:{_basic(d2)}\r\n"
            f"DTEND;VALUE=DATE:{_basic(d2 + dt.timedelta(days=1))}\r\n",
        ),
    )
    put_event(  # free time never blocks (DESIGN.md decision 6): must not be listed
        work,
        user,
        password,
        "focus.ics",
        _ics(
            f"focus-{suffix}",
            "SUMMARY:Focus time\r\nTRANSP:TRANSPARENT\r\n"
            f"DTSTART:{_basic(d0)}T130000Z\r\nDTEND:{_basic(d0)}T140000Z\r\n",
        ),
    )
    put_event(
        personal,
        user,
        password,
        "dentist.ics",
        _ics(
            f"dentist-{suffix}",
            f"SUMMARY:Dentist\r\nDTSTART:{_basic(d3)}T071500Z\r\nDTEND:{_basic(d3)}T080000Z\r\n",
        ),
    )

    def at(day: dt.date, hour: int, minute: int, tz: dt.tzinfo) -> dt.datetime:
        return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)

    expected = [
        Expected("Design review", work_name, at(d0, 9, 15, BERLIN), at(d0, 10, 30, BERLIN), False),
        *(
            Expected(
                "Weekly sync",
                work_name,
                at(d1 + dt.timedelta(weeks=n), 14, 0, UTC),
                at(d1 + dt.timedelta(weeks=n), 14, 30, UTC),
                False,
            )
            for n in range(3)
        ),
        Expected(
            "Offsite",
            work_name,
            at(d2, 0, 0, BERLIN),
            at(d2 + dt.timedelta(days=1), 0, 0, BERLIN),
            True,
        ),
        Expected("Dentist", personal_name, at(d3, 7, 15, UTC), at(d3, 8, 0, UTC), False),
    ]
    return sorted(expected, key=lambda e: (e.start, e.end))


def _register_schedule(server: CalsyncServer, key: str, schedule_id: str, owner_id: str) -> None:
    with httpx.Client(verify=server.ssl_context(), timeout=30.0) as client:
        response = client.put(
            f"{server.url}/v1/schedules/{schedule_id}",
            json={"ownerUserId": owner_id, "ownerName": "Ada", "timeZone": "Europe/Berlin"},
            headers={"Authorization": key},
        )
    assert response.is_success, f"PUT /v1/schedules -> {response.status_code}: {response.text}"


SESSION_TITLE = "Booked through the platform"


def _put_session(
    server: CalsyncServer, key: str, schedule_id: str, session_id: str, start: dt.datetime
) -> None:
    body = {
        "title": SESSION_TITLE,
        "start": start.isoformat(),
        "end": (start + dt.timedelta(hours=1)).isoformat(),
        "status": "CONFIRMED",
    }
    with httpx.Client(verify=server.ssl_context(), timeout=30.0) as http:
        response = http.put(
            f"{server.url}/v1/schedules/{schedule_id}/sessions/{session_id}",
            json=body,
            headers={"Authorization": key},
        )
    assert response.is_success, f"PUT session -> {response.status_code}: {response.text}"


def _create_api_key(server: CalsyncServer, tenant: str) -> str:
    stdout = server.cli("api-keys", "create", "--tenant", tenant, "--json")
    decoder = json.JSONDecoder()
    lines = stdout.splitlines(keepends=True)
    for i, line in enumerate(lines):  # the JSON object may be pretty-printed or follow log lines
        if not line.lstrip().startswith("{"):
            continue
        try:
            parsed, _ = decoder.raw_decode("".join(lines[i:]).lstrip())
        except json.JSONDecodeError:
            continue
        if isinstance(parsed, dict) and parsed.get("key"):
            return str(parsed["key"])
    pytest.fail(f"no JSON with a key in the output of calsync api-keys create:\n{stdout}")


def _rfc3339(value: Any) -> dt.datetime:
    assert isinstance(value, str), f"timestamp is not a string: {value!r}"
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"timestamp without zone designator: {value!r}"
    return parsed


# --- the test ----------------------------------------------------------------------------------


def test_official_client_drives_all_nine_methods(
    node_harness: Path, calsync_server: CalsyncServer, radicale: Any
) -> None:
    email_users = [(u, p) for u, p in radicale.users.items() if "@" in u]
    assert email_users, "Connect By Credentials needs a CalDAV user named by an e-mail address"
    dav_user, dav_password = email_users[0]

    suffix = uuid.uuid4().hex[:8]
    tenant = str(uuid.uuid4())
    schedule_id, owner_id = str(uuid.uuid4()), str(uuid.uuid4())
    expected = _seed_calendars(radicale, dav_user, dav_password, suffix)
    ours = {e.calendar_name for e in expected}

    key = _create_api_key(calsync_server, tenant)
    _register_schedule(calsync_server, key, schedule_id, owner_id)
    session_start = expected[0].start.astimezone(UTC) + dt.timedelta(days=2)
    _put_session(calsync_server, key, schedule_id, "js-session-1", session_start)

    window_from = dt.datetime.combine(
        expected[0].start.astimezone(UTC).date() - dt.timedelta(days=1), dt.time(), UTC
    )
    window_to = window_from + dt.timedelta(days=30)
    node_env = {k: v for k, v in os.environ.items() if k != "NODE_TLS_REJECT_UNAUTHORIZED"}
    node_env.update(
        NODE_EXTRA_CA_CERTS=str(calsync_server.cert),
        CALSYNC_API_BASE=calsync_server.base,
        CALSYNC_API_KEY=key,
        CALSYNC_SITE_ID=tenant,
        SCHEDULE_ID=schedule_id,
        PROVIDER_ID=calsync_server.provider_id,
        DAV_EMAIL=dav_user,
        DAV_PASSWORD=dav_password,
        REDIRECT_URL="https://example.com/after-oauth?from=calsync-tests",
        EVENTS_FROM=window_from.isoformat().replace("+00:00", "Z"),
        EVENTS_TO=window_to.isoformat().replace("+00:00", "Z"),
        EVENTS_PAGE_LIMIT=str(PAGE_LIMIT),
        EVENTS_MIN_COUNT=str(len(expected)),
        EVENTS_SETTLE_SECONDS=str(LIST_EVENTS_SETTLE_SECONDS),
        EXPORT_MIN_COUNT="1",
    )
    completed = subprocess.run(
        [str(node_harness), str(SCRIPT)],
        cwd=JS_DIR,
        env=node_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    try:
        out = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"all_methods.mjs exited {completed.returncode} without one JSON object:\n"
            f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
        )
    print(f"--- all_methods.mjs output ---\n{json.dumps(out, indent=1)}\n{completed.stderr}")
    assert out["unexpected"] == [], "calls behaved unexpectedly (see output above)"
    assert out["ok"] is True
    assert completed.returncode == 0, completed.stderr
    steps: dict[str, Any] = out["steps"]

    def result(name: str) -> Any:
        step = steps[name]
        assert "result" in step, f"{name} failed: {step.get('error')}"
        return step["result"]

    def error(name: str) -> dict[str, Any]:
        step = steps[name]
        assert "error" in step, f"{name} should have failed, returned {step.get('result')}"
        err: dict[str, Any] = step["error"]
        assert err["requestId"], f"{name}: no X-Wix-Request-Id surfaced by the client"
        return err

    # List Providers: ours, with the features of a CalDAV (credentials) provider.
    providers = {p.get("_id"): p for p in result("listProviders")["providers"]}
    assert calsync_server.provider_id in providers, f"provider not listed: {providers}"
    provider = providers[calsync_server.provider_id]
    assert "id" not in provider  # the server sends `id`, the client renames it to `_id`
    assert provider["name"] == PROVIDER_NAME
    assert provider["calendarType"] == "OTHER"
    features = provider["features"]
    assert features["connectMethods"] == ["CREDENTIALS"]
    assert features["updateSyncConfig"] is True
    assert features["listEventFromCalendars"] == "SPECIFIC_CALENDARS"
    assert features["syncToCalendar"] in SYNC_TO_CALENDAR_VALUES

    # Connect By Credentials, Get Connection, List Connections: the same live connection.
    connection = result("connectByCredentials")["connection"]
    connection_id = connection["_id"]
    fetched = result("getConnection")["connection"]
    listed = [c for c in result("listConnections")["connections"] if c["_id"] == connection_id]
    assert len(listed) == 1, result("listConnections")
    assert result("listConnections")["failedProviderIds"] == []
    for conn in (connection, fetched, listed[0]):
        assert "id" not in conn
        assert conn["_id"] == connection_id
        assert conn["status"] in ACTIVE_STATUSES
        assert conn["errorReason"] == "UNDEFINED"
        assert conn["externalAccountEmail"] == dav_user
        assert conn["providerId"] == calsync_server.provider_id
        assert conn["scheduleId"] == schedule_id
        assert conn["calendarType"] == "OTHER"

    # List Calendars: both seeded calendars, by display name.
    calendars = result("listCalendars")["calendars"]
    names = {c["name"]: c["_id"] for c in calendars}
    assert ours <= set(names), f"seeded calendars missing: {calendars}"
    assert all(c["_id"] for c in calendars)

    # Update Sync Config: import from every listed calendar.
    updated = result("updateSyncConfig")["connection"]
    import_config = updated["syncConfig"]["listEventFromCalendars"]
    assert import_config["enabled"] is True
    assert "primaryCalendar" not in import_config
    assert {c["_id"] for c in import_config["calendars"]["calendars"]} == {
        c["_id"] for c in calendars
    }

    # List Events: paged by 2 with cursors, sorted by start, right times/titles/PI fields.
    walk = result("listEvents")
    assert walk["attempts"] == 1 or LIST_EVENTS_SETTLE_SECONDS > 0
    pages = walk["pages"]
    for i, page in enumerate(pages):
        body = page["result"]
        meta = body["pagingMetadata"]
        assert body["failedProviderIds"] == []
        assert len(body["events"]) <= PAGE_LIMIT
        assert meta["count"] == len(body["events"])
        last = i == len(pages) - 1
        assert meta["hasNext"] is (not last), f"page {i}: {meta}"
        if last:
            assert not meta.get("cursors", {}).get("next")
        else:
            assert meta["cursors"]["next"]
            assert pages[i + 1]["request"] == {
                "cursorPaging": {"cursor": meta["cursors"]["next"], "limit": PAGE_LIMIT}
            }
    events = [event for page in pages for event in page["result"]["events"]]
    starts = [_rfc3339(event["start"]) for event in events]
    assert starts == sorted(starts), "events are not sorted by start"
    assert len(pages) >= -(-len(expected) // PAGE_LIMIT)
    for n, event in enumerate(events):
        where = f"event {n} (page {n // PAGE_LIMIT}): {event}"
        assert event.get("scheduleId") == schedule_id, where
        assert event.get("calendarType") == "OTHER", where
        assert event.get("scheduleOwnerId") == owner_id, where
        # OWN_PI was requested on the first page only; the cursor must carry the fieldsets.
        assert event.get("scheduleOwnerName") == "Ada", where
        assert event.get("title") != "Focus time", f"a TRANSPARENT (free) event was listed: {where}"
    got = [
        Expected(
            e["title"],
            e["calendarName"],
            _rfc3339(e["start"]),
            _rfc3339(e["end"]),
            e.get("allDay", False),
        )
        for e in events
        if e.get("calendarName") in ours
    ]
    assert got == expected

    assert all(e.get("title") != SESSION_TITLE for e in events), "an export was imported back"

    # Update Sync Config: the client turns export into a dedicated calendar on; the worker
    # writes the session there (calsync's own sync report tells).
    export_config = result("updateSyncConfigExport")["connection"]["syncConfig"]["syncToCalendar"]
    assert export_config["enabled"] is True and "dedicatedCalendar" in export_config
    export = result("exportReport")["sync"]["export"]
    assert export["target"] == "dedicated" and export["exportedEvents"] == 1, export
    assert export["calendarCreatedByCalsync"] is True

    # Connect By OAuth on a credentials-only provider; wrong CalDAV password.
    oauth = error("connectByOAuth")
    assert (oauth["status"], oauth["code"]) == (428, "NOT_SUPPORTED_BY_PROVIDER"), oauth
    wrong = error("connectByCredentialsWrongPassword")
    assert (wrong["status"], wrong["code"]) == (401, "BAD_CREDENTIALS"), wrong

    # Disconnect, then the connection stays readable as DISCONNECTED and contributes no events.
    assert result("disconnect")["connection"]["status"] == "DISCONNECTED"
    after = result("getConnectionAfterDisconnect")["connection"]
    assert (after["_id"], after["status"]) == (connection_id, "DISCONNECTED")
    again = error("disconnectAgain")
    assert (again["status"], again["code"]) == (428, "CONNECTION_ALREADY_DISCONNECTED"), again
    assert result("listEventsAfterDisconnect")["events"] == []
    unknown = error("getConnectionUnknown")
    # Without details.applicationError the client would report the number 404 as the code.
    assert (unknown["status"], unknown["code"]) == (404, "NOT_FOUND"), unknown
