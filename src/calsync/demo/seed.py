"""The demo's data in calsync: tenant, schedule, API key, connection, sessions; idempotent.

Everything goes through the normal service calls, as a platform would make them over the API,
so the demo exercises the product rather than a shortcut into the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from calsync.demo.events import BERLIN, CALENDAR_NAME, week_start
from calsync.demo.radicale import DemoCalDav, load_state, save_state
from calsync.domain import CalendarType, Identity, ImportConfig, ProviderKind, SyncConfig
from calsync.errors import Unauthenticated
from calsync.providers.registry import CALDAV_FEATURES, ProviderConfig
from calsync.service.access import api_keys
from calsync.service.access.auth import authenticate
from calsync.service.connections import manage as connections
from calsync.service.connections.connect import connect_by_credentials
from calsync.service.platform import schedules
from calsync.service.platform.sessions import CONFIRMED, SessionInput, put_session
from calsync.service.runtime import Runtime

DEMO_TENANT = "demo"
DEMO_PROVIDER_ID = "d3e40c1a-5b7e-4c2a-9f1e-0a6b8c4d2e10"
DEMO_SCHEDULE_ID = "d3e40c1a-5b7e-4c2a-9f1e-0a6b8c4d2e11"
DEMO_OWNER_ID = "d3e40c1a-5b7e-4c2a-9f1e-0a6b8c4d2e12"
DEMO_OWNER_NAME = "Ada Lovelace"
DEMO_TIME_ZONE = "Europe/Berlin"
EXTERNAL_PATH = "/bookings/v2/external-calendars"


@dataclass(frozen=True)
class DemoAccess:
    """What the start-up banner shows: who the demo is and how to reach it."""

    tenant_id: str
    schedule_id: str
    api_key: str
    connection_id: str


def demo_provider(caldav: DemoCalDav) -> ProviderConfig:
    """The "Demo CalDAV" provider, pointing at the demo's Radicale."""
    return ProviderConfig(
        id=DEMO_PROVIDER_ID,
        name="Demo CalDAV",
        kind=ProviderKind.CALDAV,
        calendar_type=CalendarType.OTHER,
        features=CALDAV_FEATURES,
        url=caldav.url,
    )


def seed(rt: Runtime, caldav: DemoCalDav, today: date) -> DemoAccess:
    """Create what is missing (key, schedule, connection, sessions) and reuse what exists.

    Connecting again repairs the existing connection in place (new Radicale port, password).
    """
    identity, key = _demo_identity(rt, caldav)
    schedules.put_schedule(
        rt,
        identity=identity,
        schedule_id=DEMO_SCHEDULE_ID,
        owner_user_id=DEMO_OWNER_ID,
        owner_name=DEMO_OWNER_NAME,
        time_zone=DEMO_TIME_ZONE,
    )
    connection = connect_by_credentials(
        rt,
        identity=identity,
        schedule_id=DEMO_SCHEDULE_ID,
        provider_id=DEMO_PROVIDER_ID,
        email=caldav.email,
        password=caldav.password,
    )
    if connection.sync_config.import_.calendar_ids is None:
        # Name the calendar that blocks time: "primary" would be whichever calendar sorts first,
        # and the dedicated calendar the export creates may sort before it.
        connections.update_sync_config(
            rt,
            identity=identity,
            connection_id=connection.id,
            requested=SyncConfig(import_=ImportConfig(enabled=True, calendar_ids=(CALENDAR_NAME,))),
            present={"listEventFromCalendars"},
            field_mask=None,
        )
    for session_id, data in demo_sessions(today):
        put_session(
            rt, identity=identity, schedule_id=DEMO_SCHEDULE_ID, session_id=session_id, data=data
        )
    return DemoAccess(DEMO_TENANT, DEMO_SCHEDULE_ID, key, connection.id)


def _demo_identity(rt: Runtime, caldav: DemoCalDav) -> tuple[Identity, str]:
    """The demo's app key (kept in demo.json, since only its hash is in the database)."""
    state = load_state(caldav.root)
    key = str(state.get("api_key", ""))
    with rt.store.transaction() as tx:
        try:
            return authenticate(tx, key, None), key
        except Unauthenticated:
            key = api_keys.create_key(tx, tenant_id=DEMO_TENANT, name="demo").key
    state["api_key"] = key
    save_state(caldav.root, state)
    with rt.store.transaction() as tx:
        return authenticate(tx, key, None), key


def demo_sessions(today: date) -> list[tuple[str, SessionInput]]:
    """Bookings of the demo schedule, exported into the demo account's calendar."""
    monday = week_start(today)

    def timed(title: str, day: date, hour: int, minutes: int) -> SessionInput:
        start = datetime.combine(day, time(hour), BERLIN)
        return SessionInput(
            title=title,
            status=CONFIRMED,
            time_zone=DEMO_TIME_ZONE,
            start=start,
            end=start + timedelta(minutes=minutes),
            location="Studio 1",
        )

    return [
        ("demo-session-1", timed("Massage: Maria Schmidt", monday + timedelta(days=1), 15, 60)),
        ("demo-session-2", timed("Yoga class (8 participants)", monday + timedelta(3), 18, 90)),
        ("demo-session-3", timed("Consultation: Jon Berg", monday + timedelta(weeks=1), 14, 45)),
    ]


def banner(access: DemoAccess, base_url: str, signin_link: str | None, today: date) -> str:
    """The start-up text: where to click, the API key, and a curl that lists this week."""
    monday = datetime.combine(week_start(today), time(), BERLIN)
    start, end = (_utc(monday), _utc(monday + timedelta(weeks=1)))
    events = f"{base_url}{EXTERNAL_PATH}/events?from={start}&to={end}&fieldsets=OWN_PI"
    lines = [
        "",
        "calsync demo is running (a local CalDAV server with sample events is connected).",
        f"  Dashboard sign-in (one use, 15 minutes): {signin_link or base_url + '/dashboard'}",
        f"  API key (tenant {access.tenant_id!r}):      {access.api_key}",
        "  This week's busy times:",
        f"    curl -H 'Authorization: {access.api_key}' '{events}'",
        "",
    ]
    return "\n".join(lines)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
