"""Sync configuration: storage form, the provider's default, merging and feature gating (5.5)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from calsync.domain import (
    ExportConfig,
    ImportConfig,
    ListEventFromCalendars,
    ProviderFeatures,
    SyncConfig,
    SyncToCalendar,
)
from calsync.errors import NotSupportedByProvider


def to_json(config: SyncConfig) -> dict[str, Any]:
    imp, exp = config.import_, config.export
    return {
        "import": {
            "enabled": imp.enabled,
            "calendars": list(imp.calendar_ids) if imp.calendar_ids is not None else None,
        },
        "export": {
            "enabled": exp.enabled,
            "target": exp.target,
            "includeBufferTime": exp.include_buffer_time,
            "appendSingleParticipantName": exp.append_single_participant_name,
        },
    }


def from_json(data: dict[str, Any]) -> SyncConfig:
    imp, exp = data.get("import", {}), data.get("export", {})
    calendars = imp.get("calendars")
    return SyncConfig(
        import_=ImportConfig(
            enabled=bool(imp.get("enabled")),
            calendar_ids=tuple(calendars) if calendars is not None else None,
        ),
        export=ExportConfig(
            enabled=bool(exp.get("enabled")),
            target=exp.get("target"),
            include_buffer_time=exp.get("includeBufferTime"),
            append_single_participant_name=exp.get("appendSingleParticipantName"),
        ),
    )


def default_for(features: ProviderFeatures) -> SyncConfig:
    """Import from the primary calendar and export where the provider can (spec 5.5)."""
    can_import = features.list_event_from_calendars not in (
        ListEventFromCalendars.NOT_SUPPORTED,
        ListEventFromCalendars.UNDEFINED,
    )
    export_target = {
        SyncToCalendar.PRIMARY_CALENDAR_ONLY: "primary",
        SyncToCalendar.SPECIFIC_CALENDAR: "primary",
        SyncToCalendar.DEDICATED_CALENDAR: "dedicated",
    }.get(features.sync_to_calendar)
    return SyncConfig(
        import_=ImportConfig(enabled=can_import, calendar_ids=None),
        export=ExportConfig(enabled=export_target is not None, target=export_target),
    )


def with_default_target(config: SyncConfig, features: ProviderFeatures) -> SyncConfig:
    """Export enabled without a target goes where the provider's default would."""
    if config.export.enabled and config.export.target is None:
        target = default_for(features).export.target
        return replace(config, export=replace(config.export, target=target))
    return config


def merge(
    current: SyncConfig,
    requested: SyncConfig,
    *,
    present: set[str],
    field_mask: list[str] | None,
) -> SyncConfig:
    """Apply an update. ``present`` names the top-level sub-objects in the request body
    (``listEventFromCalendars``, ``syncToCalendar``); ``field_mask`` holds normalised paths
    such as ``listEventFromCalendars.enabled`` and, when given, is authoritative."""
    if field_mask is None:
        imp = requested.import_ if "listEventFromCalendars" in present else current.import_
        exp = requested.export if "syncToCalendar" in present else current.export
        return SyncConfig(import_=imp, export=exp)
    imp, exp = current.import_, current.export
    for path in field_mask:
        head, _, leaf = path.partition(".")
        if head == "listEventFromCalendars":
            imp = _merge_import(imp, requested.import_, leaf)
        elif head == "syncToCalendar":
            exp = _merge_export(exp, requested.export, leaf)
    return SyncConfig(import_=imp, export=exp)


def _merge_import(current: ImportConfig, requested: ImportConfig, leaf: str) -> ImportConfig:
    if leaf == "":
        return requested
    if leaf == "enabled":
        return replace(current, enabled=requested.enabled)
    if leaf in ("primaryCalendar", "calendars"):
        return replace(current, calendar_ids=requested.calendar_ids)
    return current


def _merge_export(current: ExportConfig, requested: ExportConfig, leaf: str) -> ExportConfig:
    if leaf == "":
        return requested
    if leaf == "enabled":
        return replace(current, enabled=requested.enabled)
    if leaf in ("primaryCalendar", "dedicatedCalendar"):
        return replace(current, target=requested.target)
    if leaf == "includeBufferTime":
        return replace(current, include_buffer_time=requested.include_buffer_time)
    if leaf == "appendSingleParticipantNameToEventSummary":
        return replace(
            current, append_single_participant_name=requested.append_single_participant_name
        )
    return current


def check_supported(config: SyncConfig, features: ProviderFeatures) -> None:
    """NotSupportedByProvider when the provider cannot do what ``config`` asks (spec 5.5)."""
    if not features.update_sync_config:
        raise NotSupportedByProvider("this provider does not allow changing the sync config")
    imp, exp = config.import_, config.export
    lef = features.list_event_from_calendars
    if imp.enabled and lef in (
        ListEventFromCalendars.NOT_SUPPORTED,
        ListEventFromCalendars.UNDEFINED,
    ):
        raise NotSupportedByProvider("this provider cannot import events")
    if imp.calendar_ids is not None and lef is not ListEventFromCalendars.SPECIFIC_CALENDARS:
        raise NotSupportedByProvider("this provider imports only from the primary calendar")
    stc = features.sync_to_calendar
    if exp.enabled and stc in (SyncToCalendar.NOT_SUPPORTED, SyncToCalendar.UNDEFINED):
        raise NotSupportedByProvider("this provider cannot export sessions")
    if exp.target == "primary" and stc not in (
        SyncToCalendar.PRIMARY_CALENDAR_ONLY,
        SyncToCalendar.SPECIFIC_CALENDAR,
    ):
        raise NotSupportedByProvider("this provider cannot export into the primary calendar")
    if exp.target == "dedicated" and stc is not SyncToCalendar.DEDICATED_CALENDAR:
        raise NotSupportedByProvider("this provider cannot export into a dedicated calendar")
