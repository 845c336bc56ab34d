"""List Events queries and their opaque, signed, expiring paging cursors."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

from calsync.crypto import sign, unsign
from calsync.errors import FieldViolation, InvalidArgument
from calsync.store.instances.page import SortKey

__all__ = ["CURSOR_FIELD", "EventQuery", "SortKey", "continue_after", "decode", "encode"]
CURSOR_FIELD = "cursorPaging.cursor"


@dataclass(frozen=True)
class EventQuery:
    """Everything that selects and orders List Events results; a cursor freezes all of it."""

    from_ms: int
    to_ms: int
    schedule_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    all_day: bool | None = None
    own_pi: bool = False
    partial_failure: bool = False
    after: SortKey | None = None


def encode(key: bytes, tenant_id: str, query: EventQuery, ttl_seconds: int) -> str:
    payload = {
        "v": 1,
        "tn": tenant_id,
        "exp": int(time.time()) + ttl_seconds,
        "f": query.from_ms,
        "t": query.to_ms,
        "s": list(query.schedule_ids),
        "u": list(query.user_ids),
        "a": query.all_day,
        "pi": query.own_pi,
        "pf": query.partial_failure,
        "k": list(query.after) if query.after else None,
    }
    return sign(key, json.dumps(payload, separators=(",", ":")).encode())


def decode(key: bytes, tenant_id: str, token: str) -> EventQuery:
    """The query a cursor stands for. InvalidArgument if it was altered, expired or foreign."""
    raw = unsign(key, token)
    if raw is None:
        raise _bad("is not a valid cursor")
    try:
        data = json.loads(raw)
        if data.get("v") != 1 or data["tn"] != tenant_id:
            raise _bad("is not a valid cursor")
        if int(data["exp"]) < time.time():
            raise _bad("has expired; start again without a cursor")
        k = data["k"]
        after: SortKey | None = (
            (int(k[0]), int(k[1]), str(k[2]), str(k[3]), str(k[4]), str(k[5])) if k else None
        )
        return EventQuery(
            from_ms=int(data["f"]),
            to_ms=int(data["t"]),
            schedule_ids=tuple(data["s"]),
            user_ids=tuple(data["u"]),
            all_day=data["a"],
            own_pi=bool(data["pi"]),
            partial_failure=bool(data["pf"]),
            after=after,
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise _bad("is not a valid cursor") from exc


def continue_after(query: EventQuery, last: SortKey) -> EventQuery:
    return replace(query, after=last)


def _bad(description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation(CURSOR_FIELD, description, "FORMAT")])
