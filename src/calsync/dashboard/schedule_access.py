"""Which schedules a dashboard user sees.

Admins and apps (MANAGE_ALL) use the schedules service. A staff member's key may not read
schedules through it, yet the dashboard must show them their own: those are read here, limited
to schedules the identity owns (the same ownership rule as ``service.auth.owns``).
"""

from __future__ import annotations

from sqlalchemy import func, select

from calsync.domain import Identity, Permission
from calsync.errors import NotFound
from calsync.service import schedules
from calsync.service.runtime import Runtime
from calsync.service.views import ScheduleView
from calsync.store.db import transaction
from calsync.store.models import Schedule


def visible_schedules(rt: Runtime, *, identity: Identity) -> list[ScheduleView]:
    if identity.has(Permission.MANAGE_ALL_CONNECTIONS):
        return schedules.list_schedules(rt, identity=identity)
    if not identity.user_id:
        return []
    with transaction(rt.sessions) as session:
        rows = session.scalars(
            select(Schedule)
            .where(
                Schedule.tenant_id == identity.tenant_id,
                func.lower(Schedule.owner_user_id) == identity.user_id.lower(),
            )
            .order_by(Schedule.created_at, Schedule.id)
        )
        return [
            ScheduleView(
                id=r.id,
                owner_user_id=r.owner_user_id,
                owner_name=r.owner_name,
                time_zone=r.time_zone,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in rows
        ]


def visible_schedule(rt: Runtime, *, identity: Identity, schedule_id: str) -> ScheduleView:
    """The schedule, or NotFound when it does not exist or the identity may not see it."""
    if identity.has(Permission.MANAGE_ALL_CONNECTIONS):
        return schedules.get_schedule(rt, identity=identity, schedule_id=schedule_id)
    for schedule in visible_schedules(rt, identity=identity):
        if schedule.id == schedule_id.lower():
            return schedule
    raise NotFound(f"schedule {schedule_id} not found")
