"""The "which calendars block time / where bookings go" form: the choices a provider's features
allow, the current choice, and the submitted form as a sync-config update."""

from __future__ import annotations

from dataclasses import dataclass, field

from calsync.domain import (
    ExportConfig,
    ImportConfig,
    ListEventFromCalendars,
    ProviderFeatures,
    SyncConfig,
    SyncToCalendar,
)
from calsync.errors import CalsyncError, FieldViolation, InvalidArgument

IMPORT_LABELS = {
    "off": "Nothing: this account's events do not block time",
    "primary": "The primary calendar",
    "specific": "These calendars:",
}
EXPORT_LABELS = {
    "off": "Off: bookings are not written to this account",
    "primary": "Into the primary calendar",
    "dedicated": "Into a calendar of their own, created by calsync",
}


@dataclass(frozen=True)
class SyncChoice:
    """Allowed options (in display order) and the current selection of both halves."""

    import_options: tuple[str, ...]
    export_options: tuple[str, ...]
    import_choice: str
    export_choice: str
    selected_calendars: frozenset[str] = field(default_factory=frozenset)
    editable: bool = True


def import_options(features: ProviderFeatures) -> tuple[str, ...]:
    return {
        ListEventFromCalendars.PRIMARY_CALENDAR_ONLY: ("off", "primary"),
        ListEventFromCalendars.SPECIFIC_CALENDARS: ("off", "primary", "specific"),
    }.get(features.list_event_from_calendars, ())


def export_options(features: ProviderFeatures) -> tuple[str, ...]:
    return {
        SyncToCalendar.PRIMARY_CALENDAR_ONLY: ("off", "primary"),
        SyncToCalendar.SPECIFIC_CALENDAR: ("off", "primary"),
        SyncToCalendar.DEDICATED_CALENDAR: ("off", "dedicated"),
    }.get(features.sync_to_calendar, ())


def current(config: SyncConfig, features: ProviderFeatures) -> SyncChoice:
    imp, exp = config.import_, config.export
    if not imp.enabled:
        import_choice = "off"
    else:
        import_choice = "primary" if imp.calendar_ids is None else "specific"
    export_choice = (exp.target or "off") if exp.enabled else "off"
    return SyncChoice(
        import_options=import_options(features),
        export_options=export_options(features),
        import_choice=import_choice,
        export_choice=export_choice,
        selected_calendars=frozenset(imp.calendar_ids or ()),
        editable=features.update_sync_config,
    )


@dataclass(frozen=True)
class SyncUpdate:
    """A sync-config update for ``connections.update_sync_config`` (a field-masked one)."""

    requested: SyncConfig
    field_mask: list[str]


def parse(
    choice: SyncChoice, import_value: str, export_value: str, calendars: list[str]
) -> SyncUpdate:
    """The submitted form as an update; InvalidArgument names the ``import``/``export`` field."""
    mask: list[str] = []
    imp, exp = ImportConfig(), ExportConfig()
    if choice.import_options:
        if import_value not in choice.import_options:
            raise InvalidArgument([FieldViolation("import", "choose one of the options")])
        mask.append("listEventFromCalendars.enabled")
        if import_value == "primary":
            imp = ImportConfig(enabled=True, calendar_ids=None)
            mask.append("listEventFromCalendars.primaryCalendar")
        elif import_value == "specific":
            imp = ImportConfig(enabled=True, calendar_ids=tuple(dict.fromkeys(calendars)))
            mask.append("listEventFromCalendars.calendars")
    if choice.export_options:
        if export_value not in choice.export_options:
            raise InvalidArgument([FieldViolation("export", "choose one of the options")])
        mask.append("syncToCalendar.enabled")
        if export_value == "primary":
            exp = ExportConfig(enabled=True, target="primary")
            mask.append("syncToCalendar.primaryCalendar")
        elif export_value == "dedicated":
            exp = ExportConfig(enabled=True, target="dedicated")
            mask.append("syncToCalendar.dedicatedCalendar")
    return SyncUpdate(requested=SyncConfig(import_=imp, export=exp), field_mask=mask)


def field_errors(exc: CalsyncError) -> dict[str, str]:
    """Service errors of the update keyed by the form's fieldsets (``import``, ``export``)."""
    if not isinstance(exc, InvalidArgument):
        return {"form": exc.description}
    errors: dict[str, str] = {}
    for violation in exc.violations:
        path = violation.field
        if path == "import" or path.startswith("syncConfig.listEventFromCalendars"):
            name = "import"
        elif path == "export" or path.startswith("syncConfig.syncToCalendar"):
            name = "export"
        else:
            name = "form"
        text = violation.description
        if violation.violated_rule == "MIN_SIZE":
            text = "Tick at least one calendar, or choose another option."
        errors.setdefault(name, text[:1].upper() + text[1:])
    return errors
