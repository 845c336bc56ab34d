"""The long-lived objects one calsync process shares: settings, database, providers, keys."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from calsync.crypto import SecretBox, load_keys
from calsync.metrics import Metrics
from calsync.providers.base import CalendarProvider, ExternalCalendar
from calsync.providers.kinds import AdapterSettings
from calsync.providers.registry import (
    ProviderConfig,
    ProviderRegistry,
    kind_spec,
    load_providers,
)
from calsync.settings import Settings
from calsync.store.db import make_engine, make_loop_engine, make_session_factory
from calsync.store.unit import Store

T = TypeVar("T")


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    db: sessionmaker[Session]
    store: Store
    providers: ProviderRegistry
    secrets: SecretBox
    cursor_key: bytes
    # Reads on the event loop itself (SQLite only, see store.db.make_loop_engine), else None.
    loop_engine: Engine | None = None
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="calsync-bg")
    )
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()[:40]}:{os.getpid()}")
    # Set when a connection becomes due, so an in-process worker starts at once.
    work_available: threading.Event = field(default_factory=threading.Event)
    calendar_cache: dict[str, tuple[float, list[ExternalCalendar]]] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    # Background refreshes of stale connections (service.sync.refresh): their own threads, so
    # that a slow provider's refresh never holds up a first sync that a read waits for.
    refresh_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="calsync-refresh"
        )
    )
    refreshing: dict[str, Future[None]] = field(default_factory=dict)
    refreshing_tenants: dict[str, str] = field(default_factory=dict)  # connection -> tenant
    # Connection id -> when this process first heard of a change not yet in the store (a
    # push notification or a change check): the start of its change-to-visible time.
    changes_heard: dict[str, datetime] = field(default_factory=dict)
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock)

    def lock(self, purpose: str, key: str) -> threading.Lock:
        """A process-wide lock per (purpose, key), e.g. one sync or token refresh per connection."""
        with self._locks_guard:
            return self._locks.setdefault((purpose, key), threading.Lock())

    def heard_of_change(self, connection_id: str, moment: datetime) -> None:
        """A change was announced at ``moment`` (the first announcement counts)."""
        self.changes_heard.setdefault(connection_id, moment)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        return self.background.submit(fn)

    def close(self) -> None:
        self.refresh_pool.shutdown(wait=True, cancel_futures=True)
        self.background.shutdown(wait=True, cancel_futures=True)
        self.providers.close()
        self.engine.dispose()
        if self.loop_engine is not None:
            self.loop_engine.dispose()


def default_adapter_factory(settings: Settings) -> Callable[[ProviderConfig], CalendarProvider]:
    """Adapters as each provider's kind spec builds them, with the deployment's settings."""
    adapter_settings = AdapterSettings(
        timeout=settings.provider_timeout_seconds,
        horizon_past_days=settings.horizon_past_days,
        horizon_future_days=settings.horizon_future_days,
        feed_allow_private=settings.feed_allow_private,
    )

    def factory(provider: ProviderConfig) -> CalendarProvider:
        return kind_spec(provider.kind).build_adapter(provider, adapter_settings)

    return factory


def build_runtime(
    settings: Settings,
    *,
    adapter_factory: Callable[[ProviderConfig], CalendarProvider] | None = None,
    extra_providers: Sequence[ProviderConfig] = (),
) -> Runtime:
    """The runtime of ``settings``; ``extra_providers`` are offered besides the configured ones
    (``calsync serve --demo`` adds its local CalDAV server this way)."""
    url = settings.resolved_database_url()
    engine = make_engine(url)
    secrets = SecretBox(load_keys(settings))
    cursor_key = (
        settings.cursor_secret.encode()
        if settings.cursor_secret
        else secrets.derive_key("list-events-cursor")
    )
    registry = ProviderRegistry(
        load_providers(settings.providers_file, extra_providers),
        adapter_factory or default_adapter_factory(settings),
        timeout=settings.provider_timeout_seconds,
    )
    db = make_session_factory(engine)
    loop_engine = make_loop_engine(url)
    return Runtime(
        settings=settings,
        engine=engine,
        db=db,
        store=Store(engine, db, loop_engine),
        providers=registry,
        secrets=secrets,
        cursor_key=cursor_key,
        loop_engine=loop_engine,
    )
