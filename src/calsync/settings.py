"""All configuration, read from ``CALSYNC_*`` environment variables; nothing else reads the env."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """calsync settings. Each field is the environment variable ``CALSYNC_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="CALSYNC_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".calsync"), description="Where the embedded database and key files live."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite file calsync.db in the data directory.",
    )
    providers_file: Path | None = Field(
        default=None, description="TOML file with [[providers]] entries (CalDAV servers, OAuth)."
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address `calsync serve` listens on (its --host wins; 0.0.0.0: every one).",
    )
    port: int = Field(
        default=8000, description="Port `calsync serve` listens on (its --port wins)."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL where browsers and providers reach this service. Unset, "
        "`calsync serve` uses the address and port it listens on.",
    )
    encryption_keys: str | None = Field(
        default=None,
        description="Comma-separated Fernet keys; the first encrypts, all decrypt (rotation). "
        "Default: a key file 'secret.key' (mode 0600) created in the data directory.",
    )
    cursor_secret: str | None = Field(
        default=None,
        description="Key that signs List Events cursors. Default: derived from the encryption key.",
    )
    freshness_seconds: float = Field(
        default=60.0,
        description="Data older than this is stale: a read still answers from the store and "
        "refreshes the connection in the background.",
    )
    check_interval_seconds: float = Field(
        default=30.0,
        description="How often a CalDAV or iCloud connection is asked whether anything changed "
        "(one cheap request per account; 0 turns change checks off).",
    )
    sync_time_budget_seconds: float = Field(
        default=8.0,
        description="How long List Events waits for a connection's first sync (or the sync of "
        "a new calendar selection) before failing it.",
    )
    horizon_past_days: int = Field(default=90, description="Imported instances kept back in time.")
    horizon_future_days: int = Field(default=400, description="Imported instances kept ahead.")
    feed_allow_private: bool = Field(
        default=False,
        description="Let iCalendar feeds (`ics` providers) live on loopback, private or "
        "link-local addresses (tests, private networks); refused by default.",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks use http:// URLs and hosts on loopback, private or "
        "link-local addresses (tests, private networks); refused by default.",
    )
    webhook_threads: int = Field(
        default=8, description="Webhook deliveries one worker sends at the same time."
    )
    provider_timeout_seconds: float = Field(
        default=10.0,
        description="How long one read from an external calendar server may wait; a whole "
        "request, answer included, may take three times this.",
    )
    cursor_ttl_seconds: int = Field(default=3600, description="Lifetime of a List Events cursor.")
    log_level: str = Field(default="INFO", description="Log level of the JSON logs.")
    poll_interval_seconds: float = Field(
        default=300.0, description="A connected calendar is re-read at least this often."
    )
    worker_threads: int = Field(default=4, description="Connections one worker syncs at once.")
    worker_tick_seconds: float = Field(
        default=1.0, description="How often a worker looks for due connections."
    )
    lease_seconds: float = Field(
        default=120.0, description="A claimed connection is another worker's after this long."
    )
    provider_concurrency: int = Field(
        default=8, description="Syncs of one provider that one worker runs at the same time."
    )
    retry_base_seconds: float = Field(default=5.0, description="First retry after a failure.")
    retry_max_seconds: float = Field(default=900.0, description="Longest wait between retries.")
    error_threshold: int = Field(
        default=5, description="Consecutive failed syncs before a connection shows ERROR."
    )
    push_channel_ttl_seconds: int = Field(
        default=7 * 24 * 3600,
        description="Requested lifetime of push channels (providers may shorten it).",
    )
    push_renew_before_seconds: int = Field(
        default=6 * 3600, description="Push channels are renewed this long before they expire."
    )
    export_calendar_name: str = Field(
        default="Bookings",
        description="Name of the dedicated calendar calsync creates for exported sessions.",
    )
    export_recreate_deleted_calendar: bool = Field(
        default=False,
        description="Recreate a deleted dedicated calendar instead of reporting "
        "EXTERNAL_CALENDAR_DELETED.",
    )
    oauth_redirect_origins: str | None = Field(
        default=None,
        description='JSON object: tenant -> allowed redirectUrl origins ("*" for every tenant), '
        'e.g. {"*": ["https://app.example.com"]}. Default: any origin (a warning at start).',
    )
    oauth_state_ttl_seconds: int = Field(
        default=900, description="How long an OAuth authorization request stays valid."
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, GET /metrics requires the header "
        "'Authorization: Bearer <token>'. Default: /metrics is open (restrict it at a proxy).",
    )
    auth_failures_per_minute: int = Field(
        default=30,
        description="Failed authentications (API keys, dashboard sign-ins, sign-in links) one "
        "client address or key prefix may make per minute before it gets 429 (0: no limit).",
    )
    tenant_requests_per_second: float = Field(
        default=1000.0,
        description="API calls one tenant may make per second and server process, twice that "
        "in a burst, before it gets 429 (0: no limit).",
    )
    admin_tenant: str | None = Field(
        default=None,
        description="Tenant whose admin gets a one-time dashboard sign-in link printed when "
        "calsync serve starts.",
    )

    def push_enabled(self) -> bool:
        """Providers can only notify a public https URL; without one calsync polls."""
        return self.public_url.lower().startswith("https://")

    def redirect_origins(self) -> dict[str, list[str]] | None:
        """The allowed redirect origins per tenant, or None when any origin is allowed."""
        if not self.oauth_redirect_origins:
            return None
        parsed = json.loads(self.oauth_redirect_origins)
        if not isinstance(parsed, dict):
            raise ValueError("CALSYNC_OAUTH_REDIRECT_ORIGINS must be a JSON object")
        return {str(k): [str(o).rstrip("/").lower() for o in v] for k, v in parsed.items()}

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'calsync.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_table() -> str:
    """The README's settings table, generated from this module so it cannot drift."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = "" if info.default is None else str(info.default)
        rows.append(f"| `CALSYNC_{name.upper()}` | `{default}` | {info.description or ''} |")
    return "\n".join(rows)
