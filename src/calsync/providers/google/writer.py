"""Google Calendar export: calsync's sessions written as events of a Google calendar.

An event's id is chosen by us: the session's ``uid`` (32 lowercase hex characters are
base32hex, as Google's ids must be). So a create that an interrupted run already made answers
409 duplicate (Google keeps the id of a deleted event too), and ``events.update`` on that id
then replaces or restores it: never a second copy. ``If-Match`` with the ETag we hold makes a
write conditional (412 becomes ``StaleEvent``). The id and ETag a write answers are the key and
ETag ``read_changes`` reports (``events.list`` with ``singleEvents=true`` lists a one-off event
as it is stored), so an external edit later shows as another ETag.

Several calls go out as batch requests (``POST /batch/calendar/v3``, ``multipart/mixed`` with
one ``application/http`` request per part, at most ``max_batch`` each); every call gets its own
answer, so a rate-limited call fails its item only. A call that needs a second one (insert ->
409 -> update, update -> 404 -> insert) goes out in the next round.

Errors that concern the account or the calendar (``AuthRejected``, ``CalendarGone``) are
raised; the others are returned for their item. An answer of Google's 404 does not say whether
the event or the calendar is missing: an insert's 404 is the calendar's, a delete's is fine.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

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
    UnsupportedAccount,
    WrittenEvent,
)
from calsync.providers.google.api import GoogleApi, error_for, json_object, list_items
from calsync.providers.google.events import EXPORT_PROPERTY
from calsync.providers.google.push import Session
from calsync.providers.write_rounds import Next, run_rounds, send_in_batches

MAX_BATCH = 50  # calls per batch request (the Calendar batch guide's limit)
_SERVICE_PATH = "/calendar/v3"
_BATCH_PATH = "/batch/calendar/v3"  # the discovery document's batchPath
_ROUNDS = 3  # insert -> 409 -> update, update -> 404 -> insert -> 409 -> update stops here
_GONE = (404, 410)
_ACCOUNT_ERRORS = (AuthRejected, CalendarGone, UnsupportedAccount)

Answer = httpx.Response | ProviderError  # a call's answer, or why there is none
_R = TypeVar("_R", WrittenEvent | ProviderError, ProviderError | None)


@dataclass(frozen=True)
class _Call:
    http_method: str
    path: list[str]
    what: str
    body: Mapping[str, Any] | None = None
    if_match: str | None = None


class GoogleWriter:
    """``CalendarWriter`` for Google Calendar; ``session`` opens an authorised ``GoogleApi``."""

    def __init__(self, session: Session, *, max_batch: int = MAX_BATCH) -> None:
        self._session = session
        self.max_batch = max_batch

    # --- calendars -------------------------------------------------------------------------------

    def create_calendar(
        self, account: AccountRef, name: str, *, key: str | None = None
    ) -> ExternalCalendar:
        """calendars.insert; with a key, the calendar's description carries it, and a calendar
        already carrying it (an interrupted earlier create) is returned instead."""
        what = "calendars.insert"
        resource: dict[str, str] = {"summary": name}
        with self._session(account) as api:
            if key is not None:
                marker = f"{_KEY_MARKER}{key}"
                found = _calendar_marked(api, marker)
                if found is not None:
                    return found
                resource["description"] = f"Bookings exported by calsync. {marker}"
            response = api.request("POST", ["calendars"], what=what, json=resource)
        if response.status_code != 200:
            raise _not_about_a_calendar(response, what)
        body = json_object(response, what)
        calendar_id = body.get("id")
        if not isinstance(calendar_id, str) or not calendar_id:
            raise ProviderUnreachable(f"{what}: the answer names no calendar id")
        return ExternalCalendar(calendar_id, str(body.get("summary") or name))

    def delete_calendar(self, account: AccountRef, calendar_id: str) -> None:
        what = f"calendars.delete of calendar {calendar_id!r}"
        with self._session(account) as api:
            response = api.request("DELETE", ["calendars", calendar_id], what=what)
        if response.status_code not in (200, 204, *_GONE):
            raise error_for(response, what, False, False)

    # --- events ----------------------------------------------------------------------------------

    def find_event(self, account: AccountRef, calendar_id: str, uid: str) -> WrittenEvent | None:
        """The event with id ``uid``; a deleted (cancelled) one counts as none."""
        what = f"events.get of event {uid!r}"
        with self._session(account) as api:
            response = api.request("GET", ["calendars", calendar_id, "events", uid], what=what)
        if response.status_code in _GONE:
            return None
        if response.status_code != 200:
            raise error_for(response, what, False, False)
        if json_object(response, what).get("status") == "cancelled":
            return None
        return _written(response, what)

    def put_events(
        self, account: AccountRef, calendar_id: str, writes: Sequence[EventWrite]
    ) -> list[WrittenEvent | ProviderError]:
        if not writes:
            return []
        results: list[WrittenEvent | ProviderError | None] = [None] * len(writes)
        steps = {i: _first_step(w) for i, w in enumerate(writes)}
        bodies: dict[int, dict[str, Any]] = {}
        for index, write in enumerate(writes):
            try:
                bodies[index] = event_body(write.event)
            except ValueError as exc:
                results[index] = ProviderError(f"session {write.event.uid!r}: {exc}")
                del steps[index]
        settled: dict[int, WrittenEvent | ProviderError]
        with self._session(account) as api:
            settled, steps = run_rounds(
                steps,
                call_for=lambda i, step: _put_call(calendar_id, writes[i], step, bodies[i]),
                send=lambda calls: self._send(api, calls),
                outcome=lambda step, call, answer: _put_outcome(step, answer, call.what),
                rounds=_ROUNDS,
            )
        for index, outcome in settled.items():
            results[index] = outcome
        for index in steps:
            uid = writes[index].event.uid
            results[index] = ProviderError(f"event {uid!r}: Google said it exists, then not")
        return _checked([r for r in results if r is not None])

    def delete_events(
        self, account: AccountRef, calendar_id: str, deletes: Sequence[EventDelete]
    ) -> list[ProviderError | None]:
        if not deletes:
            return []
        calls = [
            _Call(
                "DELETE",
                ["calendars", calendar_id, "events", d.external_id],
                f"events.delete of event {d.external_id!r}",
                if_match=d.etag,
            )
            for d in deletes
        ]
        with self._session(account) as api:
            answers = self._send(api, calls)
        results: list[ProviderError | None] = []
        for call, answer in zip(calls, answers, strict=True):
            if isinstance(answer, ProviderError):
                results.append(answer)
            elif answer.status_code in (200, 204, *_GONE):
                results.append(None)
            else:
                results.append(_call_error(answer, call.what))
        return _checked(results)

    # --- transport -------------------------------------------------------------------------------

    def _send(self, api: GoogleApi, calls: Sequence[_Call]) -> list[Answer]:
        """One answer per call: a direct request for a lone call, else batch requests."""

        def single(call: _Call) -> Answer:
            url = api.root + "/" + _quoted(call.path)
            return _exchange(api, call.http_method, url, call.what, *_encoded(call))

        return send_in_batches(calls, self.max_batch, single, lambda chunk: _batch(api, chunk))


_KEY_MARKER = "calsync-key:"


def _calendar_marked(api: GoogleApi, marker: str) -> ExternalCalendar | None:
    """The calendar of the account whose description carries ``marker``, if any."""
    what = "calendarList.list"
    params = {"maxResults": "250"}
    for page in api.pages(
        ["users", "me", "calendarList"], params, what=what, listing_calendars=True
    ):
        for item in list_items(page):
            calendar_id = item.get("id")
            if marker in str(item.get("description") or "") and isinstance(calendar_id, str):
                name = item.get("summaryOverride") or item.get("summary") or calendar_id
                return ExternalCalendar(calendar_id, str(name))
    return None


# --- writes: what to send, what an answer means ------------------------------------------------

_INSERT, _UPDATE, _REPLACE = "insert", "update", "replace"  # REPLACE: update after a 409


def event_body(event: ExportEvent) -> dict[str, Any]:
    """The Google ``Event`` for a session (without ``id``); ValueError if its times are not
    aware start/end nor start/end dates."""
    if event.all_day:
        if event.end_date is None or event.start_date is None:
            raise ValueError("an all-day session needs start_date and end_date")
        start: dict[str, str] = {"date": event.start_date.isoformat()}
        end: dict[str, str] = {"date": event.end_date.isoformat()}
    else:
        start = {"dateTime": _rfc3339(event.start), "timeZone": event.time_zone}
        end = {"dateTime": _rfc3339(event.end), "timeZone": event.time_zone}
    body: dict[str, Any] = {
        "summary": event.title,
        "start": start,
        "end": end,
        "transparency": "opaque",
        "status": "confirmed",
        "extendedProperties": {"private": {EXPORT_PROPERTY: event.tag}},
    }
    if event.location:
        body["location"] = event.location
    if event.description:
        body["description"] = event.description
    return body


def _first_step(write: EventWrite) -> str:
    return _UPDATE if write.external_id is not None or write.etag is not None else _INSERT


def _put_call(calendar_id: str, write: EventWrite, step: str, body: dict[str, Any]) -> _Call:
    uid = write.event.uid
    if step == _INSERT:
        path = ["calendars", calendar_id, "events"]
        return _Call("POST", path, f"events.insert of event {uid!r}", {"id": uid, **body})
    event_id = (write.external_id or uid) if step == _UPDATE else uid
    path = ["calendars", calendar_id, "events", event_id]
    if_match = write.etag if step == _UPDATE else None
    return _Call("PUT", path, f"events.update of event {event_id!r}", body, if_match)


def _put_outcome(step: str, answer: Answer, what: str) -> WrittenEvent | ProviderError | Next[str]:
    """The written event, the item's error, or the next step to take."""
    if isinstance(answer, ProviderError):
        return answer
    code = answer.status_code
    if code == 200:
        try:
            return _written(answer, what)
        except ProviderError as exc:  # an unreadable answer fails its item only
            return exc
    if step == _INSERT and code == 409:
        return Next(_REPLACE)  # written before (maybe deleted since): replace / restore it
    if step == _UPDATE and code in _GONE:
        return Next(_INSERT)  # the event is gone: create it (an insert's 404 is the calendar's)
    error = _call_error(answer, what)
    if step == _REPLACE and isinstance(error, CalendarGone):  # the 409 proved it exists
        return ProviderError(f"{what}: HTTP {code}: Google refused to replace the event")
    return error


def _call_error(response: httpx.Response, what: str) -> ProviderError:
    if response.status_code == 412:
        return StaleEvent(f"{what}: HTTP 412: the event changed since the ETag we hold")
    return error_for(response, what, False, False)


def _written(response: httpx.Response, what: str) -> WrittenEvent:
    body = json_object(response, what)
    event_id, etag = body.get("id"), body.get("etag")
    if not isinstance(event_id, str) or not event_id or not isinstance(etag, str):
        raise ProviderUnreachable(f"{what}: the answer names no event id and ETag")
    return WrittenEvent(event_id, etag)


def _checked(results: list[_R]) -> list[_R]:
    """``results``, unless one of them concerns the whole account or calendar: that is raised."""
    for result in results:
        if isinstance(result, _ACCOUNT_ERRORS):
            raise result
    return results


def _not_about_a_calendar(response: httpx.Response, what: str) -> ProviderError:
    """The error of a request that names no calendar (a 403 / 404 is no ``CalendarGone``)."""
    error = error_for(response, what, False, False)
    if isinstance(error, CalendarGone):
        return ProviderError(f"{what}: HTTP {response.status_code}: Google refused it")
    return error


def _rfc3339(moment: datetime | None) -> str:
    if moment is None or moment.tzinfo is None:
        raise ValueError("a timed session needs time-zone-aware start and end")
    return moment.replace(microsecond=0).isoformat()


# --- HTTP: single calls and batch requests -----------------------------------------------------


def _quoted(path: list[str]) -> str:
    return "/".join(quote(segment, safe="") for segment in path)


def _encoded(call: _Call) -> tuple[bytes | None, dict[str, str]]:
    headers = {"If-Match": call.if_match} if call.if_match else {}
    if call.body is None:
        return None, headers
    headers["Content-Type"] = "application/json; charset=UTF-8"
    return json.dumps(call.body).encode(), headers


def _exchange(
    api: GoogleApi,
    http_method: str,
    url: str,
    what: str,
    content: bytes | None,
    headers: dict[str, str],
) -> httpx.Response:
    """One request; transport failures become ``ProviderUnreachable``."""
    return api.send(http_method, url, what=what, content=content, headers=headers)


def _batch(api: GoogleApi, calls: Sequence[_Call]) -> list[Answer]:
    """The calls as one batch request; an answer per call (the batch's error for each call
    when the whole batch failed, ``ProviderUnreachable`` for a call left unanswered)."""
    root = urlsplit(api.root)
    prefix = root.path.rstrip("/")
    service = prefix.removesuffix(_SERVICE_PATH) if prefix.endswith(_SERVICE_PATH) else ""
    url = urlunsplit((root.scheme, root.netloc, service + _BATCH_PATH, "", ""))
    what = f"batch of {len(calls)} calls ({calls[0].what}, ...)"
    boundary = f"calsync_{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for index, call in enumerate(calls):
        content, headers = _encoded(call)
        lines = [f"{call.http_method} {prefix}/{_quoted(call.path)} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = (
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <item{index}>\r\n\r\n"
            + "\r\n".join(lines)
            + "\r\n\r\n"
        )
        parts.append(head.encode("latin-1") + (content or b"") + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    content_type = {"Content-Type": f"multipart/mixed; boundary={boundary}"}
    response = _exchange(api, "POST", url, what, body, content_type)
    if response.status_code != 200:
        return [_not_about_a_calendar(response, what)] * len(calls)
    answers = _batch_answers(response, what)
    return [
        answers.get(index) or ProviderUnreachable(f"{call.what}: the batch answer left it out")
        for index, call in enumerate(calls)
    ]


_RESPONSE_ID = re.compile(r"<?response-item(\d+)>?")


def _batch_answers(response: httpx.Response, what: str) -> dict[int, httpx.Response]:
    """The parts of a batch answer by call index (from ``Content-ID: <response-itemN>``)."""
    mime, _, params = response.headers.get("content-type", "").partition(";")
    match = re.search(r'boundary="?([^";]+)"?', params)
    if mime.strip().lower() != "multipart/mixed" or match is None:
        raise ProviderUnreachable(f"{what}: the answer is not multipart/mixed")
    answers: dict[int, httpx.Response] = {}
    pieces = response.content.split(b"--" + match.group(1).encode("latin-1"))[1:]
    for position, piece in enumerate(pieces):
        if piece.startswith(b"--"):
            break
        part_head, inner = _head_and_body(re.sub(rb"^[ \t]*\r?\n", b"", piece))
        found = _RESPONSE_ID.fullmatch(part_head.get("content-id", ""))
        index = int(found.group(1)) if found else position
        status, _, rest = inner.partition(b"\n")
        words = status.decode("latin-1").split()
        if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit():
            continue  # unreadable: the call counts as unanswered
        headers, content = _head_and_body(b"\n" + rest)
        content = re.sub(rb"\r?\n$", b"", content)
        for name in ("content-length", "content-encoding", "transfer-encoding"):
            headers.pop(name, None)
        answers[index] = httpx.Response(int(words[1]), headers=headers, content=content)
    return answers


def _head_and_body(data: bytes) -> tuple[dict[str, str], bytes]:
    """Header lines (names in lower case) up to the first empty line, and what follows."""
    found = re.search(rb"\r?\n\r?\n", data)
    head, body = (data[: found.start()], data[found.end() :]) if found else (data, b"")
    headers: dict[str, str] = {}
    for line in re.split(r"\r?\n", head.decode("latin-1")):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers, body
