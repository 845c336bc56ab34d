"""A stored connection as the service layer shows it."""

from __future__ import annotations

from typing import Any, Protocol

from calsync.domain import CalendarType, ConnectionStatus, ErrorReason
from calsync.service.connections import sync_config as sc
from calsync.service.runtime import Runtime
from calsync.service.views import ConnectionView


class StoredConnection(Protocol):
    """What a view needs of a stored connection (a store record or row has these)."""

    @property
    def id(self) -> str: ...
    @property
    def provider_id(self) -> str: ...
    @property
    def schedule_id(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def app_id(self) -> str | None: ...
    @property
    def external_account_email(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def error_reason(self) -> str: ...
    @property
    def sync_config(self) -> dict[str, Any]: ...


def to_view(rt: Runtime, row: StoredConnection) -> ConnectionView:
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
