"""The providers a deployment offers: built-ins plus the ``[[providers]]`` of the TOML file.

The kinds of provider are a table (``KINDS``) of the kind specs the provider packages export.

Provider definitions are configuration, not data: they are read once at start-up and identified
by stable GUIDs, so connections keep pointing at the same provider across restarts.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from calsync.domain import (
    CalendarType,
    ListEventFromCalendars,
    ProviderFeatures,
    ProviderKind,
    SyncToCalendar,
)
from calsync.providers import caldav, google, ics, microsoft
from calsync.providers.base import CalendarProvider
from calsync.providers.kinds import ProviderConfig, ProviderKindSpec, PushReceiver
from calsync.providers.oauth2 import OAuthClient

__all__ = [
    "CALDAV_FEATURES",
    "GOOGLE_PROVIDER_ID",
    "ICLOUD_PROVIDER_ID",
    "KINDS",
    "MICROSOFT_PROVIDER_ID",
    "ProviderConfig",
    "ProviderConfigError",
    "ProviderRegistry",
    "kind_spec",
    "load_providers",
    "push_receiver",
]

ICLOUD_PROVIDER_ID = "9f084ae8-b3a6-4eb6-a29d-bc682c04b5fc"
GOOGLE_PROVIDER_ID = "6f1c1f8e-3c1a-4a40-9a49-0f2b2a6f1b01"
MICROSOFT_PROVIDER_ID = "6f1c1f8e-3c1a-4a40-9a49-0f2b2a6f1b02"
ICLOUD_URL = "https://caldav.icloud.com/"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# The provider kinds, one spec per provider package.
KINDS: dict[ProviderKind, ProviderKindSpec] = {
    spec.kind: spec
    for spec in (google.KIND_SPEC, microsoft.KIND_SPEC, caldav.KIND_SPEC, ics.KIND_SPEC)
}
CALDAV_FEATURES = caldav.KIND_SPEC.features


class ProviderConfigError(ValueError):
    """The providers file is invalid; the message names the entry and the field."""


def kind_spec(kind: ProviderKind) -> ProviderKindSpec:
    """The spec of a provider kind (every ``ProviderKind`` has one)."""
    return KINDS[kind]


def push_receiver(kind: str) -> PushReceiver | None:
    """How the provider kind named ``kind`` (as in ``/push/{kind}``) delivers notifications;
    None for an unknown kind or one without push."""
    try:
        return KINDS[ProviderKind(kind)].push
    except ValueError:
        return None


AdapterFactory = Callable[[ProviderConfig], CalendarProvider]


class ProviderRegistry:
    """Provider configs by id, in listing order, and the adapter for each."""

    def __init__(
        self, providers: list[ProviderConfig], factory: AdapterFactory, *, timeout: float = 10.0
    ) -> None:
        self._providers = {p.id.lower(): p for p in providers}
        self._order = [p.id.lower() for p in providers]
        self._factory = factory
        self._timeout = timeout
        self._adapters: dict[str, CalendarProvider] = {}
        self._oauth: dict[str, OAuthClient] = {}

    def all(self) -> list[ProviderConfig]:
        return [self._providers[i] for i in self._order]

    def listed(self) -> list[ProviderConfig]:
        return [p for p in self.all() if p.listed]

    def get(self, provider_id: str) -> ProviderConfig | None:
        provider = self._providers.get(provider_id.lower())
        return provider if provider is not None and provider.listed else None

    def adapter(self, provider: ProviderConfig) -> CalendarProvider:
        key = provider.id.lower()
        if key not in self._adapters:
            self._adapters[key] = self._factory(provider)
        return self._adapters[key]

    def oauth_client(self, provider: ProviderConfig) -> OAuthClient:
        """The OAuth 2.0 client of an OAuth provider, built from its options."""
        key = provider.id.lower()
        if key not in self._oauth:
            build = kind_spec(provider.kind).oauth_client
            if build is None:
                raise ValueError(f"provider {provider.name!r} does not connect by OAuth")
            self._oauth[key] = build(provider, self._timeout)
        return self._oauth[key]

    def close(self) -> None:
        for client in self._oauth.values():
            client.close()
        self._oauth.clear()


def builtin_providers() -> list[ProviderConfig]:
    """Google, Microsoft (listed once a client_id is configured) and Apple iCloud."""
    return [
        ProviderConfig(
            id=GOOGLE_PROVIDER_ID,
            name="Google",
            kind=ProviderKind.GOOGLE,
            calendar_type=CalendarType.GOOGLE,
            features=google.KIND_SPEC.features,
            options=_oauth_options(google.KIND_SPEC.defaults, {}),
        ),
        ProviderConfig(
            id=MICROSOFT_PROVIDER_ID,
            name="Microsoft",
            kind=ProviderKind.MICROSOFT,
            calendar_type=CalendarType.MICROSOFT,
            features=microsoft.KIND_SPEC.features,
            options=_oauth_options(microsoft.KIND_SPEC.defaults, {}),
        ),
        ProviderConfig(
            id=ICLOUD_PROVIDER_ID,
            name="Apple iCloud",
            kind=ProviderKind.CALDAV,
            calendar_type=CalendarType.I_CAL,
            features=CALDAV_FEATURES,
            url=ICLOUD_URL,
        ),
    ]


def _oauth_options(defaults: Mapping[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Every endpoint has the provider's real default; ``{tenant}`` is filled in."""
    options = {**defaults, **given}
    tenant = str(options.get("tenant", ""))
    for key in ("authorize_url", "token_url", "revoke_url"):
        options[key] = str(options.get(key, "")).replace("{tenant}", tenant)
    return options


def load_providers(path: Path | None, extra: Sequence[ProviderConfig] = ()) -> list[ProviderConfig]:
    """Built-ins and ``extra`` (e.g. the demo's CalDAV server, configured without a file),
    overridden or extended by the file's entries (same id replaces a built-in)."""
    providers = {p.id: p for p in [*builtin_providers(), *extra]}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ProviderConfigError(f"cannot read providers file {path}: {exc}") from exc
        for index, entry in enumerate(document.get("providers", [])):
            provider = _parse_entry(index, entry)
            base = providers.get(provider.id)
            providers[provider.id] = provider if base is None else _merge(base, entry, provider)
    return list(providers.values())


def _parse_entry(index: int, entry: dict[str, Any]) -> ProviderConfig:
    where = f"providers[{index}]"
    provider_id = str(entry.get("id", "")).lower()
    if not _GUID.match(provider_id):
        raise ProviderConfigError(f"{where}.id must be a GUID")
    try:
        kind = ProviderKind(entry.get("kind", ""))
    except ValueError as exc:
        raise ProviderConfigError(f"{where}.kind must be google, microsoft or caldav") from exc
    spec = kind_spec(kind)
    try:
        calendar_type = CalendarType(entry.get("calendar_type", spec.calendar_type.value))
    except ValueError as exc:
        raise ProviderConfigError(f"{where}.calendar_type is not a CalendarType") from exc
    url = str(entry.get("url", ""))
    if spec.needs_url and not re.match(r"^https?://[^/\s]+", url):
        raise ProviderConfigError(
            f"{where}.url must be an http(s) URL for a {spec.default_name} provider"
        )
    known = {"id", "name", "kind", "calendar_type", "url", *_FEATURE_KEYS}
    given = {k: v for k, v in entry.items() if k not in known}
    return ProviderConfig(
        id=provider_id,
        name=str(entry.get("name") or spec.default_name),
        kind=kind,
        calendar_type=calendar_type,
        features=_features(where, spec.features, entry),
        url=url,
        options=_oauth_options(spec.defaults, given) if spec.defaults else given,
    )


_FEATURE_KEYS = ("list_event_from_calendars", "sync_to_calendar", "update_sync_config")


def _features(where: str, base: ProviderFeatures, entry: dict[str, Any]) -> ProviderFeatures:
    """The kind's features, with the entry's overrides."""
    try:
        return replace(
            base,
            list_event_from_calendars=ListEventFromCalendars(
                entry.get("list_event_from_calendars", base.list_event_from_calendars.value)
            ),
            sync_to_calendar=SyncToCalendar(
                entry.get("sync_to_calendar", base.sync_to_calendar.value)
            ),
            update_sync_config=bool(entry.get("update_sync_config", base.update_sync_config)),
        )
    except ValueError as exc:
        raise ProviderConfigError(f"{where}: {exc}") from exc


def _merge(base: ProviderConfig, entry: dict[str, Any], parsed: ProviderConfig) -> ProviderConfig:
    """A file entry with a built-in's id configures that built-in (e.g. its client_id)."""
    given = {k: v for k, v in entry.items() if k not in {"id", "name", "kind", "url"}}
    return replace(
        parsed,
        name=str(entry.get("name") or base.name),
        url=str(entry.get("url") or base.url),
        calendar_type=CalendarType(entry.get("calendar_type", base.calendar_type.value)),
        features=_features("provider", base.features, entry),
        options={**base.options, **parsed.options} if base.options else dict(given),
    )
