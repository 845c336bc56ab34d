"""Benchmark 2: List Events from the store vs reading the same calendars live from Radicale.

A local Radicale (``tests.peers.dav_servers.start_radicale``) holds ``calendars`` accounts,
each with one calendar of ``events_per_calendar`` events (one-off timed events in UTC and in
Europe/Berlin, all-day events, weekly/daily series with COUNT, UNTIL, BYDAY, EXDATE and a moved
occurrence, a few transparent ones). Each account is connected to its own schedule through
calsync's API (connectByCredentials) and synced by calsync itself, so the store holds exactly
what calsync makes of those calendars.

The live path is what a store-less List Events would do for one week: per calendar one
calendar-query REPORT (the body calsync's CalDAV adapter sends), parse the multistatus, expand
every resource for the week with ``calsync.ical.expand.expand_resource``, merge and sort.
Also measured: the same with a server-side time-range filter in the REPORT.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import httpx
from tests.peers.dav_servers import DavServer, make_calendar, start_radicale

from calsync.ical.expand import BusyInstance, expand_resource
from calsync.providers.caldav import dav
from calsync.tz import zone

PROVIDER_ID = "7c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"
EXT = "/bookings/v2/external-calendars"
BERLIN_TZ = """BEGIN:VTIMEZONE\r
TZID:Europe/Berlin\r
BEGIN:DAYLIGHT\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
TZNAME:CEST\r
DTSTART:19700329T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r
END:DAYLIGHT\r
BEGIN:STANDARD\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
TZNAME:CET\r
DTSTART:19701025T030000\r
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r
END:STANDARD\r
END:VTIMEZONE\r
"""
SCHEDULE_TZ = "Europe/Berlin"
_HOUR = timedelta(hours=1)


@dataclass
class Account:
    user: str
    password: str
    calendar_url: str
    schedule_id: str


@dataclass
class DavWorld:
    server: DavServer
    accounts: list[Account]
    week_start: datetime
    events: int
    root: Path
    seed_seconds: float
    schedule_ids: list[str] = field(default_factory=list)

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _basic(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _vevent(uid: str, lines: list[str]) -> str:
    body = "\r\n".join(["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines])
    return body + "\r\nEND:VEVENT\r\n"


def calendar_text(rng: random.Random, count: int, today: datetime, tag: str) -> str:
    """One VCALENDAR with ``count`` events (one UID each; a series' override shares its UID)."""
    parts: list[str] = []
    day0 = today.replace(hour=0, minute=0, second=0, microsecond=0)
    for n in range(count):
        uid = f"{tag}-{n:04d}@bench"
        kind = n % 20
        day = day0 + timedelta(days=rng.randrange(-30, 90))
        start = day + timedelta(minutes=7 * 60 + 15 * rng.randrange(48))
        minutes = rng.choice((30, 45, 60, 90, 120))
        summary = f"SUMMARY:Event {n}"
        if kind < 12:  # one-off, UTC
            extra = ["TRANSP:TRANSPARENT"] if kind == 0 else []
            parts.append(
                _vevent(
                    uid,
                    [
                        f"DTSTART:{_basic(start)}",
                        f"DTEND:{_basic(start + timedelta(minutes=minutes))}",
                        summary,
                        *extra,
                    ],
                )
            )
        elif kind < 14:  # one-off, Europe/Berlin local time
            local = start.strftime("%Y%m%dT%H%M%S")
            parts.append(
                _vevent(
                    uid,
                    [f"DTSTART;TZID=Europe/Berlin:{local}", f"DURATION:PT{minutes}M", summary],
                )
            )
        elif kind < 16:  # all-day, 1-3 days
            d = day.date()
            days = rng.choice((1, 1, 2, 3))
            parts.append(
                _vevent(
                    uid,
                    [
                        f"DTSTART;VALUE=DATE:{d:%Y%m%d}",
                        f"DTEND;VALUE=DATE:{d + timedelta(days=days):%Y%m%d}",
                        summary,
                    ],
                )
            )
        else:  # recurring, starting up to 60 days ago
            first = start - timedelta(days=rng.randrange(0, 60))
            local = first.strftime("%Y%m%dT%H%M%S")
            head = [f"DTSTART;TZID=Europe/Berlin:{local}", f"DURATION:PT{minutes}M", summary]
            if kind == 16:
                parts.append(_vevent(uid, [*head, "RRULE:FREQ=WEEKLY;COUNT=20"]))
            elif kind == 17:
                until = _basic(first + timedelta(days=120))
                parts.append(_vevent(uid, [*head, f"RRULE:FREQ=DAILY;UNTIL={until}"]))
            elif kind == 18:
                parts.append(_vevent(uid, [*head, "RRULE:FREQ=WEEKLY;BYDAY=MO,WE,FR"]))
            else:  # weekly, one occurrence removed, one moved by an hour
                skip = (first + timedelta(days=14)).strftime("%Y%m%dT%H%M%S")
                moved = first + timedelta(days=21)
                parts.append(
                    _vevent(uid, [*head, "RRULE:FREQ=WEEKLY", f"EXDATE;TZID=Europe/Berlin:{skip}"])
                )
                parts.append(
                    _vevent(
                        uid,
                        [
                            f"RECURRENCE-ID;TZID=Europe/Berlin:{moved:%Y%m%dT%H%M%S}",
                            f"DTSTART;TZID=Europe/Berlin:{moved + _HOUR:%Y%m%dT%H%M%S}",
                            f"DURATION:PT{minutes}M",
                            "SUMMARY:Moved",
                        ],
                    )
                )
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync bench//EN\r\n" + BERLIN_TZ
    return head + "".join(parts) + "END:VCALENDAR\r\n"


def start_world(calendars: int, events_per_calendar: int, seed: int = 23) -> DavWorld:
    """Start Radicale and fill one calendar per account (uploaded as one collection PUT)."""
    root = Path(tempfile.mkdtemp(prefix="calsync-bench-radicale-"))
    rng = random.Random(seed)
    users = {f"bench{i}@example.com": f"bench-pw-{i}" for i in range(calendars)}
    server = start_radicale(root, users)
    started = time.perf_counter()
    today = datetime.now(UTC)
    accounts = []
    try:
        for i, (user, password) in enumerate(users.items()):
            url = make_calendar(server, user, password, "work", f"Work {i}")
            text = calendar_text(rng, events_per_calendar, today, f"c{i}")
            with httpx.Client(auth=(user, password), timeout=60) as client:
                response = client.put(
                    url, content=text.encode(), headers={"Content-Type": "text/calendar"}
                )
                if response.status_code not in (200, 201, 204):
                    raise RuntimeError(
                        f"PUT {url} -> {response.status_code}: {response.text[:300]}"
                    )
            accounts.append(
                Account(user, password, url, str(uuid.UUID(int=rng.getrandbits(128), version=4)))
            )
    except BaseException:
        server.stop()
        raise
    week_start = (today + timedelta(days=7)).replace(hour=0, minute=0, second=0, microsecond=0)
    return DavWorld(
        server, accounts, week_start, events_per_calendar, root, time.perf_counter() - started
    )


# --- the live path --------------------------------------------------------------------------


def _time_range_body(start: datetime, end: datetime) -> bytes:
    props = "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
    flt = (
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{escape(_basic(start))}" end="{escape(_basic(end))}"/>'
        "</C:comp-filter></C:comp-filter></C:filter>"
    )
    xml = (
        '<?xml version="1.0" encoding="utf-8"?><C:calendar-query xmlns:D="DAV:" '
        f'xmlns:C="urn:ietf:params:xml:ns:caldav">{props}{flt}</C:calendar-query>'
    )
    return xml.encode()


def read_live(
    clients: dict[str, httpx.Client], world: DavWorld, *, time_range: bool
) -> list[BusyInstance]:
    """One week of busy instances of every account, read and expanded now."""
    start, end = world.week_start, world.week_start + timedelta(days=7)
    body = (
        _time_range_body(start, end)
        if time_range
        else dav.calendar_query_body([dav.GETETAG, dav.CALENDAR_DATA])
    )
    tz = zone(SCHEDULE_TZ)
    out: list[BusyInstance] = []
    for account in world.accounts:
        response = clients[account.user].request(
            "REPORT",
            account.calendar_url,
            content=body,
            headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
        )
        if response.status_code != 207:
            raise RuntimeError(f"REPORT -> {response.status_code}")
        for item in dav.parse_multistatus(response.content).responses:
            ical = item.raw_text(dav.CALENDAR_DATA)
            if ical:
                out.extend(
                    expand_resource(
                        ical,
                        window_start=start,
                        window_end=end,
                        owner_emails=frozenset({account.user}),
                        local_tz=tz,
                    )
                )
    out.sort(key=lambda i: (i.start, i.end, i.key))
    return out


def measure_live(world: DavWorld, repeats: int) -> dict[str, object]:
    clients = {a.user: httpx.Client(auth=(a.user, a.password), timeout=60) for a in world.accounts}
    try:
        result: dict[str, object] = {}
        for label, time_range in (("live_full_ms", False), ("live_time_range_ms", True)):
            read_live(clients, world, time_range=time_range)  # warm-up
            times = []
            instances = 0
            for _ in range(repeats):
                started = time.perf_counter()
                instances = len(read_live(clients, world, time_range=time_range))
                times.append((time.perf_counter() - started) * 1000)
            result[label] = round(statistics.median(times), 2)
            result[label.replace("_ms", "_instances")] = instances
        return result
    finally:
        for client in clients.values():
            client.close()


# --- the store path -------------------------------------------------------------------------


def events_url(
    schedule_ids: list[str], start: datetime, limit: int, cursor: str | None = None
) -> str:
    if cursor:
        q = [("cursorPaging.cursor", cursor), ("cursorPaging.limit", str(limit))]
    else:
        end = start + timedelta(days=7)
        q = [
            ("from", start.strftime("%Y-%m-%dT%H:%M:%SZ")),
            ("to", end.strftime("%Y-%m-%dT%H:%M:%SZ")),
            ("cursorPaging.limit", str(limit)),
            ("fieldsets", "OWN_PI"),
        ]
        q += [("scheduleIds", s) for s in schedule_ids]
    return f"{EXT}/events?{urlencode(q)}"


def _connect(http: httpx.Client, account: Account) -> str:
    """connectByCredentials, asked once more on failure (e.g. the database restarting)."""
    body = {
        "scheduleId": account.schedule_id,
        "providerId": PROVIDER_ID,
        "email": account.user,
        "password": account.password,
    }
    r = http.post(f"{EXT}/connections:connectByCredentials", json=body)
    if r.status_code != 200:
        time.sleep(2)
        r = http.post(f"{EXT}/connections:connectByCredentials", json=body)
    if r.status_code != 200:
        raise RuntimeError(f"connectByCredentials -> {r.status_code}: {r.text[:300]}")
    return str(r.json()["connection"]["id"])


def _synced(http: httpx.Client, connection_id: str, late: bool) -> bool:
    """Whether the connection is SYNCED; an unreadable answer counts as not yet (unless
    ``late``), an ERROR fails the run."""
    r = http.get(f"{EXT}/connections/{connection_id}")
    if r.status_code != 200:
        if late:
            raise RuntimeError(f"GET connection -> {r.status_code}: {r.text[:300]}")
        return False
    status = r.json()["connection"]["status"]
    if status == "ERROR":
        raise RuntimeError(f"connection {connection_id} failed to sync")
    return bool(status == "SYNCED")


def connect_accounts(http: httpx.Client, world: DavWorld, timeout_s: float = 300) -> float:
    """Schedules + connectByCredentials for every account, then let calsync sync them (the
    first List Events asks for it; the syncs finish in the server's background pool)."""
    started = time.perf_counter()
    connection_ids = []
    for i, account in enumerate(world.accounts):
        r = http.put(
            f"/v1/schedules/{account.schedule_id}",
            json={
                "ownerUserId": str(uuid.uuid4()),
                "ownerName": f"Owner {i}",
                "timeZone": SCHEDULE_TZ,
            },
        )
        r.raise_for_status()
        connection_ids.append(_connect(http, account))
    world.schedule_ids = [a.schedule_id for a in world.accounts]
    url = events_url(world.schedule_ids, world.week_start, 100)
    http.get(url + "&partialFailure=true", timeout=120)  # triggers the first syncs
    deadline = time.monotonic() + timeout_s
    pending = set(connection_ids)
    while pending:
        late = time.monotonic() > deadline
        pending = {cid for cid in pending if not _synced(http, cid, late)}
        if pending and late:
            raise RuntimeError(f"{len(pending)} connections still not synced")
        if pending:
            time.sleep(0.5)
            http.get(url + "&partialFailure=true", timeout=120)
    return time.perf_counter() - started


def store_instances(http: httpx.Client, world: DavWorld) -> int:
    """All store events of the week (paged), to compare with the live count."""
    total, cursor = 0, None
    while True:
        r = http.get(events_url(world.schedule_ids, world.week_start, 1000, cursor))
        r.raise_for_status()
        body = r.json()
        total += len(body["events"])
        cursor = body["pagingMetadata"].get("cursors", {}).get("next")
        if not cursor:
            return total


def measure_store(http: httpx.Client, world: DavWorld, repeats: int) -> dict[str, object]:
    url = events_url(world.schedule_ids, world.week_start, 100)
    for _ in range(5):
        http.get(url)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        r = http.get(url)
        times.append((time.perf_counter() - started) * 1000)
        if r.status_code != 200 or r.json()["failedProviderIds"]:
            raise RuntimeError(f"store List Events -> {r.status_code}: {r.text[:300]}")
    return {
        "store_ms": round(statistics.median(times), 3),
        "store_page_events": len(r.json()["events"]),
        "store_instances": store_instances(http, world),
    }
