"""Export into Microsoft Graph: ``CalendarWriter`` over calendars, events and JSON batching.

Graph assigns event ids, so a create cannot name its event. Instead:

* ``POST /me/calendars/{id}/events`` carries ``transactionId`` = the event's ``uid``: Graph
  answers a retried POST with the event the first one created, not with a second event.
* Every written event carries two single-value extended properties: ``EXPORT_PROPERTY_ID`` (the
  tag; import skips tagged events) and ``EXPORT_UID_PROPERTY_ID`` (the uid). ``find_event``
  looks an interrupted create up by the latter, with ``$filter=singleValueExtendedProperties/
  Any(ep: ep/id eq '...' and ep/value eq '<uid>')``: Graph documents filtering on extended
  properties, not on ``transactionId`` (only echoed back when set), and the tag cannot be
  derived from the uid.

Updating is ``PATCH /me/events/{id}`` (``If-Match: <etag>`` when the write names one: 412 ->
StaleEvent); an event Graph no longer knows (404) is created anew and gets a new id. Deleting is
``DELETE /me/events/{id}`` (If-Match likewise); 404 counts as done.

More than one request goes through ``POST /$batch``, at most ``MAX_BATCH`` (20) per batch;
answers are matched to requests by id (Graph sends them in any order) and each maps like a
request of its own, so a throttled item (429 + Retry-After) becomes that item's
RateLimitedByProvider while the others are written.

Times: timed events are sent as wall time in their IANA zone when Graph documents that name
(``GRAPH_IANA_ZONES``; Graph otherwise expects Windows zone names), else as UTC. All-day events:
``isAllDay`` with midnight dates, in the same zone.

``WrittenEvent.etag`` is the event's ``@odata.etag`` (``changeKey`` without it), as
``read_changes`` reports it: ``event_etag`` serves both.

Errors as in ``graphhttp``. Raised for the whole call: AuthRejected, CalendarGone (the calendar
answers 404 to a create, or 403), and anything that failed the ``$batch`` request itself.
Returned per item: StaleEvent, RateLimitedByProvider, ProviderUnreachable, and ProviderError
for a 400 (Graph refused the event as sent; Graph's code is named, its message left out).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from calsync.providers.base import (
    AccountRef,
    AuthRejected,
    CalendarGone,
    EventDelete,
    EventWrite,
    ExportEvent,
    ExternalCalendar,
    ProviderError,
    ProviderUnreachable,
    StaleEvent,
    WrittenEvent,
)
from calsync.providers.microsoft.convert import EXPORT_PROPERTY_ID
from calsync.providers.microsoft.graphhttp import (
    CALENDAR,
    EVENT,
    MAILBOX,
    Errors,
    GraphHttp,
    error,
    error_detail,
    json_object,
    values,
)
from calsync.providers.microsoft.zones import GRAPH_IANA_ZONES
from calsync.providers.write_rounds import Next, run_rounds, send_in_batches

__all__ = [
    "EXPORT_UID_PROPERTY_ID",
    "GRAPH_IANA_ZONES",
    "MAX_BATCH",
    "GraphCall",
    "GraphWriteHttp",
    "GraphWriter",
    "event_etag",
    "event_json",
]

EXPORT_UID_PROPERTY_ID = "String {6a3c2c77-8f3e-4d3a-9a56-2b7e6f3f0e11} Name calsyncExportUid"
MAX_BATCH = 20  # requests per JSON batch


_GONE = (200, 202, 204, 404)  # answers to a DELETE that leave the thing gone
_WALL = "%Y-%m-%dT%H:%M:%S"
_PUT, _RECREATE = "put", "recreate"  # the steps of a write (see run_rounds)


@dataclass(frozen=True)
class GraphCall:
    """One request below ``api_url``: ``segments`` are the path, quoted when sent."""

    method: str
    segments: tuple[str, ...]
    what: str
    body: dict[str, Any] | None = None
    if_match: str | None = None


class GraphWriteHttp(GraphHttp):
    """``GraphHttp`` plus single requests with an ``If-Match`` header, and JSON batching."""

    def call(self, call: GraphCall) -> httpx.Response:
        """One request; network failures -> ProviderUnreachable, the status is the caller's."""
        url = self.url(*call.segments)
        if call.if_match is None:
            return self.send(call.method, url, call.what, body=call.body)
        self.check_link(url, call.what)
        return self.request(
            call.method, url, call.what, json=call.body, headers={"If-Match": call.if_match}
        )

    def batch(self, calls: Sequence[GraphCall]) -> list[httpx.Response | ProviderError]:
        """One ``POST /$batch`` of at most MAX_BATCH calls: their answers, in call order. A
        failure of the batch request itself is raised."""
        if not 0 < len(calls) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} requests")
        requests = [_batch_entry(str(n), call) for n, call in enumerate(calls, 1)]
        url = self._api_url + "/$batch"
        response = self.send("POST", url, "batch", body={"requests": requests})
        where = self.where(url, "batch")
        if response.status_code != 200:
            raise error(response, where, MAILBOX)
        try:
            data = response.json()
        except ValueError:
            data = None
        answers = data.get("responses") if isinstance(data, dict) else None
        if not isinstance(answers, list):
            raise ProviderUnreachable(f"{where}: the answer has no 'responses' list")
        by_id = {str(a.get("id")): a for a in answers if isinstance(a, dict)}
        return [
            _batch_answer(by_id.get(str(n)), self.where(self.url(*call.segments), call.what))
            for n, call in enumerate(calls, 1)
        ]


Session = Callable[[AccountRef], AbstractContextManager[GraphWriteHttp]]


class GraphWriter:
    """``CalendarWriter`` for Microsoft Graph (see the module docstring)."""

    def __init__(self, session: Session, *, max_batch: int = MAX_BATCH) -> None:
        if not 0 < max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be 1 to {MAX_BATCH}")
        self._session = session
        self.max_batch = max_batch

    # --- calendars -----------------------------------------------------------------------------

    def create_calendar(
        self, account: AccountRef, name: str, *, key: str | None = None
    ) -> ExternalCalendar:
        """A new calendar; when one of that name exists (409, e.g. an interrupted earlier
        create), that one. (Graph calendars carry no description for ``key``: names are
        unique per mailbox, which already makes a retried create find the first.)"""
        with self._session(account) as graph:
            url = graph.url("me", "calendars")
            response = graph.send("POST", url, "calendar creation", body={"name": name})
            where = graph.where(url, "calendar creation")
            if response.status_code in (200, 201):
                return _calendar(json_object(response, where), where)
            if response.status_code == 409:
                params = {"$select": "id,name,canEdit"}
                for page in graph.pages(url, params, "calendar list", MAILBOX):
                    for item in values(page, "calendar list"):
                        if str(item.get("name", "")).casefold() == name.casefold():
                            return _calendar(item, where)
            raise error(response, where, MAILBOX)

    def delete_calendar(self, account: AccountRef, calendar_id: str) -> None:
        with self._session(account) as graph:
            url = graph.url("me", "calendars", calendar_id)
            response = graph.send("DELETE", url, "calendar removal")
            if response.status_code not in _GONE:
                raise error(response, graph.where(url, "calendar removal"), CALENDAR)

    # --- events --------------------------------------------------------------------------------

    def put_events(
        self, account: AccountRef, calendar_id: str, writes: Sequence[EventWrite]
    ) -> list[WrittenEvent | ProviderError]:
        if not writes:
            return []
        with self._session(account) as graph:

            def call_for(index: int, step: str) -> GraphCall:
                if step == _PUT:
                    return _put_call(calendar_id, writes[index])
                return self._recreate_call(account, calendar_id, writes[index])

            def outcome(
                step: str, call: GraphCall, answer: httpx.Response | ProviderError
            ) -> WrittenEvent | ProviderError | Next[str]:
                settled = _put_outcome(call, answer, _where(graph, call))
                return Next(_RECREATE) if settled is None else settled

            settled: dict[int, WrittenEvent | ProviderError]
            settled, _ = run_rounds(
                dict.fromkeys(range(len(writes)), _PUT),
                call_for=call_for,
                send=lambda calls: self._run(graph, calls),
                outcome=outcome,
                rounds=2,  # the write, then a re-creation of what was deleted externally
            )
        return [
            settled.get(n) or ProviderUnreachable("the event was not written")
            for n in range(len(writes))
        ]

    def delete_events(
        self, account: AccountRef, calendar_id: str, deletes: Sequence[EventDelete]
    ) -> list[ProviderError | None]:
        if not deletes:
            return []
        with self._session(account) as graph:
            calls = [
                GraphCall("DELETE", ("me", "events", d.external_id), "event removal", None, d.etag)
                for d in deletes
            ]
            answers = self._run(graph, calls)
            return [
                _delete_outcome(answer, _where(graph, call))
                for call, answer in zip(calls, answers, strict=True)
            ]

    def _recreate_call(self, account: AccountRef, calendar_id: str, write: EventWrite) -> GraphCall:
        """An event deleted externally is created anew. An earlier re-creation cut short may
        have written it already (found by its uid property: update that one); otherwise the
        create carries a fresh ``transactionId``, since Graph might answer the original one's
        with the deleted event."""
        found = self.find_event(account, calendar_id, write.event.uid)
        if found is not None:
            segments = ("me", "events", found.external_id)
            return GraphCall("PATCH", segments, "event update", event_json(write.event), None)
        return _create_call(
            calendar_id, write.event, transaction_id=f"{write.event.uid}-{secrets.token_hex(4)}"
        )

    def find_event(self, account: AccountRef, calendar_id: str, uid: str) -> WrittenEvent | None:
        wanted = (
            f"singleValueExtendedProperties/Any(ep: ep/id eq '{_literal(EXPORT_UID_PROPERTY_ID)}'"
            f" and ep/value eq '{_literal(uid)}')"
        )
        with self._session(account) as graph:
            url = graph.url("me", "calendars", calendar_id, "events")
            params = {"$filter": wanted, "$select": "id"}
            for page in graph.pages(url, params, "exported event lookup", CALENDAR):
                for item in values(page, "exported event lookup"):
                    event_id = item.get("id")
                    if isinstance(event_id, str) and event_id:
                        return WrittenEvent(event_id, event_etag(item))
        return None

    def _run(
        self, graph: GraphWriteHttp, calls: Sequence[GraphCall]
    ) -> list[httpx.Response | ProviderError]:
        """One request alone; several in batches of ``max_batch``."""
        return send_in_batches(calls, self.max_batch, graph.call, graph.batch)


# --- the event as Graph JSON -------------------------------------------------------------------


def event_json(event: ExportEvent) -> dict[str, Any]:
    """The Graph event body of an exported session (without ``transactionId``)."""
    name, zone = _graph_zone(event.time_zone)
    if event.all_day:
        if event.start_date is None or event.end_date is None:
            raise ValueError("an all-day event needs start_date and end_date")
        start = {"dateTime": f"{event.start_date.isoformat()}T00:00:00", "timeZone": name}
        end = {"dateTime": f"{event.end_date.isoformat()}T00:00:00", "timeZone": name}
    else:
        if event.start is None or event.end is None:
            raise ValueError("a timed event needs start and end")
        start = {"dateTime": _wall(event.start, zone), "timeZone": name}
        end = {"dateTime": _wall(event.end, zone), "timeZone": name}
    return {
        "subject": event.title,
        "body": {"contentType": "text", "content": event.description or ""},
        "start": start,
        "end": end,
        "isAllDay": event.all_day,
        "location": {"displayName": event.location or ""},
        "showAs": "busy",
        "singleValueExtendedProperties": [
            {"id": EXPORT_PROPERTY_ID, "value": event.tag},
            {"id": EXPORT_UID_PROPERTY_ID, "value": event.uid},
        ],
    }


def event_etag(item: Mapping[str, Any]) -> str:
    """The version of a Graph event: ``@odata.etag``, else ``changeKey``, else ""."""
    for key in ("@odata.etag", "changeKey"):
        value = item.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _graph_zone(name: str) -> tuple[str, tzinfo]:
    if name in GRAPH_IANA_ZONES:
        try:
            return name, ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return "UTC", UTC


def _wall(moment: datetime, zone: tzinfo) -> str:
    if moment.tzinfo is None:
        raise ValueError("timed events need aware datetimes")
    return moment.astimezone(zone).strftime(_WALL)


# --- requests and answers ----------------------------------------------------------------------


def _create_call(
    calendar_id: str, event: ExportEvent, *, transaction_id: str | None = None
) -> GraphCall:
    body = {**event_json(event), "transactionId": transaction_id or event.uid}
    return GraphCall("POST", ("me", "calendars", calendar_id, "events"), "event creation", body)


def _put_call(calendar_id: str, write: EventWrite) -> GraphCall:
    if write.external_id is None:
        return _create_call(calendar_id, write.event)
    segments = ("me", "events", write.external_id)
    return GraphCall("PATCH", segments, "event update", event_json(write.event), write.etag)


def _put_outcome(
    call: GraphCall, answer: httpx.Response | ProviderError, where: str
) -> WrittenEvent | ProviderError | None:
    """What a create / update did; None: the event to update is gone (create it anew)."""
    if isinstance(answer, ProviderError):
        return answer
    status = answer.status_code
    if status in (200, 201):
        data = json_object(answer, where)
        event_id = data.get("id")
        if not isinstance(event_id, str) or not event_id:
            return ProviderUnreachable(f"{where}: the answer has no event id")
        return WrittenEvent(event_id, event_etag(data))
    if status == 404 and call.method == "PATCH":
        return None
    return _failure(answer, where, CALENDAR if call.method == "POST" else EVENT)


def _delete_outcome(answer: httpx.Response | ProviderError, where: str) -> ProviderError | None:
    if isinstance(answer, ProviderError):
        return answer
    if answer.status_code in _GONE:
        return None
    return _failure(answer, where, EVENT)


def _failure(answer: httpx.Response, where: str, errors: Errors) -> ProviderError:
    """The item's error; AuthRejected and CalendarGone concern the whole call: raised."""
    code = error_detail(answer, "code")[:100]
    if answer.status_code == 412:
        problem: ProviderError = StaleEvent(f"{where}: the event changed meanwhile (412 {code})")
    elif answer.status_code == 400 and code.casefold() != "errorinvalididmalformed":
        problem = ProviderError(f"{where}: Microsoft Graph refused the event (400 {code})")
    else:
        problem = error(answer, where, errors)
    if isinstance(problem, AuthRejected | CalendarGone):
        raise problem
    return problem


def _batch_entry(request_id: str, call: GraphCall) -> dict[str, Any]:
    path = "/" + "/".join(quote(s, safe="") for s in call.segments)
    entry: dict[str, Any] = {"id": request_id, "method": call.method, "url": path}
    headers: dict[str, str] = {}
    if call.body is not None:
        entry["body"] = call.body
        headers["Content-Type"] = "application/json"
    if call.if_match is not None:
        headers["If-Match"] = call.if_match
    if headers:
        entry["headers"] = headers
    return entry


def _batch_answer(answer: dict[str, Any] | None, where: str) -> httpx.Response | ProviderError:
    """One answer of a $batch as the response it stands for."""
    status = answer.get("status") if answer is not None else None
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return ProviderUnreachable(f"{where}: the batch answer for it is missing or malformed")
    assert answer is not None
    raw = answer.get("headers")
    headers = {
        str(k): str(v)
        for k, v in (raw.items() if isinstance(raw, dict) else ())
        if str(k).lower() not in ("content-type", "content-length")
    }
    body = answer.get("body")
    if body is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, headers=headers, json=body)


def _calendar(item: Mapping[str, Any], where: str) -> ExternalCalendar:
    calendar_id = item.get("id")
    if not isinstance(calendar_id, str) or not calendar_id:
        raise ProviderUnreachable(f"{where}: the answer has no calendar id")
    name = item.get("name")
    return ExternalCalendar(
        calendar_id,
        name if isinstance(name, str) and name else calendar_id,
        read_only=item.get("canEdit") is False,
    )


def _where(graph: GraphWriteHttp, call: GraphCall) -> str:
    return graph.where(graph.url(*call.segments), call.what)


def _literal(value: str) -> str:
    """An OData string literal's content: single quotes doubled."""
    return value.replace("'", "''")
