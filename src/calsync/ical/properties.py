"""Reading iCalendar properties for the expander: values, dates, busy or not (RFC 5545)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from icalendar import Component


class ICalError(ValueError):
    """The text is not parseable iCalendar (message says why, never includes the whole text)."""


def series_dropped(comp: Component) -> bool:
    return "X-CALSYNC-EXPORT" in comp or upper(comp.get("STATUS")) == "CANCELLED"


def is_busy(comp: Component, owners: frozenset[str]) -> bool:
    if series_dropped(comp) or upper(comp.get("TRANSP")) == "TRANSPARENT":
        return False
    for attendee in as_list(comp.get("ATTENDEE")):
        params = getattr(attendee, "params", {})
        if upper(params.get("PARTSTAT")) == "DECLINED" and address(str(attendee)) in owners:
            return False
    return True


def address(value: str) -> str:
    value = value.strip()
    if value.lower().startswith("mailto:"):
        value = value[len("mailto:") :]
    return value.strip().lower()


def upper(value: object) -> str:
    return "" if value is None else str(value).strip().upper()


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def value_of(comp: Component, name: str) -> Any:
    prop = as_list(comp.get(name))[0]
    try:
        return prop.dt
    except Exception:  # icalendar marks unparseable values as broken properties
        raise ICalError(f"event {str(comp.get('UID', ''))!r}: invalid {name} value") from None


def dates_of(comp: Component, name: str) -> Iterator[Any]:
    """Values of RDATE/EXDATE: dates, datetimes or (for RDATE) periods."""
    for prop in as_list(comp.get(name)):
        try:
            values = [v.dt for v in prop.dts]
        except Exception:
            raise ICalError(f"event {str(comp.get('UID', ''))!r}: invalid {name} value") from None
        yield from values
