"""Request parsing: wire values to Python values, collecting field violations (spec 1.4, 1.6)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from calsync.errors import FieldViolation, InvalidArgument, ViolationCollector

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
WEB_URL = re.compile(r"^https?://[^\s/?#@]+(?::\d+)?(?:[/?#]\S*)?$", re.IGNORECASE)
RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)
MAX_LIST = 100
MAX_JSON_DEPTH = 32
SURROGATE = re.compile("[\ud800-\udfff]")
# Date-times outside these years are refused: nothing is booked there, and recurrence
# arithmetic near year 1 or 9999 overflows.
FIRST_YEAR, LAST_YEAR = 1900, 2200
EARLIEST = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
LATEST = datetime(LAST_YEAR, 12, 31, 23, 59, 59, tzinfo=UTC)


def json_body(raw: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; InvalidArgument for anything else."""
    if not raw.strip():
        if allow_empty:
            return {}
        raise InvalidArgument(
            [FieldViolation("", "a JSON object body is required", "REQUIRED_FIELD")]
        )
    value = json_value(raw)
    if not isinstance(value, dict):
        raise InvalidArgument([FieldViolation("", "the body must be a JSON object", "FORMAT")])
    return value


def json_value(raw: bytes) -> Any:
    """Any JSON value, nested at most ``MAX_JSON_DEPTH`` deep and with no lone surrogate in a
    string (which no database can store); InvalidArgument otherwise."""
    if _nesting(raw) > MAX_JSON_DEPTH:
        raise InvalidArgument(
            [FieldViolation("", f"JSON may nest at most {MAX_JSON_DEPTH} levels", "MAX")]
        )
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidArgument([FieldViolation("", "the body is not valid JSON", "FORMAT")]) from exc
    if _has_lone_surrogate(value):
        raise InvalidArgument(
            [FieldViolation("", "the body holds an invalid character (a lone surrogate)", "FORMAT")]
        )
    return value


def _nesting(raw: bytes) -> int:
    """How deep brackets nest outside strings: a linear scan, before any recursive parse."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def guid(v: ViolationCollector, field: str, value: object, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            v.add(field, "is required", "REQUIRED_FIELD")
        return None
    if not isinstance(value, str) or not GUID.match(value):
        v.add(field, "must be a GUID", "FORMAT")
        return None
    return value.lower()


def email(v: ViolationCollector, field: str, value: object) -> str | None:
    if value is None or value == "":
        v.add(field, "is required", "REQUIRED_FIELD")
        return None
    if not isinstance(value, str) or len(value) > 254 or not EMAIL.match(value):
        v.add(field, "must be an e-mail address", "FORMAT")
        return None
    return value


def web_url(v: ViolationCollector, field: str, value: object) -> str | None:
    if value is None or value == "":
        v.add(field, "is required", "REQUIRED_FIELD")
        return None
    if not isinstance(value, str) or len(value) > 2048 or not WEB_URL.match(value):
        v.add(field, "must be an absolute http or https URL", "FORMAT")
        return None
    return value


def text(
    v: ViolationCollector, field: str, value: object, *, required: bool = True, max_len: int = 1000
) -> str | None:
    if value is None or value == "":
        if required:
            v.add(field, "is required", "REQUIRED_FIELD")
        return None
    if not isinstance(value, str):
        v.add(field, "must be a string", "FORMAT")
        return None
    if len(value) > max_len:
        v.add(field, f"must be at most {max_len} characters", "MAX")
        return None
    return value


def rfc3339(v: ViolationCollector, field: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if not RFC3339.match(value):
        v.add(field, "must be an RFC 3339 date-time with seconds and a zone", "FORMAT")
        return None
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        v.add(field, "is not a valid date-time", "FORMAT")
        return None
    try:
        in_range = EARLIEST <= moment <= LATEST
    except OverflowError:  # a zone offset past year 1 or 9999
        in_range = False
    if not in_range:
        v.add(field, f"must lie between the years {FIRST_YEAR} and {LAST_YEAR}", "OTHER")
        return None
    return moment


def boolean(v: ViolationCollector, field: str, value: object) -> bool | None:
    """Booleans as the client sends them: JSON true/false or query strings "true"/"false"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    v.add(field, "must be true or false", "FORMAT")
    return None


def integer(
    v: ViolationCollector, field: str, value: str | None, *, low: int, high: int
) -> int | None:
    if value is None or value == "":
        return None
    if not re.fullmatch(r"[+-]?\d{1,12}", value):
        v.add(field, "must be a whole number", "FORMAT")
        return None
    number = int(value)
    if number < low:
        v.add(field, f"must be at least {low}", "MIN")
        return None
    if number > high:
        v.add(field, f"must be at most {high}", "MAX")
        return None
    return number


def guid_list(v: ViolationCollector, field: str, values: list[str]) -> tuple[str, ...]:
    if len(values) > MAX_LIST:
        v.add(field, f"must hold at most {MAX_LIST} values", "MAX_SIZE")
        return ()
    out = []
    for index, value in enumerate(values):
        parsed = guid(v, f"{field}[{index}]", value)
        if parsed:
            out.append(parsed)
    return tuple(dict.fromkeys(out))


def single(params: list[tuple[str, str]], name: str) -> str | None:
    """The last value of a query parameter (clients send scalars once)."""
    found = [value for key, value in params if key == name]
    return found[-1] if found else None


def repeated(params: list[tuple[str, str]], name: str) -> list[str]:
    """All values of a repeated query key; ``name[]`` and comma-free repetition both work."""
    return [value for key, value in params if key in (name, f"{name}[]")]


def path_echo(v: ViolationCollector, field: str, path_value: str, echoed: object) -> None:
    """Clients echo path parameters in bodies; the path wins, a different echo is an error."""
    if echoed not in (None, "") and echoed != path_value:
        v.add(field, "differs from the value in the path", "OTHER")
