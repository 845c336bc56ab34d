"""A stored connection as the service layer shows it."""

from __future__ import annotations

from calsync.domain import CalendarType, ConnectionStatus, ErrorReason
from calsync.service.connections import sync_config as sc
from calsync.service.runtime import Runtime
from calsync.service.views import ConnectionView
from calsync.store.models import Connection


def to_view(rt: Runtime, row: Connection) -> ConnectionView:
    provider = rt.providers.get(row.provider_id)
    return ConnectionView(
        id=row.id,
        provider_id=row.provider_id,
        calendar_type=provider.calendar_type if provider else CalendarType.UNDEFINED,
        schedule_id=row.schedule_id,
        user_id=row.user_id,
        app_id=row.app_id,
        external_account_email=row.external_account_email,
        status=ConnectionStatus(row.status),
        error_reason=ErrorReason(row.error_reason),
        sync_config=sc.from_json(row.sync_config),
    )
