"""The week view of a schedule, under the state of its connections."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Request, Response

from calsync.api.parse import FIRST_YEAR, LAST_YEAR
from calsync.dashboard.connection_cards import ConnectionCard, schedule_cards
from calsync.dashboard.errors import DashboardRoute
from calsync.dashboard.pages import render
from calsync.dashboard.schedule_routes import schedule_url
from calsync.dashboard.web import call, runtime, viewer
from calsync.dashboard.week_data import Week, load_week
from calsync.dashboard.week_grid import monday_of
from calsync.service.platform.schedules import visible_schedule
from calsync.tz import zone

router = APIRouter(route_class=DashboardRoute)


def _requested_day(value: str | None, time_zone: str) -> date:
    """The ``start`` parameter (YYYY-MM-DD), or today in the schedule's zone."""
    if value:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            day = None
        if day is not None and FIRST_YEAR <= day.year <= LAST_YEAR:
            return day
    return datetime.now(zone(time_zone)).date()


@router.get("/dashboard/schedules/{schedule_id}/week")
async def week_page(request: Request, schedule_id: str) -> Response:
    v = await viewer(request)
    rt = runtime(request)
    start = request.query_params.get("start")

    def load() -> tuple[str, str, Week, list[ConnectionCard]]:
        schedule = visible_schedule(rt, identity=v.identity, schedule_id=schedule_id)
        monday = monday_of(_requested_day(start, schedule.time_zone))
        week = load_week(rt, identity=v.identity, schedule=schedule, monday=monday)
        cards = schedule_cards(
            rt, identity=v.identity, schedule_id=schedule.id, time_zone=schedule.time_zone
        )
        return schedule.id, schedule.owner_name, week, cards

    sid, owner_name, week, cards = await call(load)
    names = [p.name for p in rt.providers.all() if p.id in week.failed_provider_ids]
    return render(
        "week.html",
        viewer=v,
        title=f"Week of {week.grid.title}",
        owner_name=owner_name,
        schedule_link=schedule_url(sid),
        week_link=schedule_url(sid) + "/week",
        grid=week.grid,
        failed_names=names,
        truncated=week.truncated,
        cards=cards,
    )
