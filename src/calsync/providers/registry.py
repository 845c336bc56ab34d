"""The providers a deployment offers: built-ins plus the ``[[providers]]`` of the TOML file.

Provider definitions are configuration, not data: they are read once at start-up and identified
by stable GUIDs, so connections keep pointing at the same provider across restarts.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from calsync.domain import (
    CalendarType,
    ConnectMethod,
    ListEventFromCalendars,
    ProviderFeatures,
    ProviderKind,
    SyncToCalendar,
)
from calsync.providers.base import CalendarProvider

ICLOUD_PROVIDER_ID = "9f084ae8-b3a6-4eb6-a29d-bc682c04b5fc"
ICLOUD_URL = "https://caldav.icloud.com/"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

CALDAV_FEATURES = ProviderFeatures(
    connect_methods=(ConnectMethod.CREDENTIALS,),
    update_sync_config=True,
    list_event_from_calendars=ListEventFromCalendars.SPECIFIC_CALENDARS,
    sync_to_calendar=SyncToCalendar.DEDICATED_CALENDAR,
)


class ProviderConfigError(ValueError):
    """The providers file is invalid; the message names the entry and the field."""


@dataclass(frozen=True)
class ProviderConfig:
    id: str
    name: str
    kind: ProviderKind
    calendar_type: CalendarType
    features: ProviderFeatures
    url: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def listed(self) -> bool:
        """OAuth providers without a client ID cannot be used, so they are not offered."""
        if ConnectMethod.OAUTH in self.features.connect_methods:
            return bool(self.options.get("client_id"))
        return True


AdapterFactory = Callable[[ProviderConfig], CalendarProvider]


class ProviderRegistry:
    """Provider configs by id, in listing order, and the adapter for each."""

    def __init__(self, providers: list[ProviderConfig], factory: AdapterFactory) -> None:
        self._providers = {p.id.lower(): p for p in providers}
        self._order = [p.id.lower() for p in providers]
        self._factory = factory
        self._adapters: dict[str, CalendarProvider] = {}

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


def builtin_providers() -> list[ProviderConfig]:
    return [
        ProviderConfig(
            id=ICLOUD_PROVIDER_ID,
            name="Apple iCloud",
            kind=ProviderKind.CALDAV,
            calendar_type=CalendarType.I_CAL,
            features=CALDAV_FEATURES,
            url=ICLOUD_URL,
        )
    ]


def load_providers(path: Path | None) -> list[ProviderConfig]:
    """Built-ins, overridden or extended by the file's entries (same id replaces a built-in)."""
    providers = {p.id: p for p in builtin_providers()}
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
    try:
        calendar_type = CalendarType(entry.get("calendar_type", _default_type(kind)))
    except ValueError as exc:
        raise ProviderConfigError(f"{where}.calendar_type is not a CalendarType") from exc
    url = str(entry.get("url", ""))
    if kind is ProviderKind.CALDAV and not re.match(r"^https?://[^/\s]+", url):
        raise ProviderConfigError(f"{where}.url must be an http(s) URL for a CalDAV provider")
    if kind is not ProviderKind.CALDAV:
        raise ProviderConfigError(f"{where}.kind {kind.value!r} is not available in this version")
    known = {"id", "name", "kind", "calendar_type", "url"}
    return ProviderConfig(
        id=provider_id,
        name=str(entry.get("name") or "CalDAV"),
        kind=kind,
        calendar_type=calendar_type,
        features=CALDAV_FEATURES,
        url=url,
        options={k: v for k, v in entry.items() if k not in known},
    )


def _merge(base: ProviderConfig, entry: dict[str, Any], parsed: ProviderConfig) -> ProviderConfig:
    return replace(
        base,
        name=str(entry.get("name") or base.name),
        url=str(entry.get("url") or base.url),
        options={**base.options, **parsed.options},
    )


def _default_type(kind: ProviderKind) -> str:
    return {
        ProviderKind.GOOGLE: "GOOGLE",
        ProviderKind.MICROSOFT: "MICROSOFT",
        ProviderKind.CALDAV: "OTHER",
    }[kind]
