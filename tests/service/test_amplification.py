"""A few bytes of recurrence must not become millions of rows, nor a free future (red-team
finding 10): a resource cut at its cap keeps the instances from now on, a calendar is capped
at MAX_INSTANCES_PER_CALENDAR keeping those nearest to now, and the cut is reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from calsync.ical.expand import MAX_INSTANCES
from calsync.service.runtime import Runtime
from calsync.service.sync import instances
from calsync.store.models import EventInstance
from tests.api.test_external_api import EMAIL, PASSWORD, connect, make_schedule
from tests.conftest import EXT, Api
from tests.fakes import FakeProvider


def _series(uid: str, start: datetime, freq: str) -> str:
    stamp = start.strftime("%Y%m%dT%H%M%SZ")
    end = (start + timedelta(seconds=30)).strftime("%Y%m%dT%H%M%SZ")
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{stamp}\r\nDTEND:{end}\r\n"
        f"RRULE:FREQ={freq}\r\nSUMMARY:Dense\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def _stored(rt: Runtime, connection_id: str) -> tuple[int, int | None, int | None]:
    with rt.db() as session:
        count, low, high = session.execute(
            select(
                func.count(), func.min(EventInstance.start_ms), func.max(EventInstance.start_ms)
            ).where(EventInstance.connection_id == connection_id)
        ).one()
    return int(count), low, high


@pytest.fixture
def account(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.add_account(EMAIL, PASSWORD)
    fake_provider.add_calendar(EMAIL, "home", "Home", primary=True)
    return fake_provider


def test_a_dense_series_that_began_long_ago_keeps_the_coming_instances(
    api: Api, runtime: Runtime, account: FakeProvider
) -> None:
    """A minutely series from 80 days ago holds ~700,000 instances in the stored window;
    the expander keeps 50,000. Kept from the window's start, the future would show free."""
    began = (datetime.now(UTC) - timedelta(days=80)).replace(second=0, microsecond=0)
    account.put(EMAIL, "home", "/dense.ics", _series("dense", began, "MINUTELY"))
    connection_id = connect(api, make_schedule(api))["connection"]["id"]
    soon = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    window = {
        "from": soon.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "to": (soon + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    response = api.get(f"{EXT}/events", params=window)
    assert response.status_code == 200, response.text
    assert len(response.json()["events"]) == 10  # busy in two hours, as the series says
    count, low, _ = _stored(runtime, connection_id)
    assert count == MAX_INSTANCES
    assert low is not None and low >= (datetime.now(UTC) - timedelta(minutes=5)).timestamp() * 1000


def test_a_calendar_is_capped_keeping_the_instances_nearest_now(
    api: Api,
    runtime: Runtime,
    account: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(instances, "MAX_INSTANCES_PER_CALENDAR", 60)
    began = (datetime.now(UTC) - timedelta(days=30)).replace(hour=9, minute=0, second=0)
    for n in range(3):  # three daily series: ~1,470 instances in the stored window
        account.put(EMAIL, "home", f"/d{n}.ics", _series(f"d{n}", began, "DAILY"))
    connection_id = connect(api, make_schedule(api))["connection"]["id"]
    assert (
        api.get(
            f"{EXT}/events", params={"from": "2026-01-01T00:00:00Z", "to": "2027-12-31T00:00:00Z"}
        ).status_code
        == 200
    )
    count, low, high = _stored(runtime, connection_id)
    assert count == 60
    now_ms = datetime.now(UTC).timestamp() * 1000
    assert low is not None and high is not None
    assert now_ms - 2 * 86_400_000 <= low and high <= now_ms + 21 * 86_400_000  # around now
    # Said in the log (and in the lastError of the run that cut; a later run that cuts
    # nothing new clears it).
    assert any("nearest to now are kept" in r.getMessage() for r in caplog.records)
