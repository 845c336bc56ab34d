"""A fake of Microsoft Graph v1.0 calendar endpoints, served over real HTTP on 127.0.0.1.

Starlette under uvicorn in a background thread on an ephemeral port::

    fake = start_graph_fake()            # or: with start_graph_fake() as fake: ...
    fake.add_account("ada@example.com", token="tok-ada")
    cal = fake.add_calendar("ada@example.com", "Work")
    fake.put_event("ada@example.com", cal.id, subject="Standup", start=dt1, end=dt2)
    GraphCalendarProvider(fake.api_url)  # api_url = http://127.0.0.1:PORT/v1.0
    fake.stop()

Reads (GET; paths are case-insensitive like Graph's; ``/me/calendar`` and ``/me`` prefixes
for the default calendar work too):

* ``/me`` - the signed-in user (id, displayName, mail, userPrincipalName).
* ``/me/calendars`` (``$select``, ``$top``/``$skip``, ``odata.maxpagesize`` -> ``@odata.nextLink``),
  ``/me/calendar``, ``/me/calendars/{id}``.
* ``/me/calendars/{id}/calendarView?startDateTime=&endDateTime=`` - single instances,
  occurrences and exceptions overlapping the window (series masters expanded; daily and weekly
  patterns with endDate / numbered / noEnd ranges), sorted by start; ``$select``, ``$top``,
  ``$skip``, ``$expand=singleValueExtendedProperties($filter=id eq '...')``.
* ``/me/calendars/{id}/calendarView/delta`` - the first request needs startDateTime and
  endDateTime; answers carry ``@odata.nextLink`` (``$skiptoken``) until the round's last page,
  which carries ``@odata.deltaLink`` (``$deltatoken``). Following a deltaLink lists instances
  added or changed since (by changeKey) and ``{"id", "@removed": {"reason": "deleted"}}`` for
  those gone or moved out of the window. ``$select``/``$expand``/``$filter``/``$orderby``/
  ``$search`` are refused (400) as Graph documents. With ``partial_occurrences_in_delta`` set,
  occurrences come as id/type/seriesMasterId/start/end rows, as some tenants send them.
* ``/me/events/{id}`` - any stored event, occurrence or exception (``$select``, ``$expand``);
  ``/me/calendars/{id}/events/{id}`` and ``/me/calendar/events/{id}`` within that calendar.
* ``/me/calendars/{id}/events`` (``/me/events``, ``/me/calendar/events``: the default calendar) -
  single instances and series masters, paged; ``$filter`` only as
  ``singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...')`` (compared
  case-insensitively), anything else 400.

Writes (each goes through the same store as the helpers below: new changeKey / ``@odata.etag``,
visible to calendarView and delta, ``@removed`` after a delete, change notifications):

* ``POST /me/calendars`` ``{"name"}`` -> 201 (409 ErrorFolderExists for a name in use);
  ``DELETE /me/calendars/{id}`` -> 204 (the default calendar: 400
  ErrorDeleteDistinguishedFolder).
* ``POST`` on an events collection -> 201 and the event. Unknown properties (400
  RequestBodyRead), read-only ones (400 ErrorInvalidPropertySet), missing or bad start/end, an
  unknown zone (UTC and IANA names only: 400 TimeZoneNotSupportedException), all-day bounds not
  at midnight, an end before the start -> 400. A ``transactionId`` already carried by an event
  of the mailbox gives that event back (201) instead of a second one.
* ``PATCH`` / ``DELETE`` on an event (single instances and series masters; occurrences: 400)
  -> 200 and the event / 204. ``If-Match`` (the ``@odata.etag``, the changeKey or ``*``) that
  does not match -> 412 PreconditionFailed. PATCH merges ``singleValueExtendedProperties`` by
  id; ``transactionId`` cannot change. Unknown event -> 404 ErrorItemNotFound.
* ``POST /$batch`` ``{"requests": [{id, method, url, headers, body}]}`` (1 to 20 requests,
  unique ids, relative URLs, Content-Type with a body, no ``dependsOn``; else 400): each request
  runs as if sent alone, faults included; the answer ``{"responses": [{id, status, headers,
  body}]}`` lists them in reverse order, so callers must correlate by id.

``Prefer: outlook.timezone="<UTC or IANA name>"`` sets the zone of returned start/end
(default UTC; all-day values stay midnights), ``Prefer: odata.maxpagesize=N`` the page size
(default ``default_page_size``). Errors are ``{"error": {"code", "message", "innerError"}}``.
Every mutation gets a sequence number; changeKey ``ck<seq>``, ``@odata.etag`` ``W/"ck<seq>"``.

Auth: ``Authorization: Bearer <token>``; ``token_validator(token) -> e-mail | None`` (default:
the ``fake.tokens`` dict); None -> 401 InvalidAuthenticationToken. Accounts added with
``mailbox_enabled=False`` answer 404 MailboxNotEnabledForRESTAPI on mailbox endpoints.

Faults: ``fail_next(status, code=, retry_after=, count=, path_contains=, method=, after=,
applied=)`` answers the next matching request(s) with that error (requests inside a $batch
count one by one; ``after`` lets that many matching ones through first; ``applied`` carries the
request out and loses its answer); ``expire_delta_tokens()`` makes every delta/skip token
answer 410 syncStateNotFound. At most ``concurrency_limit`` (4) requests per mailbox run at
once; more get 429 ApplicationThrottled (``response_delay`` makes overlap easy to provoke).
``link_base`` overrides the origin used in nextLink/deltaLink (to test foreign links).
``requests`` logs every request (method, path, query, params, prefer, token, status, if_match;
``body``: the JSON of a POST/PATCH; requests inside a $batch too, with their ``batch_id``).

Change notifications (webhook subscriptions, as Graph does them for Outlook events):

* ``POST /subscriptions`` checks the body (the required properties; ``changeType`` a list of
  created/updated/deleted; ``resource`` ``me/calendars/{id}/events`` or ``me/events`` (the
  default calendar), the calendar existing; https ``notificationUrl`` and
  ``lifecycleNotificationUrl``; ``expirationDateTime`` in the future and at most
  ``max_subscription_minutes`` (4230) ahead; ``clientState`` at most 255 characters) -> 400
  InvalidRequest otherwise. Then, before answering, the validation handshake: POST
  ``{url}?validationToken=<Graph-like sentence, URL-encoded>`` (Content-Type text/plain) to the
  notification URL and then the lifecycle URL; each must answer 200, text/plain, the token
  exactly, within ``validation_timeout`` (10 s), else 400 InvalidRequest "Subscription
  validation request failed. ...". Handshakes are logged in ``validations``. Success: 201 and
  the subscription resource (7-digit fraction times, like Graph).
* ``GET /subscriptions``, ``GET|PATCH|DELETE /subscriptions/{id}`` (PATCH: only
  ``expirationDateTime``, same limits), ``POST /subscriptions/{id}/reauthorize`` (204).
  Another mailbox's, an expired or a deleted subscription: 404 ResourceNotFound.
* Every event mutation through the helpers (``put_event`` created/updated, ``update_event``,
  ``delete_event``, ``modify_occurrence``/``cancel_occurrence`` updated, ``delete_occurrence``
  deleted, ``remove_calendar`` deleted for each stored event) notifies the live subscriptions
  on that calendar whose changeType includes the change: POST JSON ``{"value": [{subscriptionId,
  subscriptionExpirationDateTime, changeType, resource: "Users/{userId}/Events/{id}",
  resourceData: {@odata.type, @odata.id, @odata.etag (not for deleted), id}, clientState,
  tenantId}]}``, one notification per request; 202 is success, anything else is recorded.
* ``send_lifecycle(subscription_id, "reauthorizationRequired" | "subscriptionRemoved" |
  "missed")`` POSTs ``{"value": [{lifecycleEvent, subscriptionId,
  subscriptionExpirationDateTime, clientState, tenantId}]}`` to the lifecycle URL
  (subscriptionRemoved also deletes the subscription). ``remove_subscription(id)`` drops one
  silently (as expiry does).

Deliveries run in order on one background thread (``webhooks.WebhookSender``: httpx,
``verify=False``: receivers use self-signed certificates; ``delivery_timeout`` 3 s), stopped by
``stop()``. They are recorded in ``deliveries`` (``Delivery``: subscription id, kind =
changeType or lifecycle event, url, body, status or error); ``wait_deliveries(n, timeout)``
waits for the n-th, ``wait_idle()`` for the queue to drain. ``subscriptions`` lists the live
subscriptions (``FakeSubscription`` copies, readable as attributes or by Graph property name).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as clock_time
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .webhooks import DeliveryLog, WebhookSender

__all__ = [
    "EXPORT_PROPERTY_ID",
    "LIFECYCLE_EVENTS",
    "MAX_BATCH_REQUESTS",
    "SUBSCRIPTION_MAX_MINUTES",
    "Delivery",
    "FakeAccount",
    "FakeCalendar",
    "FakeSubscription",
    "GraphError",
    "GraphFake",
    "LoggedRequest",
    "Validation",
    "start_graph_fake",
]

EXPORT_PROPERTY_ID = "String {6a3c2c77-8f3e-4d3a-9a56-2b7e6f3f0e11} Name calsyncSessionId"
_STARTUP_TIMEOUT = 10.0
SUBSCRIPTION_MAX_MINUTES = 4230  # Outlook event subscriptions
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
_CHANGE_TYPES = ("created", "updated", "deleted")
_MAX_CLIENT_STATE = 255
_SUBSCRIPTION_PROPERTIES = {
    "changeType", "notificationUrl", "lifecycleNotificationUrl", "resource",
    "expirationDateTime", "clientState", "latestSupportedTlsVersion", "includeResourceData",
    "encryptionCertificate", "encryptionCertificateId", "notificationQueryOptions",
    "notificationUrlAppId", "@odata.type",
}  # fmt: skip
_VALIDATION_FAILED = "Subscription validation request failed."
_MAX_PAGE = 1000
_MAX_OCCURRENCES = 5000
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_DELTA_REFUSED = ("$select", "$expand", "$filter", "$orderby", "$search")
_EXPAND = re.compile(r"^singlevalueextendedproperties\(\$filter=id eq '([^']*)'\)$", re.I)
_PROPERTY_FILTER = re.compile(
    r"^singleValueExtendedProperties/any\((\w+):\s*\1/id eq '((?:[^']|'')*)'"
    r"\s+and\s+\1/value eq '((?:[^']|'')*)'\)$",
    re.I,
)
MAX_BATCH_REQUESTS = 20  # JSON batching
_DEFAULT_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "ErrorAccessDenied",
    404: "ErrorItemNotFound",
    410: "syncStateNotFound",
    412: "PreconditionFailed",
    429: "ApplicationThrottled",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
_EVENT_PROPERTIES = {
    "id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories", "iCalUId",
    "subject", "bodyPreview", "body", "importance", "sensitivity", "isAllDay", "isCancelled",
    "isOrganizer", "responseRequested", "seriesMasterId", "showAs", "type", "start", "end",
    "originalStart", "location", "locations", "recurrence", "attendees", "organizer",
    "responseStatus", "reminderMinutesBeforeStart", "isReminderOn", "hasAttachments",
    "webLink", "isOnlineMeeting", "isDraft", "originalStartTimeZone", "originalEndTimeZone",
    "singleValueExtendedProperties", "transactionId",
}  # fmt: skip
_READ_ONLY_EVENT_PROPERTIES = {
    "id", "createdDateTime", "lastModifiedDateTime", "changeKey", "iCalUId", "bodyPreview",
    "seriesMasterId", "type", "originalStart", "webLink", "hasAttachments",
}  # fmt: skip
_CALENDAR_PROPERTIES = {
    "id", "name", "color", "hexColor", "isDefaultCalendar", "changeKey", "canShare",
    "canViewPrivateItems", "canEdit", "isRemovable", "isTallyingResponses", "owner",
    "allowedOnlineMeetingProviders", "defaultOnlineMeetingProvider",
}  # fmt: skip

TokenValidator = Callable[[str], "str | None"]
_T = TypeVar("_T")


# --- data -----------------------------------------------------------------------------------


@dataclass
class FakeCalendar:
    id: str
    name: str
    is_default: bool = False
    can_edit: bool = True
    change_key: str = ""
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # singleInstance + masters
    # master id -> original local date (ISO) -> the exception event, or None: occurrence deleted
    exceptions: dict[str, dict[str, dict[str, Any] | None]] = field(default_factory=dict)


@dataclass
class FakeAccount:
    email: str
    upn: str
    id: str
    display_name: str
    mailbox_enabled: bool = True
    calendars: dict[str, FakeCalendar] = field(default_factory=dict)


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: str
    params: dict[str, str]
    prefer: str
    token: str | None
    status: int = 0
    body: Any = None
    if_match: str | None = None
    batch_id: str | None = None  # the request's id inside a $batch (None: a request of its own)


@dataclass
class _Fault:
    status: int
    code: str
    retry_after: str | None
    count: int
    path_contains: str | None
    method: str | None = None
    after: int = 0  # matching requests still to let through
    applied: bool = False  # carry the request out, then answer the error (a lost response)

    def error(self) -> GraphError:
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        return GraphError(self.status, self.code, "Injected fault.", headers)


@dataclass
class _DeltaState:
    email: str
    calendar_id: str
    start: datetime
    end: datetime
    snapshot: dict[str, str]  # instance id -> changeKey


@dataclass
class _Round:
    state: _DeltaState  # what the deltaLink at the end of the round will resume from
    rows: list[dict[str, Any]]  # still to send


@dataclass
class FakeSubscription:
    """A subscription; also readable by its Graph property names (``s["id"]``,
    ``s.get("resource")``, ``s["expirationDateTime"]``: the wire form)."""

    id: str
    email: str  # casefolded owner mailbox
    calendar_id: str | None  # None: ``me/events``, the default calendar
    resource: str
    change_type: str  # as sent
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires_at: datetime
    creator_id: str
    application_id: str

    @property
    def change_types(self) -> frozenset[str]:
        return frozenset(c.strip() for c in self.change_type.split(","))

    def as_json(self) -> dict[str, Any]:
        """The subscription resource as Graph returns it."""
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": _graph_instant(self.expires_at),
            "creatorId": self.creator_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }

    def __getitem__(self, name: str) -> Any:
        return self.as_json()[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.as_json().get(name, default)


@dataclass
class Delivery:
    """One POST of a change or lifecycle notification; ``status`` None when ``error``."""

    subscription_id: str
    kind: str  # created / updated / deleted, or a lifecycle event
    url: str
    body: dict[str, Any]
    status: int | None = None
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == 202


@dataclass
class Validation:
    """One validation handshake (POST ?validationToken=...) and how the endpoint answered."""

    url: str
    token: str
    status: int | None
    error: str | None
    ok: bool


class GraphError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


# --- the fake -------------------------------------------------------------------------------


class GraphFake(DeliveryLog[Delivery]):
    def __init__(
        self, token_validator: TokenValidator | None = None, *, default_page_size: int = 10
    ) -> None:
        self.tokens: dict[str, str] = {}
        self.token_validator: TokenValidator = token_validator or self._known_token
        self.default_page_size = default_page_size
        self.accounts: dict[str, FakeAccount] = {}
        self.requests: list[LoggedRequest] = []
        self.concurrency_limit = 4
        self.response_delay = 0.0
        # Seconds to hold the answer of a write after carrying it out (a client killed then
        # has written without learning the result).
        self.answer_delay_after_write = 0.0
        self.partial_occurrences_in_delta = False
        self.link_base: str | None = None
        self.api_url = ""
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._faults: list[_Fault] = []
        self._states: dict[str, _DeltaState] = {}
        self._rounds: dict[str, _Round] = {}
        self._in_flight: dict[str, int] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        # change notifications
        self.tenant_id = str(uuid.uuid4())
        self.application_id = str(uuid.uuid4())
        self.max_subscription_minutes = SUBSCRIPTION_MAX_MINUTES
        self.validation_timeout = 10.0
        self.validations: list[Validation] = []
        self._subscriptions: dict[str, FakeSubscription] = {}
        self._push: WebhookSender[Delivery] = WebhookSender("graph-fake-deliveries", timeout=3.0)
        self._closed = False
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._endpoint,
                    methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
                )
            ]
        )

    def _known_token(self, token: str) -> str | None:
        return self.tokens.get(token)

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> GraphFake:
        self._closed = False
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            ws="none",
            access_log=False,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="graph-fake", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Graph fake did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        self.api_url = f"http://127.0.0.1:{port}/v1.0"
        return self

    def stop(self) -> None:
        with self._lock:
            self._closed = True  # no new deliveries; those queued are still attempted
        self._push.stop(drain=True, timeout=30)
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> GraphFake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- set-up helpers -------------------------------------------------------------------------

    def add_account(
        self,
        email: str,
        upn: str | None = None,
        *,
        token: str | None = None,
        display_name: str | None = None,
        mailbox_enabled: bool = True,
        default_calendar: str | None = "Calendar",
    ) -> FakeAccount:
        """A mailbox; with ``default_calendar`` (a name) it gets its default calendar."""
        with self._lock:
            account = FakeAccount(
                email=email,
                upn=upn or email,
                id=str(uuid.uuid4()),
                display_name=display_name or email.split("@")[0],
                mailbox_enabled=mailbox_enabled,
            )
            self.accounts[email.casefold()] = account
            if token is not None:
                self.tokens[token] = email
            if default_calendar is not None:
                self.add_calendar(email, default_calendar, is_default=True)
            return account

    def account(self, email: str) -> FakeAccount:
        return self.accounts[email.casefold()]

    def add_calendar(
        self,
        email: str,
        name: str,
        *,
        calendar_id: str | None = None,
        is_default: bool = False,
        can_edit: bool = True,
    ) -> FakeCalendar:
        with self._lock:
            account = self.account(email)
            calendar = FakeCalendar(
                id=calendar_id or _new_id("cal"),
                name=name,
                is_default=is_default,
                can_edit=can_edit,
                change_key=f"ck{next(self._seq)}",
            )
            if is_default:
                for other in account.calendars.values():
                    other.is_default = False
            account.calendars[calendar.id] = calendar
            return calendar

    def default_calendar(self, email: str) -> FakeCalendar:
        with self._lock:
            for calendar in self.account(email).calendars.values():
                if calendar.is_default:
                    return calendar
        raise KeyError(f"{email} has no default calendar")

    def remove_calendar(self, email: str, calendar_id: str) -> None:
        """Delete a calendar; its subscribers hear "deleted" for each stored event."""
        with self._lock:
            account = self.account(email)
            calendar = account.calendars[calendar_id]
            gone = list(calendar.events)
            for exceptions in calendar.exceptions.values():
                gone += [e["id"] for e in exceptions.values() if e is not None]
            for event_id in gone:
                self._notify(account, calendar, event_id, "deleted", None)
            del account.calendars[calendar_id]

    def put_event(
        self, email: str, calendar_id: str, event: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Create or replace a single instance or series master (Graph JSON).

        Conveniences: ``start``/``end`` may be aware datetimes (kept in their zone) or dates
        (an all-day event); ``export_tag="v"`` sets calsync's extended property.
        """
        data = {**(event or {}), **fields}
        with self._lock:
            calendar = self.account(email).calendars[calendar_id]
            event_id = str(data.get("id") or _new_id("evt"))
            old = calendar.events.get(event_id)
            stored = self._normalise(data, event_id, email, old)
            if stored["type"] not in ("singleInstance", "seriesMaster"):
                raise ValueError("put_event stores single instances and series masters only")
            if old is not None and old.get("recurrence") != stored.get("recurrence"):
                calendar.exceptions.pop(event_id, None)  # a new pattern drops the exceptions
            calendar.events[event_id] = stored
            change = "created" if old is None else "updated"
            self._notify(self.account(email), calendar, event_id, change, stored["@odata.etag"])
            return _copy(stored)

    def update_event(
        self, email: str, calendar_id: str, event_id: str, **fields: Any
    ) -> dict[str, Any]:
        """PATCH-like: the stored event with ``fields`` changed."""
        with self._lock:
            current = self.account(email).calendars[calendar_id].events[event_id]
            return self.put_event(email, calendar_id, _copy(current), **fields)

    def delete_event(self, email: str, calendar_id: str, event_id: str) -> None:
        """Delete a single instance or a whole series; an occurrence id deletes that one."""
        with self._lock:
            account = self.account(email)
            calendar = account.calendars[calendar_id]
            if event_id in calendar.events:
                del calendar.events[event_id]
                calendar.exceptions.pop(event_id, None)
                self._notify(account, calendar, event_id, "deleted", None)
                return
            master_id, key = _split_occurrence_id(event_id)
            if master_id in calendar.events and key is not None:
                calendar.exceptions.setdefault(master_id, {})[key] = None
                self._notify(account, calendar, event_id, "deleted", None)
                return
            raise KeyError(event_id)

    def modify_occurrence(
        self, email: str, calendar_id: str, master_id: str, original: date, **fields: Any
    ) -> dict[str, Any]:
        """Turn one occurrence (by its original local date) into an exception with ``fields``."""
        with self._lock:
            calendar = self.account(email).calendars[calendar_id]
            master = calendar.events[master_id]
            key = original.isoformat()
            if key not in {o["_key"] for o in self._pattern(master)}:
                raise ValueError(f"{original} is not an occurrence of {master_id}")
            current = calendar.exceptions.get(master_id, {}).get(key)
            base = current or self._occurrence(master, key)
            data = {k: v for k, v in base.items() if not k.startswith("_")}
            data.update(fields)
            stored = self._normalise(data, base["id"], email, base)
            stored.update(type="exception", seriesMasterId=master_id, recurrence=None)
            stored["originalStart"] = base["originalStart"]
            calendar.exceptions.setdefault(master_id, {})[key] = stored
            account = self.account(email)
            self._notify(account, calendar, stored["id"], "updated", stored["@odata.etag"])
            return _copy(stored)

    def cancel_occurrence(
        self, email: str, calendar_id: str, master_id: str, original: date
    ) -> dict[str, Any]:
        """The attendee view of a cancelled occurrence: an exception with isCancelled true."""
        return self.modify_occurrence(email, calendar_id, master_id, original, isCancelled=True)

    def delete_occurrence(
        self, email: str, calendar_id: str, master_id: str, original: date
    ) -> None:
        with self._lock:
            account = self.account(email)
            calendar = account.calendars[calendar_id]
            calendar.exceptions.setdefault(master_id, {})[original.isoformat()] = None
            occurrence = self.occurrence_id(master_id, original)
            self._notify(account, calendar, occurrence, "deleted", None)

    def occurrence_id(self, master_id: str, original: date) -> str:
        return f"{master_id}_{original.strftime('%Y%m%d')}"

    def instances(
        self, email: str, calendar_id: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """What calendarView would list (internal form, times as stored)."""
        with self._lock:
            calendar = self.account(email).calendars[calendar_id]
            return [_copy(i) for i in self._instances(calendar, start, end)]

    # --- faults ---------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        code: str | None = None,
        retry_after: float | str | None = None,
        count: int = 1,
        path_contains: str | None = None,
        method: str | None = None,
        after: int = 0,
        applied: bool = False,
    ) -> None:
        """Answer the next ``count`` matching requests (path substring, HTTP method; requests
        inside a ``$batch`` count one by one) with an error, after letting ``after`` matching
        ones through. ``applied``: carry each request out first (the answer is lost)."""
        code = code or _DEFAULT_CODES.get(status, "UnknownError")
        wait = None if retry_after is None else str(retry_after)
        verb = None if method is None else method.upper()
        with self._lock:
            fault = _Fault(status, code, wait, count, path_contains, verb, after, applied)
            self._faults.append(fault)

    def expire_delta_tokens(self) -> None:
        with self._lock:
            self._states.clear()
            self._rounds.clear()

    # --- HTTP -----------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        logged = await _logged(request, token)
        with self._lock:
            self.requests.append(logged)
        segments = [p for p in request.url.path.split("/") if p]
        subscriptions = [s.lower() for s in segments[:2]] == ["v1.0", "subscriptions"]
        batch = [s.lower() for s in segments] == ["v1.0", "$batch"]
        mailbox: str | None = None
        try:
            late = self._fault(request.url.path, request.method)
            email = self.token_validator(token) if token else None
            if not email:
                message = "Access token is empty." if not token else "Invalid token."
                raise GraphError(401, "InvalidAuthenticationToken", message)
            mailbox = self._enter_mailbox(email.casefold())
            if self.response_delay:
                await asyncio.sleep(self.response_delay)
            if subscriptions:
                response: Response = await self._subscription_endpoint(
                    request.method, email, segments[1:], logged.body
                )
            elif batch and request.method == "POST":
                with self._lock:
                    response = self._batch(request, email, logged.body)
            else:
                with self._lock:
                    response = self._dispatch(request, email, logged.body)
            if self.answer_delay_after_write and request.method in ("POST", "PATCH", "DELETE"):
                await asyncio.sleep(self.answer_delay_after_write)
            if late is not None:
                raise late.error()
        except GraphError as exc:
            response = _error_response(exc)
        finally:
            if mailbox is not None:
                with self._lock:
                    self._in_flight[mailbox] -= 1
        logged.status = response.status_code
        return response

    def _enter_mailbox(self, mailbox: str) -> str:
        """Count a request in flight for ``mailbox``; 429 past the concurrency limit."""
        with self._lock:
            if self._in_flight.get(mailbox, 0) >= self.concurrency_limit:
                raise GraphError(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    {"Retry-After": "1"},
                )
            self._in_flight[mailbox] = self._in_flight.get(mailbox, 0) + 1
        return mailbox

    def _fault(self, path: str, method: str) -> _Fault | None:
        """Raise the first matching fault; an ``applied`` one is returned, to raise later."""
        with self._lock:
            for fault in self._faults:
                if fault.path_contains is not None and fault.path_contains.lower() not in (
                    path.lower()
                ):
                    continue
                if fault.method is not None and fault.method != method.upper():
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                if fault.applied:
                    return fault
                raise fault.error()
        return None

    def _dispatch(self, request: Request, email: str, body: Any = None) -> Response:
        segments = _me_segments(request.url.path)
        lowered = [s.lower() for s in segments]
        account = self.accounts.get(email.casefold())
        if lowered == ["me"] and request.method == "GET":
            if account is None:
                raise GraphError(404, "Request_ResourceNotFound", "The user does not exist.")
            return JSONResponse(_user_json(account))
        account = _mailbox(account)
        q = {k.lower(): v for k, v in request.query_params.items()}
        prefer = _prefer(request)
        base = self.link_base or f"{request.url.scheme}://{request.url.netloc}/v1.0"
        if request.method != "GET":
            return self._write(request, account, segments, body, prefer)
        if lowered == ["me", "calendars"]:
            return self._list_calendars(account, q, prefer, base, request)
        route = self._events_route(account, segments)
        if route is not None:
            return self._events_answer(account, route, q, prefer, base, request)
        calendar, rest = self._calendar_route(account, segments, lowered)
        if not rest:
            return JSONResponse(_select(_calendar_json(calendar, account), q, _CALENDAR_PROPERTIES))
        if rest == ["calendarview"]:
            return self._calendar_view(calendar, q, prefer, base, request)
        if rest == ["calendarview", "delta"]:
            return self._delta(account, calendar, q, prefer, base)
        raise GraphError(400, "BadRequest", "Resource not found for the segment.")

    def _events_answer(
        self,
        account: FakeAccount,
        route: tuple[FakeCalendar | None, str | None],
        q: dict[str, str],
        prefer: dict[str, str],
        base: str,
        request: Request,
    ) -> Response:
        """GET .../events (a listing) or .../events/{id} (one event)."""
        calendar, event_id = route
        if event_id is None and calendar is not None:
            return self._list_events(calendar, q, prefer, base, request)
        event = self._find_event(account, str(event_id), calendar)
        return JSONResponse(_present(event, prefer, q))

    def _calendar_route(
        self, account: FakeAccount, segments: list[str], lowered: list[str]
    ) -> tuple[FakeCalendar, list[str]]:
        """/me/calendar..., /me/calendarView..., /me/calendars/{id}...: the calendar and the
        path's rest (lower case)."""
        if lowered[1] == "calendars" and len(lowered) >= 3:
            return self._calendar(account, segments[2]), lowered[3:]
        if lowered[1] == "calendar":
            return self._calendar(account, None), lowered[2:]
        if lowered[1] == "calendarview":
            return self._calendar(account, None), lowered[1:]
        raise GraphError(400, "BadRequest", "Resource not found for the segment.")

    def _calendar(self, account: FakeAccount, calendar_id: str | None) -> FakeCalendar:
        for calendar in account.calendars.values():
            if (calendar_id is None and calendar.is_default) or calendar.id == calendar_id:
                return calendar
        raise GraphError(
            404, "ErrorItemNotFound", "The specified object was not found in the store."
        )

    def _list_calendars(
        self,
        account: FakeAccount,
        q: dict[str, str],
        prefer: dict[str, str],
        base: str,
        request: Request,
    ) -> Response:
        _selected(q, _CALENDAR_PROPERTIES)
        items = [
            _select(_calendar_json(c, account), q, _CALENDAR_PROPERTIES)
            for c in account.calendars.values()
        ]
        return self._page(items, q, prefer, f"{base}/me/calendars", request)

    def _page(
        self,
        items: list[dict[str, Any]],
        q: dict[str, str],
        prefer: dict[str, str],
        url: str,
        request: Request,
    ) -> Response:
        """``$skip``/``$top`` (or odata.maxpagesize) paging with a ``$skip`` nextLink."""
        skip = _int(q.get("$skip", "0"), "$skip")
        size = _int(q.get("$top") or prefer.get("odata.maxpagesize") or "0", "$top")
        size = min(size or self.default_page_size, _MAX_PAGE)
        body: dict[str, Any] = {"value": items[skip : skip + size]}
        if skip + size < len(items):
            params = {k: v for k, v in request.query_params.items() if k.lower() != "$skip"}
            params["$skip"] = str(skip + size)
            body["@odata.nextLink"] = f"{url}?{urlencode(params, safe='$')}"
        return _json(body, prefer)

    def _calendar_view(
        self,
        calendar: FakeCalendar,
        q: dict[str, str],
        prefer: dict[str, str],
        base: str,
        request: Request,
    ) -> Response:
        if "$filter" in q or "$search" in q:
            raise GraphError(400, "ErrorInvalidUrlQuery", "$filter/$search: not faked.")
        start, end = _window(q)
        _selected(q, _EVENT_PROPERTIES)  # refused even when nothing is listed
        items = [_present(i, prefer, q) for i in self._instances(calendar, start, end)]
        url = f"{base}/me/calendars/{calendar.id}/calendarView"
        return self._page(items, q, prefer, url, request)

    def _delta(
        self,
        account: FakeAccount,
        calendar: FakeCalendar,
        q: dict[str, str],
        prefer: dict[str, str],
        base: str,
    ) -> Response:
        for name in _DELTA_REFUSED:
            if name in q:
                raise GraphError(
                    400,
                    "ErrorInvalidUrlQuery",
                    f"The query parameter '{name}' is not supported with delta on calendarView.",
                )
        if "$skiptoken" in q:
            round_ = self._rounds.pop(q["$skiptoken"], None)
            if round_ is None:
                raise GraphError(410, "syncStateNotFound", "The sync state is not found.")
            self._check_owner(round_.state, account, calendar)
        elif "$deltatoken" in q:
            state = self._states.get(q["$deltatoken"])
            if state is None:
                raise GraphError(410, "syncStateNotFound", "The sync state is not found.")
            self._check_owner(state, account, calendar)
            round_ = self._new_round(calendar, state)
        else:
            start, end = _window(q)
            empty = _DeltaState(account.email, calendar.id, start, end, {})
            round_ = self._new_round(calendar, empty)
        size = min(_int(prefer.get("odata.maxpagesize") or "0", "odata.maxpagesize"), _MAX_PAGE)
        size = size or self.default_page_size
        rows, round_.rows = round_.rows[:size], round_.rows[size:]
        body: dict[str, Any] = {"value": [self._delta_row(r, prefer) for r in rows]}
        url = f"{base}/me/calendars/{calendar.id}/calendarView/delta"
        token = secrets.token_urlsafe(24)
        if round_.rows:
            self._rounds[token] = round_
            body["@odata.nextLink"] = f"{url}?$skiptoken={token}"
        else:
            self._states[token] = round_.state
            body["@odata.deltaLink"] = f"{url}?$deltatoken={token}"
        return _json(body, prefer)

    def _check_owner(self, state: _DeltaState, account: FakeAccount, cal: FakeCalendar) -> None:
        if state.email.casefold() != account.email.casefold() or state.calendar_id != cal.id:
            raise GraphError(400, "ErrorInvalidSyncStateData", "The sync state is not valid here.")

    def _new_round(self, calendar: FakeCalendar, since: _DeltaState) -> _Round:
        current = self._instances(calendar, since.start, since.end)
        snapshot = {i["id"]: i["changeKey"] for i in current}
        rows: list[dict[str, Any]] = [
            i for i in current if since.snapshot.get(i["id"]) != i["changeKey"]
        ]
        rows += [
            {"@odata.type": "#microsoft.graph.event", "id": gone, "@removed": {"reason": "deleted"}}
            for gone in since.snapshot
            if gone not in snapshot
        ]
        state = _DeltaState(since.email, calendar.id, since.start, since.end, snapshot)
        return _Round(state, [_copy(r) for r in rows])

    def _delta_row(self, row: dict[str, Any], prefer: dict[str, str]) -> dict[str, Any]:
        if "@removed" in row:
            return row
        if self.partial_occurrences_in_delta and row.get("type") == "occurrence":
            keep = ("@odata.type", "@odata.etag", "id", "type", "seriesMasterId", "start", "end")
            presented = _present(row, prefer, {})
            return {k: presented[k] for k in keep if k in presented}
        return _present(row, prefer, {})

    def _find_event(
        self, account: FakeAccount, event_id: str, only: FakeCalendar | None = None
    ) -> dict[str, Any]:
        for calendar in [only] if only is not None else account.calendars.values():
            if event_id in calendar.events:
                return calendar.events[event_id]
            master_id, key = _split_occurrence_id(event_id)
            master = calendar.events.get(master_id)
            if master is None or key is None or master["type"] != "seriesMaster":
                continue
            exceptions = calendar.exceptions.get(master_id, {})
            if key in exceptions:
                exception = exceptions[key]
                if exception is None:
                    break
                return exception
            if key in {o["_key"] for o in self._pattern(master)}:
                return self._occurrence(master, key)
        raise GraphError(
            404, "ErrorItemNotFound", "The specified object was not found in the store."
        )

    # --- events collections and writes ---------------------------------------------------------

    def _events_route(
        self, account: FakeAccount, segments: list[str]
    ) -> tuple[FakeCalendar | None, str | None] | None:
        """(calendar, event id) of an events path; calendar None: /me/events/{id} (any)."""
        lowered = [s.lower() for s in segments]
        if lowered[1:2] == ["events"] and len(lowered) in (2, 3):
            if len(lowered) == 3:
                return None, segments[2]
            return self._calendar(account, None), None
        if lowered[1:3] == ["calendar", "events"] and len(lowered) in (3, 4):
            return self._calendar(account, None), (segments[3] if len(lowered) == 4 else None)
        if lowered[1:2] == ["calendars"] and lowered[3:4] == ["events"] and len(lowered) in (4, 5):
            calendar = self._calendar(account, segments[2])
            return calendar, (segments[4] if len(lowered) == 5 else None)
        return None

    def _list_events(
        self,
        calendar: FakeCalendar,
        q: dict[str, str],
        prefer: dict[str, str],
        base: str,
        request: Request,
    ) -> Response:
        """Single instances and series masters; ``$filter`` on an extended property only."""
        if "$search" in q or "$orderby" in q:
            raise GraphError(400, "ErrorInvalidUrlQuery", "$search/$orderby: not faked.")
        events = list(calendar.events.values())
        if "$filter" in q:
            match = _PROPERTY_FILTER.match(q["$filter"].strip())
            if match is None:
                raise GraphError(
                    400,
                    "ErrorInvalidUrlQuery",
                    "$filter: only singleValueExtendedProperties/Any(ep: ep/id eq '...' and "
                    "ep/value eq '...') is faked.",
                )
            wanted = (_unquote_odata(match.group(2)), _unquote_odata(match.group(3)))
            events = [e for e in events if _has_property(e, *wanted)]
        _selected(q, _EVENT_PROPERTIES)
        items = [_present(e, prefer, q) for e in events]
        return self._page(items, q, prefer, f"{base}/me/calendars/{calendar.id}/events", request)

    def _write(
        self,
        request: Request,
        account: FakeAccount,
        segments: list[str],
        body: Any,
        prefer: dict[str, str],
    ) -> Response:
        method = request.method
        lowered = [s.lower() for s in segments]
        if lowered == ["me", "calendars"] and method == "POST":
            return self._create_calendar(account, body)
        if len(lowered) == 3 and lowered[1] == "calendars" and method == "DELETE":
            calendar = self._calendar(account, segments[2])
            if calendar.is_default:
                raise GraphError(
                    400,
                    "ErrorDeleteDistinguishedFolder",
                    "Distinguished folders cannot be deleted.",
                )
            self.remove_calendar(account.email, calendar.id)
            return Response(status_code=204)
        route = self._events_route(account, segments)
        if route is not None:
            calendar, event_id = route
            if event_id is None and calendar is not None and method == "POST":
                return self._create_event(account, calendar, body, prefer)
            if event_id is not None and method in ("PATCH", "DELETE"):
                return self._change_event(request, account, calendar, event_id, body, prefer)
        raise GraphError(405, "Request_BadRequest", f"{method} is not faked on this resource.")

    def _create_calendar(self, account: FakeAccount, body: Any) -> Response:
        if not isinstance(body, dict):
            raise GraphError(400, "BadRequest", "The request body is not a JSON object.")
        unknown = sorted(set(body) - _CALENDAR_PROPERTIES - {"@odata.type"})
        if unknown:
            raise GraphError(
                400,
                "RequestBodyRead",
                f"The property '{unknown[0]}' does not exist on type 'microsoft.graph.calendar'.",
            )
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise GraphError(400, "ErrorInvalidParameter", "A calendar needs a name.")
        if any(c.name.casefold() == name.casefold() for c in account.calendars.values()):
            raise GraphError(
                409, "ErrorFolderExists", "A folder with the specified name already exists."
            )
        calendar = self.add_calendar(account.email, name)
        return JSONResponse(_calendar_json(calendar, account), status_code=201)

    def _create_event(
        self, account: FakeAccount, calendar: FakeCalendar, body: Any, prefer: dict[str, str]
    ) -> Response:
        """POST an event; a ``transactionId`` already used in the mailbox gives that event."""
        data = _event_input(body)
        _check_times(data)
        transaction = data.get("transactionId")
        if transaction is not None:
            for other in account.calendars.values():
                for stored in other.events.values():
                    if stored.get("transactionId") == transaction:
                        return JSONResponse(_present(stored, prefer, {}), status_code=201)
        created = self._store(account, calendar, data)
        return JSONResponse(_present(created, prefer, {}), status_code=201)

    def _change_event(
        self,
        request: Request,
        account: FakeAccount,
        calendar: FakeCalendar | None,
        event_id: str,
        body: Any,
        prefer: dict[str, str],
    ) -> Response:
        """PATCH or DELETE a single instance or series master, honouring If-Match."""
        owner = next(
            (
                c
                for c in ([calendar] if calendar is not None else account.calendars.values())
                if event_id in c.events
            ),
            None,
        )
        if owner is None:
            self._find_event(account, event_id, calendar)  # 404 when it does not exist at all
            raise GraphError(400, "ErrorInvalidRequest", "Writing occurrences is not faked.")
        stored = owner.events[event_id]
        condition = (request.headers.get("if-match") or "").strip()
        current = (stored["@odata.etag"], stored["changeKey"], "*")
        if condition and condition not in current:
            raise GraphError(
                412, "PreconditionFailed", "The item has changed since the given ETag."
            )
        if request.method == "DELETE":
            self.delete_event(account.email, owner.id, event_id)
            return Response(status_code=204)
        data = _event_input(body)
        if "transactionId" in data and data["transactionId"] != stored.get("transactionId"):
            raise GraphError(400, "ErrorInvalidRequest", "transactionId cannot be changed.")
        merged = _copy(stored)
        props = data.pop("singleValueExtendedProperties", None)
        if props is not None:
            merged["singleValueExtendedProperties"] = _merged_properties(
                merged.get("singleValueExtendedProperties"), props
            )
        merged.update(data)
        _check_times(merged)
        return JSONResponse(_present(self._store(account, owner, merged), prefer, {}))

    def _store(
        self, account: FakeAccount, calendar: FakeCalendar, data: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            return self.put_event(account.email, calendar.id, data)
        except ValueError as exc:
            raise GraphError(400, "ErrorInvalidRequest", str(exc)) from None

    # --- JSON batching --------------------------------------------------------------------------

    def _batch(self, request: Request, email: str, body: Any) -> Response:
        """POST /$batch: each request runs as if sent alone (faults included); the answers
        come back in reverse order, so callers must correlate them by id."""
        items = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise GraphError(400, "BadRequest", "The batch body needs a 'requests' array.")
        if not items or len(items) > MAX_BATCH_REQUESTS:
            raise GraphError(
                400, "BadRequest", f"A batch holds 1 to {MAX_BATCH_REQUESTS} requests."
            )
        seen: set[str] = set()
        for item in items:
            _check_batch_item(item, seen)
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        answers = [self._batch_item(request, email, token, item) for item in items]
        answers.reverse()
        return JSONResponse({"responses": answers})

    def _batch_item(
        self, outer: Request, email: str, token: str | None, item: dict[str, Any]
    ) -> dict[str, Any]:
        split = urlsplit(item["url"])
        raw_path = "/v1.0/" + split.path.lstrip("/")
        path = unquote(raw_path)
        headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        logged = LoggedRequest(
            method=item["method"].upper(),
            path=path,
            query=split.query,
            params=dict(parse_qsl(split.query)),
            prefer=headers.get("prefer", ""),
            token=token,
            body=item.get("body"),
            if_match=headers.get("if-match"),
            batch_id=item["id"],
        )
        host = outer.headers.get("host", "")
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": logged.method,
            "scheme": outer.url.scheme,
            "server": outer.scope.get("server"),
            "root_path": "",
            "path": path,
            "raw_path": raw_path.encode(),
            "query_string": split.query.encode(),
            "headers": [(b"host", host.encode())]
            + [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        }
        try:
            late = self._fault(path, logged.method)
            response = self._dispatch(Request(scope), email, logged.body)
            if late is not None:
                raise late.error()
        except GraphError as exc:
            response = _error_response(exc)
        logged.status = response.status_code
        self.requests.append(logged)
        answer: dict[str, Any] = {
            "id": item["id"],
            "status": response.status_code,
            "headers": {k: v for k, v in response.headers.items() if k != "content-length"},
        }
        if response.body:
            answer["body"] = json.loads(response.body)
        return answer

    # --- change notifications: subscriptions ---------------------------------------------------

    @property
    def subscriptions(self) -> list[FakeSubscription]:
        """The live (created, not deleted, not expired) subscriptions, as copies."""
        with self._lock:
            return [dataclasses.replace(s) for s in self._live()]

    def remove_subscription(self, subscription_id: str) -> None:
        """Drop a subscription without telling anyone (as its expiry would)."""
        with self._lock:
            self._subscriptions.pop(subscription_id, None)

    def send_lifecycle(self, subscription_id: str, event: str) -> None:
        """Queue a lifecycle notification to the subscription's lifecycle URL."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"lifecycle events are {', '.join(LIFECYCLE_EVENTS)}")
        with self._lock:
            subscription = {s.id: s for s in self._live()}.get(subscription_id)
            if subscription is None:
                raise KeyError(subscription_id)
            if subscription.lifecycle_url is None:
                raise ValueError("the subscription has no lifecycleNotificationUrl")
            note = {
                "lifecycleEvent": event,
                "subscriptionId": subscription.id,
                "subscriptionExpirationDateTime": _graph_instant(subscription.expires_at),
                "clientState": subscription.client_state,
                "tenantId": self.tenant_id,
            }
            if event == "subscriptionRemoved":
                del self._subscriptions[subscription.id]
            self._enqueue(subscription.id, event, subscription.lifecycle_url, note)

    def _live(self) -> list[FakeSubscription]:
        now = datetime.now(UTC)
        for subscription_id, subscription in list(self._subscriptions.items()):
            if subscription.expires_at <= now:
                del self._subscriptions[subscription_id]
        return list(self._subscriptions.values())

    async def _subscription_endpoint(
        self, method: str, email: str, segments: list[str], body: Any
    ) -> Response:
        with self._lock:
            account = self.accounts.get(email.casefold())
            if account is None or not account.mailbox_enabled:
                raise GraphError(
                    404,
                    "MailboxNotEnabledForRESTAPI",
                    "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
                )
        if len(segments) == 1 and method == "POST":
            return await self._create_subscription(account, body)
        with self._lock:
            if len(segments) == 1 and method == "GET":
                owned = [s for s in self._live() if s.email == account.email.casefold()]
                return JSONResponse(
                    {
                        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions",
                        "value": [self._subscription_json(s) for s in owned],
                    }
                )
            if len(segments) == 2 and method in ("GET", "PATCH", "DELETE"):
                subscription = self._owned(account, segments[1])
                if method == "DELETE":
                    del self._subscriptions[subscription.id]
                    return Response(status_code=204)
                if method == "PATCH":
                    if not isinstance(body, dict):
                        raise GraphError(400, "BadRequest", "The request body is not JSON.")
                    others = sorted(set(body) - {"expirationDateTime", "@odata.type"})
                    if others:
                        raise GraphError(
                            400, "InvalidRequest", f"Updating {others[0]} is not faked."
                        )
                    expires = self._check_expiration(body.get("expirationDateTime"))
                    subscription.expires_at = expires
                return JSONResponse(self._subscription_json(subscription))
            if len(segments) == 3 and segments[2].lower() == "reauthorize" and method == "POST":
                self._owned(account, segments[1])
                return Response(status_code=204)
        raise GraphError(405, "Request_BadRequest", "The method is not allowed here.")

    def _owned(self, account: FakeAccount, subscription_id: str) -> FakeSubscription:
        for subscription in self._live():
            if (
                subscription.id == subscription_id
                and subscription.email == account.email.casefold()
            ):
                return subscription
        raise GraphError(
            404, "ResourceNotFound", f"The object was not found: subscription {subscription_id}"
        )

    async def _create_subscription(self, account: FakeAccount, body: Any) -> Response:
        with self._lock:
            subscription = self._check_subscription(account, body)
        for url in (subscription.notification_url, subscription.lifecycle_url):
            if url is not None:
                problem = await self._handshake(url)
                if problem is not None:
                    raise GraphError(400, "InvalidRequest", f"{_VALIDATION_FAILED} {problem}")
        with self._lock:
            self._subscriptions[subscription.id] = subscription
            return JSONResponse(self._subscription_json(subscription), status_code=201)

    def _check_subscription(self, account: FakeAccount, body: Any) -> FakeSubscription:
        if not isinstance(body, dict):
            raise GraphError(400, "BadRequest", "The request body is not a JSON object.")
        for name in body:
            if name not in _SUBSCRIPTION_PROPERTIES:
                raise GraphError(
                    400,
                    "BadRequest",
                    f"The property '{name}' does not exist on type 'microsoft.graph.subscription'.",
                )
        for name in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            value = body.get(name)
            if not isinstance(value, str) or not value.strip():
                raise GraphError(400, "InvalidRequest", f"The '{name}' property is required.")
        change_type = body["changeType"]
        changes = [c.strip() for c in change_type.split(",")]
        if any(c not in _CHANGE_TYPES for c in changes) or len(set(changes)) != len(changes):
            raise GraphError(
                400,
                "InvalidRequest",
                f"Invalid changeType '{change_type}': use created, updated, deleted.",
            )
        calendar_id = self._subscribed_calendar(account, body["resource"])
        notification_url = _https_url(body["notificationUrl"], "notificationUrl")
        lifecycle_url = body.get("lifecycleNotificationUrl")
        if lifecycle_url is not None:
            lifecycle_url = _https_url(lifecycle_url, "lifecycleNotificationUrl")
        expires = self._check_expiration(body["expirationDateTime"])
        client_state = body.get("clientState")
        if client_state is not None and not isinstance(client_state, str):
            raise GraphError(400, "BadRequest", "clientState must be a string.")
        if client_state is not None and len(client_state) > _MAX_CLIENT_STATE:
            raise GraphError(
                400,
                "InvalidRequest",
                f"clientState is longer than the maximum of {_MAX_CLIENT_STATE} characters.",
            )
        return FakeSubscription(
            id=str(uuid.uuid4()),
            email=account.email.casefold(),
            calendar_id=calendar_id,
            resource=body["resource"],
            change_type=change_type,
            notification_url=notification_url,
            lifecycle_url=lifecycle_url,
            client_state=client_state,
            expires_at=expires,
            creator_id=account.id,
            application_id=self.application_id,
        )

    def _subscribed_calendar(self, account: FakeAccount, resource: str) -> str | None:
        parts = resource.strip().strip("/").split("/")
        lowered = [p.lower() for p in parts]
        if lowered == ["me", "events"]:
            self._calendar(account, None)  # 404 without a default calendar
            return None
        if len(parts) == 4 and lowered[:2] == ["me", "calendars"] and lowered[3] == "events":
            return self._calendar(account, unquote(parts[2])).id
        raise GraphError(
            400,
            "InvalidRequest",
            f"Resource '{resource}' is not supported "
            "(faked: me/calendars/{id}/events, me/events).",
        )

    def _check_expiration(self, value: object) -> datetime:
        expires = _parse_instant(value)
        if expires is None:
            raise GraphError(400, "InvalidRequest", "expirationDateTime is not a valid date-time.")
        now = datetime.now(UTC)
        if expires <= now:
            raise GraphError(
                400, "InvalidRequest", "Subscription expiration must be in the future."
            )
        if expires > now + timedelta(minutes=self.max_subscription_minutes):
            raise GraphError(
                400,
                "InvalidRequest",
                f"Subscription expiration can only be {self.max_subscription_minutes} minutes "
                "in the future.",
            )
        return expires

    async def _handshake(self, url: str) -> str | None:
        """POST ?validationToken=...; None when the endpoint echoed it, else what went wrong."""
        request_id = uuid.uuid4()
        token = (
            "Validation: Testing client application reachability for subscription "
            f"Request-Id: {request_id}"
        )
        parts = urlsplit(url)
        query = urlencode({"validationToken": token})
        target = urlunsplit(
            parts._replace(query=f"{parts.query}&{query}" if parts.query else query)
        )
        status: int | None = None
        error: str | None = None
        problem: str | None = None
        try:
            async with asyncio.timeout(self.validation_timeout):
                async with httpx.AsyncClient(
                    verify=False, follow_redirects=False, timeout=self.validation_timeout
                ) as client:
                    response = await client.post(
                        target, content=b"", headers={"Content-Type": "text/plain; charset=utf-8"}
                    )
                    text = response.text
            status = response.status_code
            media = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if status != 200:
                problem = "Notification endpoint must respond with 200 OK to validation request."
            elif media != "text/plain":
                problem = "The validation response must have Content-Type text/plain."
            elif text != token:
                problem = "Response must exactly match validationToken query parameter."
        except (TimeoutError, httpx.TimeoutException):
            error = "timed out"
            problem = "Notification endpoint must respond with 200 OK to validation request."
        except Exception as exc:  # unreachable, TLS failure, bad URL
            error = f"{type(exc).__name__}: {exc}"
            problem = "Notification endpoint must respond with 200 OK to validation request."
        with self._lock:
            self.validations.append(Validation(url, token, status, error, problem is None))
        return problem

    def _subscription_json(self, subscription: FakeSubscription) -> dict[str, Any]:
        return subscription.as_json()

    # --- change notifications: delivery ---------------------------------------------------------

    def _notify(
        self,
        account: FakeAccount,
        calendar: FakeCalendar,
        event_id: str,
        change: str,
        etag: str | None,
    ) -> None:
        """Queue a change notification for each live subscription watching ``calendar``."""
        for subscription in self._live():
            if subscription.email != account.email.casefold():
                continue
            if subscription.calendar_id is None:
                if not calendar.is_default:
                    continue
            elif subscription.calendar_id != calendar.id:
                continue
            if change not in subscription.change_types:
                continue
            resource = f"Users/{account.id}/Events/{event_id}"
            data: dict[str, Any] = {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource}
            if etag and change != "deleted":
                data["@odata.etag"] = etag
            data["id"] = event_id
            note = {
                "subscriptionId": subscription.id,
                "subscriptionExpirationDateTime": _graph_instant(subscription.expires_at),
                "changeType": change,
                "resource": resource,
                "resourceData": data,
                "clientState": subscription.client_state,
                "tenantId": self.tenant_id,
            }
            self._enqueue(subscription.id, change, subscription.notification_url, note)

    def _enqueue(self, subscription_id: str, kind: str, url: str, note: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return
            body = {"value": [note]}
            record = partial(Delivery, subscription_id, kind, url, body)
            self._push.send("POST", url, json=body, record=record)

    # --- events and recurrence ------------------------------------------------------------------

    def _normalise(
        self, data: dict[str, Any], event_id: str, email: str, old: dict[str, Any] | None
    ) -> dict[str, Any]:
        data = dict(data)
        for key in ("start", "end"):
            value = data.get(key)
            if isinstance(value, date):
                data[key] = _graph_time(value)
                if not isinstance(value, datetime):
                    data["isAllDay"] = True
            elif not isinstance(value, dict) or "dateTime" not in value:
                raise ValueError(f"an event needs {key} (a datetime, date or Graph dateTimeTZ)")
        tag = data.pop("export_tag", None)
        if tag is not None:
            data["singleValueExtendedProperties"] = [{"id": EXPORT_PROPERTY_ID, "value": tag}]
        recurrence = data.get("recurrence")
        if recurrence is not None:
            kind = recurrence.get("pattern", {}).get("type")
            if kind not in ("daily", "weekly"):
                raise ValueError(f"recurrence pattern {kind!r} is not faked (daily, weekly)")
        seq = next(self._seq)
        now = _utc_text(datetime.now(UTC))
        stored: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.event",
            "createdDateTime": (old or {}).get("createdDateTime", now),
            "iCalUId": (old or {}).get("iCalUId")
            or f"040000008200E00074C5B7101A82E008{uuid.uuid4().hex.upper()}",
            "subject": "",
            "bodyPreview": "",
            "importance": "normal",
            "sensitivity": "normal",
            "isAllDay": False,
            "isCancelled": False,
            "isOrganizer": True,
            "isDraft": False,
            "isReminderOn": True,
            "reminderMinutesBeforeStart": 15,
            "hasAttachments": False,
            "responseRequested": True,
            "seriesMasterId": None,
            "showAs": "busy",
            "type": "seriesMaster" if recurrence is not None else "singleInstance",
            "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
            "recurrence": None,
            "categories": [],
            "location": {"displayName": ""},
            "locations": [],
            "attendees": [],
            "organizer": {"emailAddress": {"name": email.split("@")[0], "address": email}},
            **{k: v for k, v in data.items() if not k.startswith("_")},
        }
        stored.update(
            id=event_id,
            changeKey=f"ck{seq}",
            lastModifiedDateTime=now,
        )
        stored["@odata.etag"] = f'W/"ck{seq}"'
        stored["originalStartTimeZone"] = stored["start"].get("timeZone", "UTC")
        stored["originalEndTimeZone"] = stored["end"].get("timeZone", "UTC")
        return stored

    def _instances(
        self, calendar: FakeCalendar, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for event in calendar.events.values():
            if event["type"] == "seriesMaster":
                exceptions = calendar.exceptions.get(event["id"], {})
                limit = end.date() + timedelta(days=2)
                for occurrence in self._pattern(event, until=limit):
                    if occurrence["_key"] not in exceptions:
                        found.append(occurrence)
                found.extend(e for e in exceptions.values() if e is not None)
            else:
                found.append(event)
        hits = [i for i in found if _overlaps(i, start, end)]
        hits.sort(key=lambda i: (_bounds(i)[0], i["id"]))
        return [{k: v for k, v in i.items() if k != "_key"} for i in hits]

    def _pattern(
        self, master: dict[str, Any], until: date | None = None
    ) -> Iterator[dict[str, Any]]:
        """The occurrences of a series master (no exceptions applied), in order."""
        for day in _pattern_dates(master, until):
            yield self._occurrence(master, day.isoformat())

    def _occurrence(self, master: dict[str, Any], key: str) -> dict[str, Any]:
        day = date.fromisoformat(key)
        first = _naive(master["start"]["dateTime"])
        last = _naive(master["end"]["dateTime"])
        zone = _zone(master["start"].get("timeZone"))
        start = datetime.combine(day, first.time())
        if master.get("isAllDay"):
            end = start + (last - first)
        else:  # same exact duration; wall clock in the master's zone
            duration = _aware(last, _zone(master["end"].get("timeZone"))) - _aware(first, zone)
            end = (_aware(start, zone) + duration).astimezone(zone).replace(tzinfo=None)
        occurrence = {
            k: _copy(v) for k, v in master.items() if k not in ("recurrence", "id", "type")
        }
        occurrence.update(
            id=self.occurrence_id(master["id"], day),
            type="occurrence",
            seriesMasterId=master["id"],
            recurrence=None,
            iCalUId=f"{master['iCalUId']}{day.strftime('%Y%m%d')}",
            start={"dateTime": _wall_text(start), "timeZone": master["start"].get("timeZone")},
            end={"dateTime": _wall_text(end), "timeZone": master["end"].get("timeZone")},
            originalStart=_utc_text(_aware(start, zone)),
            _key=key,
        )
        return occurrence


def start_graph_fake(
    token_validator: TokenValidator | None = None, *, default_page_size: int = 10
) -> GraphFake:
    """A running fake; call ``.stop()`` (or use it as a context manager) when done."""
    return GraphFake(token_validator, default_page_size=default_page_size).start()


# --- helpers --------------------------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"AAMk{prefix}{uuid.uuid4().hex}"


def _split_occurrence_id(event_id: str) -> tuple[str, str | None]:
    master_id, _, stamp = event_id.rpartition("_")
    if not master_id or not re.fullmatch(r"\d{8}", stamp):
        return event_id, None
    try:
        day = datetime.strptime(stamp, "%Y%m%d").date()
    except ValueError:
        return event_id, None
    return master_id, day.isoformat()


def _pattern_dates(master: dict[str, Any], until: date | None) -> Iterator[date]:
    recurrence = master.get("recurrence") or {}
    pattern = recurrence.get("pattern", {})
    range_ = recurrence.get("range", {})
    first_day = _naive(master["start"]["dateTime"]).date()
    start = date.fromisoformat(range_["startDate"]) if range_.get("startDate") else first_day
    kind = range_.get("type", "noEnd")
    end = date.fromisoformat(range_["endDate"]) if kind == "endDate" else None
    count = int(range_.get("numberOfOccurrences", 0)) if kind == "numbered" else None
    limit = _MAX_OCCURRENCES if count is None else min(count, _MAX_OCCURRENCES)
    last = min((d for d in (end, until) if d is not None), default=None)
    for emitted, day in enumerate(_candidates(pattern, start)):
        if emitted >= limit or (last is not None and day > last):
            return
        yield day


def _candidates(pattern: dict[str, Any], start: date) -> Iterator[date]:
    """The pattern's days from ``start`` on, without end (daily, or weekly on its days)."""
    interval = max(1, int(pattern.get("interval", 1)))
    if pattern.get("type") == "daily":
        return (start + timedelta(days=n * interval) for n in itertools.count())
    days = sorted(_WEEKDAYS.index(d.lower()) for d in pattern.get("daysOfWeek", []))
    if not days:
        days = [start.weekday()]
    week_first = _WEEKDAYS.index(str(pattern.get("firstDayOfWeek", "sunday")).lower())
    week_start = start - timedelta(days=(start.weekday() - week_first) % 7)
    order = sorted(days, key=lambda d: (d - week_first) % 7)

    def weekly() -> Iterator[date]:
        for n in itertools.count():
            monday_ish = week_start + timedelta(weeks=n * interval)
            for d in order:
                yield monday_ish + timedelta(days=(d - week_first) % 7)

    return (d for d in weekly() if d >= start)


def _zone(name: object) -> tzinfo:
    label = str(name or "UTC")
    if label.upper() in ("UTC", "ETC/UTC", "GMT"):
        return UTC
    try:
        return ZoneInfo(label)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time zone {label!r} is not faked (use UTC or an IANA name)") from None


def _https_url(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise GraphError(400, "BadRequest", f"{name} must be a string.")
    parts = urlsplit(value)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise GraphError(
            400, "InvalidRequest", f"Invalid {name} '{value}': only https URLs are supported."
        )
    return value


def _parse_instant(value: object) -> datetime | None:
    """An ISO 8601 date-time (up to 7 fraction digits, Z or an offset; naive is UTC)."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?)(?:\.(\d{1,7}))?(Z|[+-]\d\d:\d\d)?",
        value.strip(),
        re.IGNORECASE,
    )
    if match is None:
        return None
    head, fraction, zone = match.groups()
    text = head + (f".{fraction[:6].ljust(6, '0')}" if fraction else "")
    if zone and zone.upper() != "Z":
        text += zone
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _graph_instant(value: datetime) -> str:
    """Graph's form of an instant: UTC with seven fraction digits."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _naive(text: str) -> datetime:
    head, _, fraction = text.partition(".")
    value = datetime.fromisoformat(head)
    return value.replace(tzinfo=None, microsecond=int((fraction or "0")[:6].ljust(6, "0")))


def _aware(naive: datetime, zone: tzinfo) -> datetime:
    return naive.replace(tzinfo=zone)


def _wall_text(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.0000000")


def _utc_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _graph_time(value: date) -> dict[str, str]:
    if not isinstance(value, datetime):  # all-day: a floating midnight
        return {
            "dateTime": _wall_text(datetime.combine(value, datetime.min.time())),
            "timeZone": "UTC",
        }
    if value.tzinfo is None:
        raise ValueError("use aware datetimes (or dates for all-day events)")
    if isinstance(value.tzinfo, ZoneInfo):
        name = value.tzinfo.key
    else:
        value, name = value.astimezone(UTC), "UTC"
    return {"dateTime": _wall_text(value.replace(tzinfo=None)), "timeZone": name}


def _bounds(event: dict[str, Any]) -> tuple[datetime, datetime]:
    start = _aware(_naive(event["start"]["dateTime"]), _zone(event["start"].get("timeZone")))
    end = _aware(_naive(event["end"]["dateTime"]), _zone(event["end"].get("timeZone")))
    return start, max(start, end)


def _overlaps(event: dict[str, Any], start: datetime, end: datetime) -> bool:
    first, last = _bounds(event)
    if first == last:
        return start <= first < end
    return first < end and last > start


def _window(q: dict[str, str]) -> tuple[datetime, datetime]:
    if not q.get("startdatetime") or not q.get("enddatetime"):
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime.",
        )
    try:
        start = datetime.fromisoformat(q["startdatetime"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(q["enddatetime"].replace("Z", "+00:00"))
    except ValueError:
        raise GraphError(
            400, "ErrorInvalidParameter", "StartDateTime or EndDateTime is not a date-time."
        ) from None
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    if end <= start:
        raise GraphError(400, "ErrorInvalidParameter", "EndDateTime must be after StartDateTime.")
    return start, end


def _int(value: str, name: str) -> int:
    if not value.isdigit():
        raise GraphError(400, "BadRequest", f"Invalid value for {name}.")
    return int(value)


def _prefer(request: Request) -> dict[str, str]:
    found: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for part in header.split(","):
            name, _, value = part.strip().partition("=")
            if name:
                found[name.strip().lower()] = value.strip().strip('"')
    return found


def _present(event: dict[str, Any], prefer: dict[str, str], q: dict[str, str]) -> dict[str, Any]:
    """The wire form: times in the preferred zone, $select and $expand applied."""
    out = {k: _copy(v) for k, v in event.items() if not k.startswith("_")}
    zone_name = prefer.get("outlook.timezone") or "UTC"
    try:
        zone = _zone(zone_name)
    except ValueError:
        zone, zone_name = UTC, "UTC"
    for key in ("start", "end"):
        value = event[key]
        wall = _naive(value["dateTime"])
        if not event.get("isAllDay"):
            wall = _aware(wall, _zone(value.get("timeZone"))).astimezone(zone).replace(tzinfo=None)
        out[key] = {"dateTime": _wall_text(wall), "timeZone": zone_name}
    props = out.pop("singleValueExtendedProperties", None) or []
    if "$expand" in q:
        match = _EXPAND.match(q["$expand"].strip())
        if match is None:
            raise GraphError(400, "BadRequest", "Parsing OData Select and Expand failed.")
        wanted = match.group(1).casefold()
        chosen = [p for p in props if str(p.get("id", "")).casefold() == wanted]
        if chosen:
            out["singleValueExtendedProperties"] = chosen
    return _select(out, q, _EVENT_PROPERTIES)


def _selected(q: dict[str, str], known: set[str]) -> set[str] | None:
    """The ``$select``ed property names (None: all); unknown names are refused."""
    if "$select" not in q:
        return None
    names = {n.strip() for n in q["$select"].split(",") if n.strip()}
    lowered = {k.lower(): k for k in known}
    for name in names:
        if name.lower() not in lowered:
            raise GraphError(
                400, "RequestBroker--ParseUri", f"Could not find a property named '{name}'."
            )
    return {lowered[n.lower()] for n in names}


def _select(item: dict[str, Any], q: dict[str, str], known: set[str]) -> dict[str, Any]:
    names = _selected(q, known)
    if names is None:
        return item
    keep = names | {"id", "singleValueExtendedProperties"}
    return {k: v for k, v in item.items() if k in keep or k.startswith("@odata.")}


def _event_input(body: Any) -> dict[str, Any]:
    """The writable properties of a POSTed / PATCHed event (shapes checked, not times)."""
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "The request body is not a JSON object.")
    data = {k: v for k, v in body.items() if k != "@odata.type"}
    for name in data:
        if name in _READ_ONLY_EVENT_PROPERTIES:
            raise GraphError(400, "ErrorInvalidPropertySet", f"The property '{name}' is read-only.")
        if name not in _EVENT_PROPERTIES:
            raise GraphError(
                400,
                "RequestBodyRead",
                f"The property '{name}' does not exist on type 'microsoft.graph.event'.",
            )
    props = data.get("singleValueExtendedProperties")
    if props is not None and not (
        isinstance(props, list)
        and all(
            isinstance(p, dict) and isinstance(p.get("id"), str) and isinstance(p.get("value"), str)
            for p in props
        )
    ):
        raise GraphError(400, "BadRequest", "singleValueExtendedProperties: [{id, value}].")
    if "transactionId" in data and not isinstance(data["transactionId"], str):
        raise GraphError(400, "BadRequest", "transactionId must be a string.")
    return data


def _check_times(event: dict[str, Any]) -> None:
    """start/end present and parseable in a known zone (UTC or IANA; Windows names are not
    faked); end not before start; all-day events at midnights."""
    for key in ("start", "end"):
        value = event.get(key)
        if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
            raise GraphError(400, "ErrorInvalidRequest", f"The event needs {key}.dateTime.")
        try:
            wall = _naive(value["dateTime"])
        except ValueError:
            raise GraphError(400, "ErrorInvalidRequest", f"{key}.dateTime is invalid.") from None
        try:
            _zone(value.get("timeZone"))
        except ValueError:
            raise GraphError(
                400,
                "TimeZoneNotSupportedException",
                f"A valid TimeZone value must be specified. The following TimeZone value is "
                f"not supported: '{value.get('timeZone')}'.",
            ) from None
        if event.get("isAllDay") and wall.time() != clock_time(0):
            raise GraphError(
                400, "ErrorPropertyValidationFailure", "All-day events start and end at midnight."
            )
    start = _aware(_naive(event["start"]["dateTime"]), _zone(event["start"].get("timeZone")))
    end = _aware(_naive(event["end"]["dateTime"]), _zone(event["end"].get("timeZone")))
    if end < start:
        raise GraphError(400, "ErrorInvalidRequest", "The event ends before it starts.")


def _merged_properties(old: Any, new: list[dict[str, str]]) -> list[dict[str, str]]:
    """Extended properties after a PATCH: the given ones set, the others kept."""
    merged = [dict(p) for p in old or []]
    for prop in new:
        for existing in merged:
            if str(existing.get("id", "")).casefold() == prop["id"].casefold():
                existing["value"] = prop["value"]
                break
        else:
            merged.append(dict(prop))
    return merged


def _has_property(event: dict[str, Any], prop_id: str, value: str) -> bool:
    """Extended property match as Graph filters: id and value compared case-insensitively."""
    return any(
        str(p.get("id", "")).casefold() == prop_id.casefold()
        and str(p.get("value", "")).casefold() == value.casefold()
        for p in event.get("singleValueExtendedProperties") or []
    )


def _unquote_odata(literal: str) -> str:
    return literal.replace("''", "'")


def _check_batch_item(item: Any, seen: set[str]) -> None:
    """One entry of a $batch: id, method, relative url; Content-Type with a body."""
    if not isinstance(item, dict) or not all(
        isinstance(item.get(k), str) and item.get(k) for k in ("id", "method", "url")
    ):
        raise GraphError(400, "BadRequest", "Each batch request needs id, method and url.")
    if item["id"].casefold() in seen:
        raise GraphError(400, "BadRequest", f"Duplicate batch request id '{item['id']}'.")
    seen.add(item["id"].casefold())
    if "dependsOn" in item:
        raise GraphError(400, "BadRequest", "dependsOn is not faked.")
    if urlsplit(item["url"]).scheme:
        raise GraphError(400, "BadRequest", "Batch request URLs are relative (e.g. /me/events).")
    headers = item.get("headers") or {}
    if not isinstance(headers, dict):
        raise GraphError(400, "BadRequest", "Batch request headers must be an object.")
    if "body" in item and not any(str(k).lower() == "content-type" for k in headers):
        raise GraphError(400, "BadRequest", "A batch request with a body needs Content-Type.")


def _calendar_json(calendar: FakeCalendar, account: FakeAccount) -> dict[str, Any]:
    return {
        "id": calendar.id,
        "name": calendar.name,
        "color": "auto",
        "hexColor": "",
        "isDefaultCalendar": calendar.is_default,
        "changeKey": calendar.change_key,
        "canShare": calendar.can_edit,
        "canViewPrivateItems": True,
        "canEdit": calendar.can_edit,
        "isRemovable": not calendar.is_default,
        "isTallyingResponses": True,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "owner": {"name": account.display_name, "address": account.email},
    }


def _user_json(account: FakeAccount) -> dict[str, Any]:
    return {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
        "id": account.id,
        "displayName": account.display_name,
        "mail": account.email,
        "userPrincipalName": account.upn,
    }


def _json(body: dict[str, Any], prefer: dict[str, str]) -> Response:
    applied = []
    if "outlook.timezone" in prefer:
        applied.append(f'outlook.timezone="{prefer["outlook.timezone"]}"')
    if "odata.maxpagesize" in prefer:
        applied.append(f"odata.maxpagesize={prefer['odata.maxpagesize']}")
    headers = {"Preference-Applied": ", ".join(applied)} if applied else None
    return JSONResponse(body, headers=headers)


def _me_segments(path: str) -> list[str]:
    """The segments of a /v1.0/me/... path after the version (400 for any other path)."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0].lower() != "v1.0":
        raise GraphError(400, "BadRequest", "Invalid version.")
    segments = parts[1:]
    if not segments or segments[0].lower() != "me":
        raise GraphError(400, "BadRequest", "Resource not found for the segment.")
    return segments


def _mailbox(account: FakeAccount | None) -> FakeAccount:
    """The account, if its mailbox can be used over REST."""
    if account is None or not account.mailbox_enabled:
        raise GraphError(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    return account


async def _logged(request: Request, token: str | None) -> LoggedRequest:
    """The request as the fake records it (JSON bodies decoded)."""
    logged = LoggedRequest(
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        params=dict(request.query_params),
        prefer=", ".join(request.headers.getlist("prefer")),
        token=token,
        if_match=request.headers.get("if-match"),
    )
    if request.method in ("POST", "PATCH", "PUT"):
        raw = await request.body()
        try:
            logged.body = json.loads(raw) if raw else None
        except ValueError:
            logged.body = raw.decode("utf-8", "replace")
    return logged


def _error_response(exc: GraphError) -> Response:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    request_id = str(uuid.uuid4())
    body = {
        "error": {
            "code": exc.code,
            "message": exc.message,
            "innerError": {"date": now, "request-id": request_id, "client-request-id": request_id},
        }
    }
    return JSONResponse(body, status_code=exc.status, headers=exc.headers or None)


def _copy(value: _T) -> _T:
    """A deep copy of JSON-like data (dicts, lists, scalars)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [_copy(v) for v in value]  # type: ignore[return-value]
    return value
