"""POST /v1/connections:connectFeed end to end, against a local feed server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from calsync.api.app import create_app
from calsync.service.runtime import Runtime
from tests.conftest import EXT, Api, new_key, random_guid

FEED_PROVIDER_ID = "0c7a3f52-8f0e-4a8e-9d7e-5f1f2c3d4e5f"
TOKEN = "tok-9f8e7d6c5b4a"
FEED = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nX-WR-TIMEZONE:Europe/Berlin\r\n"
    b"BEGIN:VEVENT\r\nUID:talk@x\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261210T100000\r\n"
    b"DTEND:20261210T110000\r\nSUMMARY:Feed talk\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = FEED if self.path.startswith("/cal.ics") else b"<html>no</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def feed_base() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def feed_api(make_runtime: Callable[..., Runtime]) -> Iterator[Api]:
    extra = (
        f'[[providers]]\nid = "{FEED_PROVIDER_ID}"\nname = "Feeds"\nkind = "ics"\n'
        'calendar_type = "OTHER"\n'
    )
    rt = make_runtime(extra_toml=extra, feed_allow_private=True)
    with TestClient(create_app(rt)) as client:
        yield Api(client, new_key(rt))


def _schedule(api: Api) -> str:
    schedule_id = random_guid()
    body = {"ownerUserId": random_guid(), "ownerName": "Ada", "timeZone": "Europe/Berlin"}
    assert api.put(f"/v1/schedules/{schedule_id}", body).status_code == 200
    return schedule_id


def _events(api: Api, schedule_id: str) -> list[tuple[str, str]]:
    params = {
        "from": "2026-12-01T00:00:00Z",
        "to": "2026-12-31T00:00:00Z",
        "scheduleIds": schedule_id,
        "fieldsets": "OWN_PI",
    }
    deadline = time.monotonic() + 10
    while True:
        response = api.get(f"{EXT}/events", params=params)
        assert TOKEN not in response.text
        events = response.json().get("events", [])
        if events or time.monotonic() > deadline:
            return [(e["title"], e["start"]) for e in events]
        time.sleep(0.1)


def test_connect_feed_lists_its_events_and_never_shows_the_url(
    feed_api: Api, feed_base: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    schedule_id = _schedule(feed_api)
    body = {"providerId": FEED_PROVIDER_ID, "scheduleId": schedule_id, "url": ""}
    body["url"] = f"{feed_base}/cal.ics?token={TOKEN}"
    response = feed_api.post("/v1/connections:connectFeed", body)
    assert response.status_code == 200, response.text
    connection = response.json()["connection"]
    assert connection["externalAccountEmail"] == "feed at 127.0.0.1"
    assert TOKEN not in response.text
    assert _events(feed_api, schedule_id) == [("Feed talk", "2026-12-10T09:00:00.000Z")]
    for path in (f"{EXT}/connections/{connection['id']}", f"{EXT}/connections"):
        got = feed_api.get(path, params={"scheduleIds": schedule_id})
        assert got.status_code == 200 and TOKEN not in got.text
    calendars = feed_api.get(f"{EXT}/connections/{connection['id']}/calendars")
    assert TOKEN not in calendars.text
    assert TOKEN not in caplog.text


def test_bad_url_is_400_in_the_envelope(feed_api: Api, feed_base: str) -> None:
    schedule_id = _schedule(feed_api)
    for url in ("ftp://example.org/a.ics", f"{feed_base}/page.html", ""):
        body = {"providerId": FEED_PROVIDER_ID, "scheduleId": schedule_id, "url": url}
        response = feed_api.post("/v1/connections:connectFeed", body)
        assert response.status_code == 400, response.text
        assert "url" in response.text
    listed = feed_api.get(f"{EXT}/connections", params={"scheduleIds": schedule_id}).json()
    assert listed["connections"] == []


def test_export_config_is_refused(feed_api: Api, feed_base: str) -> None:
    schedule_id = _schedule(feed_api)
    body = {"providerId": FEED_PROVIDER_ID, "scheduleId": schedule_id}
    body["url"] = f"{feed_base}/cal.ics?token={TOKEN}"
    connection = feed_api.post("/v1/connections:connectFeed", body).json()["connection"]
    update = {
        "connectionId": connection["id"],
        "syncConfig": {"syncToCalendar": {"enabled": True, "dedicatedCalendar": {}}},
    }
    response = feed_api.patch(f"{EXT}/connections/{connection['id']}/sync-config", update)
    assert response.status_code in (400, 428), response.text
    assert TOKEN not in response.text


def test_connect_by_credentials_on_a_feed_provider_is_refused(feed_api: Api) -> None:
    schedule_id = _schedule(feed_api)
    body = {
        "providerId": FEED_PROVIDER_ID,
        "scheduleId": schedule_id,
        "email": "ada@example.com",
        "password": "x",
    }
    response = feed_api.post(f"{EXT}/connections:connectByCredentials", body)
    assert response.status_code == 428, response.text
