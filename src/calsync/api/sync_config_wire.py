"""``ConnectionSyncConfig`` on the wire (spec 2.3): parse a request, render a response."""

from __future__ import annotations

from typing import Any

from calsync.domain import ExportConfig, ImportConfig, SyncConfig
from calsync.errors import ViolationCollector

ROOT = "syncConfig"
IMPORT = "listEventFromCalendars"
EXPORT = "syncToCalendar"
MASK_LEAVES = {
    IMPORT: {"", "enabled", "primaryCalendar", "calendars", "calendars.calendars"},
    EXPORT: {
        "",
        "enabled",
        "primaryCalendar",
        "dedicatedCalendar",
        "includeBufferTime",
        "appendSingleParticipantNameToEventSummary",
    },
}


def render(config: SyncConfig) -> dict[str, Any]:
    imp: dict[str, Any] = {"enabled": config.import_.enabled}
    if config.import_.calendar_ids is None:
        imp["primaryCalendar"] = {}
    else:
        imp["calendars"] = {"calendars": [{"id": c} for c in config.import_.calendar_ids]}
    exp: dict[str, Any] = {"enabled": config.export.enabled}
    if config.export.target == "primary":
        exp["primaryCalendar"] = {}
    elif config.export.target == "dedicated":
        exp["dedicatedCalendar"] = {}
    if config.export.include_buffer_time is not None:
        exp["includeBufferTime"] = config.export.include_buffer_time
    if config.export.append_single_participant_name is not None:
        exp["appendSingleParticipantNameToEventSummary"] = (
            config.export.append_single_participant_name
        )
    return {IMPORT: imp, EXPORT: exp}


def parse(v: ViolationCollector, body: dict[str, Any]) -> tuple[SyncConfig, set[str]]:
    """The requested config and which top-level sub-objects were present."""
    raw = body.get(ROOT)
    if not isinstance(raw, dict):
        v.add(
            ROOT,
            "is required" if raw is None else "must be an object",
            "REQUIRED_FIELD" if raw is None else "FORMAT",
        )
        return SyncConfig(), set()
    present = {k for k in (IMPORT, EXPORT) if raw.get(k) is not None}
    return SyncConfig(
        import_=_parse_import(v, raw.get(IMPORT)), export=_parse_export(v, raw.get(EXPORT))
    ), present


def _object(v: ViolationCollector, field: str, value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        v.add(field, "must be an object", "FORMAT")
        return None
    return value


def _flag(v: ViolationCollector, field: str, value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    v.add(field, "must be true or false", "FORMAT")
    return None


def _parse_import(v: ViolationCollector, value: object) -> ImportConfig:
    base = f"{ROOT}.{IMPORT}"
    raw = _object(v, base, value)
    if raw is None:
        return ImportConfig()
    enabled = _flag(v, f"{base}.enabled", raw.get("enabled")) or False
    primary = _object(v, f"{base}.primaryCalendar", raw.get("primaryCalendar"))
    wrapper = _object(v, f"{base}.calendars", raw.get("calendars"))
    if primary is not None and wrapper is not None:
        v.add(base, "set either primaryCalendar or calendars, not both", "ONEOF")
        return ImportConfig(enabled=enabled)
    if wrapper is None:
        return ImportConfig(enabled=enabled, calendar_ids=None)
    entries = wrapper.get("calendars")
    if not isinstance(entries, list):
        v.add(f"{base}.calendars.calendars", "must be an array", "REQUIRED_FIELD")
        return ImportConfig(enabled=enabled)
    if len(entries) > 100:
        v.add(f"{base}.calendars.calendars", "must hold at most 100 calendars", "MAX_SIZE")
        return ImportConfig(enabled=enabled)
    ids: list[str] = []
    for index, entry in enumerate(entries):
        field = f"{base}.calendars.calendars[{index}].id"
        cid = entry.get("id", entry.get("_id")) if isinstance(entry, dict) else None
        if not isinstance(cid, str) or not cid or len(cid) > 512:
            v.add(field, "must be a calendar id from List Calendars", "REQUIRED_FIELD")
        else:
            ids.append(cid)
    return ImportConfig(enabled=enabled, calendar_ids=tuple(dict.fromkeys(ids)))


def _parse_export(v: ViolationCollector, value: object) -> ExportConfig:
    base = f"{ROOT}.{EXPORT}"
    raw = _object(v, base, value)
    if raw is None:
        return ExportConfig()
    enabled = _flag(v, f"{base}.enabled", raw.get("enabled")) or False
    primary = _object(v, f"{base}.primaryCalendar", raw.get("primaryCalendar"))
    dedicated = _object(v, f"{base}.dedicatedCalendar", raw.get("dedicatedCalendar"))
    if primary is not None and dedicated is not None:
        v.add(base, "set either primaryCalendar or dedicatedCalendar, not both", "ONEOF")
    target = "primary" if primary is not None else "dedicated" if dedicated is not None else None
    return ExportConfig(
        enabled=enabled,
        target=target,
        include_buffer_time=_flag(v, f"{base}.includeBufferTime", raw.get("includeBufferTime")),
        append_single_participant_name=_flag(
            v,
            f"{base}.appendSingleParticipantNameToEventSummary",
            raw.get("appendSingleParticipantNameToEventSummary"),
        ),
    )


def parse_field_mask(v: ViolationCollector, value: object) -> list[str] | None:
    """``fieldMask`` as "a,b", ["a","b"] or {"paths": [...]}; a "syncConfig." prefix is optional."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        value = value.get("paths")
    if isinstance(value, str):
        paths = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, list) and all(isinstance(p, str) for p in value):
        paths = [p.strip() for p in value if p.strip()]
    else:
        v.add("fieldMask", "must be a comma-separated string or a list of paths", "FORMAT")
        return None
    normalised = []
    for path in paths:
        path = path.removeprefix(f"{ROOT}.")
        if path == ROOT:
            normalised.extend([IMPORT, EXPORT])
            continue
        head, _, leaf = path.partition(".")
        if head not in MASK_LEAVES or leaf not in MASK_LEAVES[head]:
            v.add("fieldMask", f"unknown path {path!r}", "OTHER")
            continue
        normalised.append(
            path.removesuffix(".calendars") if leaf == "calendars.calendars" else path
        )
    return normalised
