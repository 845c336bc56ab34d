"""Database tables. Times are aware UTC datetimes; instance bounds are epoch milliseconds so
the hot List Events range query compares integers on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from calsync.tz import utcnow as utcnow  # re-exported: store modules take it from here


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, whatever the backend does with zones."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    identity_type: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[str | None] = mapped_column(String(36))
    app_id: Mapped[str | None] = mapped_column(String(36))
    permissions: Mapped[dict[str, Any]] = mapped_column()
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class Schedule(Base):
    __tablename__ = "schedules"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_user_id: Mapped[str | None] = mapped_column(String(36), index=True)
    owner_name: Mapped[str] = mapped_column(String(300), default="")
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Connection(Base):
    __tablename__ = "connections"
    __table_args__ = (
        Index("ix_connections_tenant_schedule", "tenant_id", "schedule_id"),
        Index("ix_connections_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    provider_id: Mapped[str] = mapped_column(String(36))
    schedule_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str | None] = mapped_column(String(36))
    app_id: Mapped[str | None] = mapped_column(String(36))
    external_account_email: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(20))
    error_reason: Mapped[str] = mapped_column(String(40), default="UNDEFINED")
    sync_config: Mapped[dict[str, Any]] = mapped_column()
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    account_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_synced_at: Mapped[datetime | None] = mapped_column()
    # Set whenever something requires a new sync (connect, config change); the connection is
    # due while last_synced_at is older. Written only by requesters, never by the sync.
    sync_requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when a session of the schedule changed (something to export); like sync_requested_at,
    # a change during a run keeps the connection due. Not a reason to freshen List Events.
    export_requested_at: Mapped[datetime | None] = mapped_column()
    # Worker scheduling: when the connection is next due, who holds it, consecutive failures.
    next_sync_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    failure_count: Mapped[int] = mapped_column(Integer, default=0)
    last_sync_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # No stored instance of the connection lasts longer (raised as instances are written; None:
    # unknown). List Events starts its index range at ``from - max_instance_ms``.
    max_instance_ms: Mapped[int | None] = mapped_column(BigInteger)
    # Up to when the store is known to match the provider (migration 0011): a successful
    # sync's start, or a later change check or healthy push channel that found nothing new.
    fresh_as_of: Mapped[datetime | None] = mapped_column()
    # When the cheap change check is due (None: the connection has none).
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    # What the last connection.status_changed message said (migration 0012); None: nothing
    # announced yet (a new connection is CONNECTED, which needs no message).
    announced_status: Mapped[str | None] = mapped_column(String(20), default="CONNECTED")
    announced_error_reason: Mapped[str | None] = mapped_column(String(40), default="UNDEFINED")
    # The span of busy times changed by syncs and not yet announced (busy_times.changed).
    changed_from_ms: Mapped[int | None] = mapped_column(BigInteger)
    changed_to_ms: Mapped[int | None] = mapped_column(BigInteger)


class ConnectionCalendar(Base):
    """A calendar of a connected account that calsync imports, with its sync cursor."""

    __tablename__ = "connection_calendars"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    calendar_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), default="")
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    cursor: Mapped[str | None] = mapped_column(Text)
    synced_at: Mapped[datetime | None] = mapped_column()
    # The UTC day whose rolling horizon the stored instances were expanded for; on a new day
    # the calendar is read in full once, which moves the horizon forward.
    horizon_day: Mapped[str | None] = mapped_column(String(10))


class ImportedObject(Base):
    """One external calendar object (a UID with its overrides) as last read, kept so that
    instances can be re-expanded without asking the provider again."""

    __tablename__ = "event_resources"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    calendar_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    etag: Mapped[str] = mapped_column(String(300))
    ical: Mapped[str] = mapped_column(Text)


# The columns of a List Events page besides the index key (PostgreSQL's INCLUDE; migration 0008).
PAGE_INCLUDE = [
    "schedule_id",
    "calendar_id",
    "instance_key",
    "all_day",
    "start_date",
    "end_date",
    "title",
]


class EventInstance(Base):
    """One busy block: an expanded occurrence of an imported event."""

    __tablename__ = "event_instances"
    __table_args__ = (
        Index("ix_event_instances_resource", "connection_id", "calendar_id", "resource_key"),
        # List Events: the selected connections' instances in start order; with end_ms in the
        # index the overlap test needs no heap rows (bench/README.md has the plans). On
        # PostgreSQL it also carries the page's other columns, so a page is an index-only
        # scan: the heap visits were most of the database's CPU per List Events call.
        # SQLite has no INCLUDE: there migration 0009 makes the same columns trailing key
        # columns, for the same reason (this declaration is the PostgreSQL shape).
        Index(
            "ix_event_instances_connection_start",
            "connection_id",
            "start_ms",
            "end_ms",
            postgresql_include=PAGE_INCLUDE,
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    schedule_id: Mapped[str] = mapped_column(String(36))
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    provider_id: Mapped[str] = mapped_column(String(36))
    calendar_id: Mapped[str] = mapped_column(String(512))
    resource_key: Mapped[str] = mapped_column(String(1024))
    instance_key: Mapped[str] = mapped_column(String(1024))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    all_day: Mapped[bool] = mapped_column(Boolean)
    start_date: Mapped[str | None] = mapped_column(String(10))
    end_date: Mapped[str | None] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(Text, default="")


class OAuthAttempt(Base):
    """A pending Connect By OAuth: what the callback needs, keyed by the hash of ``state``."""

    __tablename__ = "oauth_attempts"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    schedule_id: Mapped[str] = mapped_column(String(36))
    provider_id: Mapped[str] = mapped_column(String(36))
    redirect_url: Mapped[str] = mapped_column(Text)
    caller_user_id: Mapped[str | None] = mapped_column(String(36))
    caller_app_id: Mapped[str | None] = mapped_column(String(36))
    code_verifier: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column()


class PushChannelRow(Base):
    """A provider push channel (Google) or subscription (Graph) watching one imported calendar.
    Only the hash of the shared secret is kept: notifications are checked against it."""

    __tablename__ = "push_channels"

    channel_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), index=True
    )
    calendar_id: Mapped[str] = mapped_column(String(512))
    resource_id: Mapped[str] = mapped_column(String(300), default="")
    secret_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlatformSession(Base):
    """A session (booking, class) of a schedule as the platform last sent it: the desired
    state of the export. ``revision`` grows with every change that alters the exported event.
    ``start_ms``/``end_ms`` bound it in time (all-day sessions: local midnights in
    ``time_zone``), for window queries and the export horizon."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_schedule_start", "tenant_id", "schedule_id", "start_ms"),)

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    schedule_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(12))
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    start_date: Mapped[str | None] = mapped_column(String(10))
    end_date: Mapped[str | None] = mapped_column(String(10))
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    location: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExportTarget(Base):
    """Where a connection exports to. ``calendar_id`` is the current target (None while export
    is off or not resolved yet); the dedicated calendar is remembered apart, with whether
    calsync created it, so switching targets back and forth reuses it. ``cursor`` follows the
    target calendar's changes, to notice exported events the account owner edited."""

    __tablename__ = "export_targets"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    target: Mapped[str | None] = mapped_column(String(16))
    calendar_id: Mapped[str | None] = mapped_column(String(512))
    cursor: Mapped[str | None] = mapped_column(Text)
    dedicated_calendar_id: Mapped[str | None] = mapped_column(String(512))
    dedicated_created: Mapped[bool] = mapped_column(Boolean, default=False)
    # Marks the dedicated calendar being created, so a retry after a crash finds it.
    dedicated_key: Mapped[str | None] = mapped_column(String(32))
    external_edits: Mapped[int] = mapped_column(Integer, default=0)
    last_external_edit_at: Mapped[datetime | None] = mapped_column()
    exported_at: Mapped[datetime | None] = mapped_column()


class ExportedEvent(Base):
    """The mapping of one session to the event calsync wrote for it. ``external_id`` None:
    a create was started and not confirmed (a crash may have left the event behind; it is
    looked up by ``uid`` before anything is written again)."""

    __tablename__ = "exported_events"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    calendar_id: Mapped[str] = mapped_column(String(512))
    uid: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(1024))
    etag: Mapped[str | None] = mapped_column(String(300))
    revision: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The provider refused this event on its own: how often in a row, when to try again, and
    # for which session revision (a changed session is tried at once).
    refusals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_at: Mapped[datetime | None] = mapped_column(default=None)
    refused_revision: Mapped[int | None] = mapped_column(Integer, default=None)


class DashboardSigninLink(Base):
    """A one-time dashboard sign-in link as the tenant's admin; only the token's hash is kept."""

    __tablename__ = "dashboard_signin_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column()


class DashboardSession(Base):
    """A signed-in dashboard browser, keyed by the hash of its cookie. ``key_id`` is the API key
    it signed in with (None for a sign-in link): revoking the key ends the session."""

    __tablename__ = "dashboard_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    identity_type: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[str | None] = mapped_column(String(36))
    app_id: Mapped[str | None] = mapped_column(String(36))
    key_id: Mapped[str | None] = mapped_column(String(32))
    permissions: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None] = mapped_column()


class PendingRetirement(Base):
    """A disconnected connection whose clean-up (removing what calsync exported, revoking the
    OAuth grant) is still to be done. It holds the sealed secret the clean-up needs, taken from
    the connection when it was disconnected, and is deleted when the clean-up is done: a crash
    in between leaves the row, and a worker finishes the job."""

    __tablename__ = "retirements"

    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    provider_id: Mapped[str] = mapped_column(String(36))
    email: Mapped[str] = mapped_column(String(320), default="")
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    account_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Webhook(Base):
    """A tenant's subscription to calsync's change messages (``/v1/webhooks``). ``secret`` is
    encrypted; during a rotation ``previous_secret`` signs too, until ``previous_secret_until``.
    ``failing_since``: the first failed attempt since the last success (5 days of it disable)."""

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(500), default="", server_default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_until: Mapped[datetime | None] = mapped_column()
    failing_since: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One message to one webhook: the outbox row and its delivery log. ``id`` is the message
    id (header ``webhook-id``). ``round_start``: ``attempts`` when the current retry schedule
    began (a redelivery starts a new round). ``next_attempt_at`` None: nothing more to do; a
    claimed delivery has it pushed ahead, so a worker killed mid-attempt retries it later."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_webhook_id_created_at", "webhook_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    round_start: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[datetime | None] = mapped_column()
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
