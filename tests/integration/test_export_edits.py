"""Edits noticed in the external calendar: only real ones. Calsync's own writes, and exported
events outside the window a provider reads, must never look like edits (that would rewrite
them on every run, forever)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from calsync.providers.registry import GOOGLE_PROVIDER_ID
from calsync.service.platform import sessions
from calsync.service.runtime import Runtime
from calsync.service.sync.run import sync_connection
from calsync.store.models import ExportTarget
from tests.integration.test_export_burst import ADMIN, BASE, google, google_account, toml
from tests.peers.google_fake import GoogleFake

__all__ = ["google"]  # the module-scoped fake, shared with the burst test


def put(rt: Runtime, schedule_id: str, session_id: str, days: int) -> None:
    start = BASE + timedelta(days=days)
    sessions.put_session(
        rt,
        identity=ADMIN,
        schedule_id=schedule_id,
        session_id=session_id,
        data=sessions.SessionInput(
            title=session_id, status="CONFIRMED", start=start, end=start + timedelta(hours=1)
        ),
    )


def edits(rt: Runtime, connection_id: str) -> int:
    with rt.db() as session:
        target = session.get(ExportTarget, connection_id)
        assert target is not None
        return target.external_edits


def test_events_outside_the_read_window_are_not_rewritten_forever(
    make_runtime: Callable[..., Runtime], google: GoogleFake
) -> None:
    rt = make_runtime(
        extra_toml=toml(GOOGLE_PROVIDER_ID, "google", google.api_url), horizon_future_days=30
    )
    acc = google_account(rt, google)
    put(rt, acc.schedule_id, "near", 2)
    put(rt, acc.schedule_id, "moving", 3)
    sync_connection(rt, acc.connection_id, export=True)
    put(rt, acc.schedule_id, "moving", 90)  # beyond the 30-day horizon: its event moves too
    for _ in range(4):
        sync_connection(rt, acc.connection_id, export=True)
    writes = len([r for r in google.requests if r.method == "calendar.events.update"])
    for _ in range(3):
        sync_connection(rt, acc.connection_id, export=True)
    assert len([r for r in google.requests if r.method == "calendar.events.update"]) == writes
    assert edits(rt, acc.connection_id) == 0
    starts = sorted(e["start"]["dateTime"][:10] for e in acc.exported())
    assert starts == sorted([(BASE + timedelta(days=d)).date().isoformat() for d in (2, 90)])
    # A real deletion inside the window is still noticed and put back.
    [near] = [e for e in acc.exported() if e["summary"] == "near"]
    google.delete_event(acc.email, acc.email, near["id"])
    sync_connection(rt, acc.connection_id, export=True)
    assert edits(rt, acc.connection_id) == 1
    assert sorted(e["summary"] for e in acc.exported()) == ["moving", "near"]
