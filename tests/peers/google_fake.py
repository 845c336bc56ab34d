"""A fake of the Google Calendar API v3, served over real HTTP on 127.0.0.1.

Google Calendar cannot run here, so this contract fake stands in for it. It follows the
published formats and says no where Google would:

* Every request is checked against Google's discovery document (method + path template, the
  query parameters known for that method, their types, enums and formats, repetition). A
  request that does not conform gets a Google-style 400 and is recorded in ``violations``;
  so are misuses the reference pages forbid (``syncToken`` with ``timeMin``/``timeMax``,
  ``showDeleted=false`` or ``orderBy``; a ``pageToken`` replayed with other parameters).
* Every JSON answer is checked against the discovery ``schemas`` (property names and types,
  recursively); mismatches land in ``response_violations``.
* Bearer tokens are checked by ``token_validator`` (token -> account e-mail or None); the
  default looks tokens up in ``fake.tokens``.

Served: ``calendarList.list``, ``calendarList.get``, ``calendars.get``, ``events.list``,
``events.get``, ``events.watch`` and ``channels.stop``, and the writes below (JSON request
bodies are checked against the discovery schema too: unknown properties, wrong types and a
non-JSON content type are violations). Other documented methods answer 501 and are noted in
``unimplemented`` (not a violation: the request was valid, the fake just cannot serve it).
``events.list`` supports ``singleEvents`` (recurring events expanded into instances
``<id>_<YYYYMMDDTHHMMSSZ>`` / ``<id>_<YYYYMMDD>``, with exceptions and EXDATE),
``timeMin``/``timeMax``, ``showDeleted``, ``orderBy``, ``iCalUID``,
``private``/``sharedExtendedProperty``, ``eventTypes``, paging (``maxResults``, ``pageToken``;
``page_size`` caps pages further) and incremental sync: every mutation gets a sequence number,
``nextSyncToken`` encodes it and a ``syncToken`` read returns what changed since, deletions as
``status: "cancelled"``. ``expire_sync_tokens()`` makes older tokens answer 410.

Push (``events.watch``): a channel needs ``type`` web_hook (or webhook), an ``id`` of at most
64 characters that no live channel uses, and an https ``address`` (http is refused with 400
``push.webhookUrlNotHttps`` as Google does; that is a verdict, not a violation). Its lifetime
is ``params.ttl`` seconds, else the body's ``expiration`` (ms), else ``default_channel_ttl``
(604800 s, the documented default), capped at ``max_channel_ttl`` (no maximum is documented:
the fake grants at most the default week; clients must read the answer's ``expiration``). The
answer is the Channel resource (``resourceId`` stable per calendar, ``expiration`` in ms as a
string). Right after a watch the channel gets a ``sync`` message; every event mutation
(``put_event``, ``delete_event``) sends ``exists`` to each live, unexpired channel of that
calendar, ``remove_calendar`` sends ``not_exists`` and ends them. Notifications are POSTs with
an empty body and the ``X-Goog-*`` headers, message numbers counting from 1 per channel, sent
in order by a background thread (``webhooks.WebhookSender``: httpx, ``verify=False``,
``delivery_timeout``) and never retried; each lands in ``deliveries`` (``Delivery``: channel
id, state, message number, receiver status or error). ``wait_deliveries(n)`` waits for the
first ``n``, ``wait_idle()`` for the queue to drain; ``channels`` lists the live channels.
``channels.stop`` needs ``id`` and ``resourceId`` and answers 204, or 404 for a channel it does
not know (stopped, expired, another account's). Expiry follows ``clock``.

Writes (they need writer or owner access: else 403 ``requiredAccessLevel``; an unknown
calendar is 404 ``notFound``): ``calendars.insert`` creates a secondary calendar
(``c_<hex>@group.calendar.google.com``, owner) that joins the calendar list; ``calendars.delete``
removes one (as ``remove_calendar``; the primary calendar cannot be deleted: 400).
``events.insert`` takes a client-chosen ``id`` (base32hex, 5-1024 characters, else 400) that
the calendar never used: an id in use, even by a deleted event, is 409 ``duplicate``.
``events.update`` (PUT) replaces an event and brings a deleted one back (``status`` confirmed
unless given); ``events.patch`` merges fields in; ``events.delete`` cancels it (a deleted event
answers 410 ``deleted``). ``If-Match`` with another ETag than the event's is 412
``conditionNotMet``. Writes are mutations like ``put_event`` / ``delete_event``: they show in
incremental sync and notify channels; a one-off event written with ``status: cancelled`` is
deleted.

Batch requests (``POST /batch/calendar/v3``, the discovery ``batchPath``): a
``multipart/mixed`` body whose parts are ``application/http`` requests (path only, never a full
URL; at most ``max_batch_calls``, 50) with an optional ``Content-ID``. Each call is served like
a direct one (checked, recorded in ``requests`` with ``batch`` set to the batch's number, faults
applied one call at a time); the answer is ``multipart/mixed`` with one ``application/http``
response per call, in order, ``Content-ID: <response-ID>``. A malformed batch is a 400
violation. The batch itself is recorded with ``method == BATCH``.

Faults: ``fail_next(status, reason=..., retry_after=..., count=..., method=..., after=...)``
answers the next matching calls (after letting ``after`` of them through) with Google's error
body for that status; ``method=BATCH`` fails whole batch requests.

Start it with ``start_google_fake()`` (or as a context manager); ``api_url`` is the base URL
(``http://127.0.0.1:PORT/calendar/v3``); ``stop()`` ends the server thread and its socket
and the notification thread (dropping what is still queued);
``reset()`` empties it for the next test while the server keeps running.

The discovery document is read from ``$CALSYNC_GOOGLE_DISCOVERY``, else
``tests/fixtures/google/calendar.v3.discovery.json``, else ``../shared/fixtures/google/``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from email.utils import format_datetime
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from zoneinfo import ZoneInfo

import uvicorn
from dateutil.rrule import rrule, rruleset, rrulestr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .webhooks import DeliveryLog, WebhookSender

JSON = dict[str, Any]

_REPO = Path(__file__).resolve().parents[2]
_DISCOVERY_CANDIDATES = (
    _REPO / "tests" / "fixtures" / "google" / "calendar.v3.discovery.json",
    _REPO.parent / "shared" / "fixtures" / "google" / "calendar.v3.discovery.json",
)
SERVICE_PATH = "/calendar/v3/"
BATCH_PATH = "/batch/calendar/v3"  # the discovery document's batchPath
BATCH = "batch"  # RecordedRequest.method of a batch request; fail_next(method=BATCH)
# The batch guide has said both 1000 and 50 calls per batch; the fake holds clients to 50.
MAX_BATCH_CALLS = 50
_JSON_TYPE = "application/json; charset=UTF-8"
_EVENT_ID = re.compile(r"[a-v0-9]{5,1024}")  # base32hex, as Event.id documents
_READ_ONLY_EVENT_FIELDS = ("kind", "etag", "created", "updated", "htmlLink")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INT = re.compile(r"^-?\d+$")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1)}
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}
_DEFAULT_FAULTS: dict[int, tuple[str, str, str]] = {  # status -> (domain, reason, message)
    400: ("global", "badRequest", "Bad Request"),
    401: ("global", "authError", "Invalid Credentials"),
    403: ("global", "forbidden", "Forbidden"),
    404: ("global", "notFound", "Not Found"),
    410: (
        "calendar",
        "fullSyncRequired",
        "Sync token is no longer valid, a full sync is required.",
    ),
    429: ("usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("global", "backendError", "Backend Error"),
    503: ("global", "backendError", "Backend Error"),
}
_REASON_FAULTS = {
    "rateLimitExceeded": ("usageLimits", "Rate Limit Exceeded"),
    "userRateLimitExceeded": ("usageLimits", "User Rate Limit Exceeded"),
    "quotaExceeded": ("usageLimits", "Calendar usage limits exceeded."),
    "notACalendarUser": ("global", "The user must be signed up for Google Calendar."),
    "insufficientPermissions": ("global", "Insufficient Permission"),
}
_ROLE_RANK = {
    "freeBusyReader": 0,
    "reader": 1,
    "writerWithoutPrivateAccess": 2,
    "writer": 3,
    "owner": 4,
}
_SYNC_RESTRICTIONS = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
# Filters a sync token cannot carry on: a listing with them ends without a nextSyncToken.
_NO_SYNC_TOKEN_FILTERS = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
)
# Valid per the discovery document, but this fake cannot honour them: answered 501.
_UNSERVED_PARAMETERS = frozenset({"fields", "q", "updatedMin", "timeZone", "maxAttendees"})
_EXPANSION_YEARS_AHEAD = 2
_MAX_INSTANCES = 5000
# Push channels (events.watch): the reference documents params.ttl with a default of 604800
# seconds; no maximum is documented, so the fake grants at most the default as well (Google
# may shorten a requested lifetime: clients must read the answer's expiration).
DEFAULT_CHANNEL_TTL = timedelta(seconds=604800)
MAX_CHANNEL_TTL = timedelta(seconds=604800)
_CHANNEL_ID_MAX = 64  # the push guide's limit on channel ids
_CHANNEL_TOKEN_MAX = 256  # the push guide's limit on channel tokens
_PUSH_USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"


class GoogleApiError(Exception):
    """Answered as Google's JSON error body."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        domain: str = "global",
        location: str | None = None,
        location_type: str | None = None,
        headers: dict[str, str] | None = None,
        violation: bool = True,
    ) -> None:
        super().__init__(message)
        self.violation = violation  # a 400 the client should never have caused
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain
        self.location = location
        self.location_type = location_type
        self.headers = headers or {}

    def body(self) -> JSON:
        detail: JSON = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location is not None:
            detail["locationType"] = self.location_type or "parameter"
            detail["location"] = self.location
        error: JSON = {"code": self.status, "message": self.message, "errors": [detail]}
        if self.status in _STATUS_NAMES:
            error["status"] = _STATUS_NAMES[self.status]
        return {"error": error}


def _bad_request(message: str, location: str | None = None, reason: str = "invalid") -> Exception:
    return GoogleApiError(400, reason, message, location=location)


# --- the discovery document ----------------------------------------------------------------------


@dataclass(frozen=True)
class ApiMethod:
    id: str  # e.g. "calendar.events.list"
    http_method: str
    segments: tuple[str, ...]  # path template split on "/"
    parameters: Mapping[str, Any]
    response: str | None  # schema name
    request: str | None = None  # schema name of the JSON body, if the method takes one


@dataclass(frozen=True)
class Violation:
    method: str | None
    path: str
    problem: str


_LOADED: dict[str | None, Discovery] = {}


class Discovery:
    """The parts of a discovery document a conformance check needs."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.global_parameters: Mapping[str, Any] = document.get("parameters", {})
        self.schemas: Mapping[str, Any] = document.get("schemas", {})
        self.methods: list[ApiMethod] = []
        self._collect(document.get("resources", {}))

    @classmethod
    def load(cls, path: Path | None = None) -> Discovery:
        """The document at ``path``, ``$CALSYNC_GOOGLE_DISCOVERY`` or a known fixture place."""
        key = str(path) if path else None
        if key not in _LOADED:
            _LOADED[key] = cls._read(path)
        return _LOADED[key]

    @classmethod
    def _read(cls, path: Path | None) -> Discovery:
        candidates = [path] if path else []
        env = os.environ.get("CALSYNC_GOOGLE_DISCOVERY")
        candidates += [Path(env)] if env else []
        candidates += list(_DISCOVERY_CANDIDATES)
        for candidate in candidates:
            if candidate is not None and candidate.is_file():
                return cls(json.loads(candidate.read_text(encoding="utf-8")))
        raise FileNotFoundError("calendar.v3.discovery.json not found (CALSYNC_GOOGLE_DISCOVERY)")

    def _collect(self, resources: Mapping[str, Any]) -> None:
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                response = method.get("response", {}).get("$ref")
                request = method.get("request", {}).get("$ref")
                self.methods.append(
                    ApiMethod(
                        id=method["id"],
                        http_method=method["httpMethod"],
                        segments=tuple(method["path"].split("/")),
                        parameters=method.get("parameters", {}),
                        response=response,
                        request=request,
                    )
                )
            self._collect(resource.get("resources", {}))

    def method(self, method_id: str) -> ApiMethod:
        for method in self.methods:
            if method.id in (method_id, f"calendar.{method_id}"):
                return method
        raise KeyError(method_id)

    def match(self, http_method: str, segments: list[str]) -> tuple[ApiMethod, dict[str, str]]:
        """The method whose template fits (literal segments win); 404 when none does."""
        best: tuple[int, ApiMethod, dict[str, str]] | None = None
        for method in self.methods:
            if method.http_method != http_method or len(method.segments) != len(segments):
                continue
            params: dict[str, str] = {}
            literals = 0
            for template, actual in zip(method.segments, segments, strict=True):
                if template.startswith("{") and template.endswith("}"):
                    params[template.strip("{}+")] = actual
                elif template == actual:
                    literals += 1
                else:
                    break
            else:
                if best is None or literals > best[0]:
                    best = (literals, method, params)
        if best is None:
            raise GoogleApiError(404, "notFound", "Not Found")
        return best[1], best[2]

    def check_parameters(
        self, method: ApiMethod, path_params: Mapping[str, str], query: list[tuple[str, str]]
    ) -> dict[str, list[str]]:
        """The query as name -> values; a 400 ``GoogleApiError`` on the first problem."""
        for name, spec in method.parameters.items():
            missing = spec.get("required") and not path_params.get(name)
            if spec.get("location") == "path" and missing:
                raise _bad_request(f"Required parameter: {name}", name, "required")
        values: dict[str, list[str]] = {}
        for name, value in query:
            values.setdefault(name, []).append(value)
        for name, given in values.items():
            spec = method.parameters.get(name) or self.global_parameters.get(name)
            _check_query_parameter(name, given, spec)
        for name, spec in method.parameters.items():
            if spec.get("location") == "query" and spec.get("required") and name not in values:
                raise _bad_request(f"Required parameter: {name}", name, "required")
        return values


def _check_query_parameter(name: str, given: list[str], spec: Mapping[str, Any] | None) -> None:
    """A 400 ``GoogleApiError`` unless ``name`` is a query parameter and ``given`` fits it."""
    if spec is None or spec.get("location") != "query":
        raise _bad_request(
            f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query '
            f"parameter. Field '{name}' could not be found in request message.",
            name,
            "badRequest",
        )
    if len(given) > 1 and not spec.get("repeated"):
        raise _bad_request(f"Parameter {name} given {len(given)} times", name)
    for value in given:
        problem = parameter_problem(value, spec)
        if problem:
            raise _bad_request(f"Invalid value '{value}' for {name}: {problem}", name)


def parameter_problem(value: str, spec: Mapping[str, Any]) -> str | None:
    """Why ``value`` does not fit a discovery parameter ``spec`` (None when it does)."""
    kind, fmt = spec.get("type"), spec.get("format")
    if kind == "boolean":
        return None if value in ("true", "false") else "not a boolean (true or false)"
    if kind == "integer":
        return _integer_problem(value, spec)
    if kind == "number":
        try:
            float(value)
        except ValueError:
            return "not a number"
        return None
    if "enum" in spec and value not in spec["enum"]:
        return f"not one of {', '.join(spec['enum'])}"
    if fmt == "date-time" and not is_rfc3339(value):
        return "not an RFC 3339 date-time with a time zone offset"
    if "pattern" in spec and not re.fullmatch(spec["pattern"], value):
        return "does not match the pattern"
    return None


def _integer_problem(value: str, spec: Mapping[str, Any]) -> str | None:
    if not _INT.match(value):
        return "not an integer"
    number, fmt = int(value), spec.get("format")
    low, high = _INT_RANGES.get(str(fmt), (None, None))
    if low is not None and high is not None and not low <= number <= high:
        return f"out of the {fmt} range"
    if "minimum" in spec and number < int(spec["minimum"]):
        return f"below the minimum {spec['minimum']}"
    if "maximum" in spec and number > int(spec["maximum"]):
        return f"above the maximum {spec['maximum']}"
    return None


def is_rfc3339(value: str) -> bool:
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def schema_problems(value: Any, schema: Mapping[str, Any], schemas: Mapping[str, Any]) -> list[str]:
    """Where ``value`` departs from a discovery schema: unknown properties, wrong types."""
    problems: list[str] = []
    _check(value, schema, schemas, "$", problems)
    return problems


def _check(
    value: Any, schema: Mapping[str, Any], schemas: Mapping[str, Any], at: str, out: list[str]
) -> None:
    if "$ref" in schema:
        _check(value, schemas[schema["$ref"]], schemas, at, out)
        return
    kind = schema.get("type")
    if kind == "object":
        _check_object(value, schema, schemas, at, out)
    elif kind == "array":
        _check_array(value, schema, schemas, at, out)
    elif kind not in ("any", None):
        problem = _scalar_problem(value, str(kind), schema.get("format"))
        if problem:
            out.append(f"{at}: {problem}")


def _check_object(
    value: Any, schema: Mapping[str, Any], schemas: Mapping[str, Any], at: str, out: list[str]
) -> None:
    if not isinstance(value, dict):
        out.append(f"{at}: expected an object")
        return
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    for name, item in value.items():
        if name in properties:
            _check(item, properties[name], schemas, f"{at}.{name}", out)
        elif extra is not None:
            _check(item, extra, schemas, f"{at}.{name}", out)
        else:
            out.append(f"{at}.{name}: not a property of the schema")


def _check_array(
    value: Any, schema: Mapping[str, Any], schemas: Mapping[str, Any], at: str, out: list[str]
) -> None:
    if not isinstance(value, list):
        out.append(f"{at}: expected an array")
        return
    for index, item in enumerate(value):
        _check(item, schema.get("items", {}), schemas, f"{at}[{index}]", out)


def _scalar_problem(value: Any, kind: str, fmt: Any) -> str | None:
    if kind == "string":
        return _string_problem(value, fmt)
    if kind == "boolean":
        return None if isinstance(value, bool) else "expected a boolean"
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "expected an integer"
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "expected a number"
    return None


def _string_problem(value: Any, fmt: Any) -> str | None:
    if not isinstance(value, str):
        return "expected a string"
    if fmt == "date-time" and not is_rfc3339(value):
        return "not an RFC 3339 date-time"
    if fmt == "date" and not _is_date(value):
        return "not a date (YYYY-MM-DD)"
    if fmt in ("int64", "uint64") and not _INT.match(value):
        return "not an integer string"
    return None


def _is_date(value: str) -> bool:
    if not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


# --- the stored data ---------------------------------------------------------------------------


@dataclass
class StoredEvent:
    event: JSON  # Google Event JSON: a one-off event, a recurring master or an exception
    seq: int
    deleted: bool = False


@dataclass
class FakeCalendar:
    id: str
    summary: str
    primary: bool
    access_role: str
    time_zone: str
    summary_override: str | None = None
    description: str | None = None
    events: dict[str, StoredEvent] = field(default_factory=dict)
    gone_instances: dict[str, tuple[int, JSON]] = field(default_factory=dict)  # id -> stub
    seq: int = 0

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


@dataclass
class FakeAccount:
    email: str
    calendar_user: bool = True
    calendars: dict[str, FakeCalendar] = field(default_factory=dict)


@dataclass
class Fault:
    status: int
    reason: str | None
    retry_after: str | None
    remaining: int
    method: str | None  # discovery id ("calendar.events.list"), BATCH, or None for any call
    skip: int = 0  # matching requests still to let through first


@dataclass(frozen=True)
class RecordedRequest:
    http_method: str
    path: str
    query: tuple[tuple[str, str], ...]
    method: str | None  # discovery id, when the path matched one; BATCH for a batch request
    status: int
    batch: int | None = None  # for a call inside a batch request: that batch's number (from 1)

    @property
    def params(self) -> dict[str, str]:
        return dict(self.query)


@dataclass
class FakeChannel:
    """An ``events.watch`` notification channel of one account's calendar."""

    id: str
    resource_id: str
    resource_uri: str
    email: str
    calendar_id: str
    address: str
    token: str | None
    expiration: datetime
    messages: int = 0  # the last X-Goog-Message-Number sent

    @property
    def expiration_ms(self) -> int:
        return int(self.expiration.timestamp() * 1000)


@dataclass(frozen=True)
class Delivery:
    """One notification POSTed to a channel's address, and how the receiver answered."""

    channel_id: str
    state: str  # X-Goog-Resource-State: sync, exists or not_exists
    message_number: int
    address: str
    headers: dict[str, str]
    status: int | None  # the receiver's HTTP status; None when the POST failed
    error: str | None = None  # why the POST failed (exception type and message)


@dataclass
class _Snapshot:
    """A list result frozen at its first page, served page by page."""

    fingerprint: tuple[tuple[str, str], ...]
    owner: str
    items: list[JSON]
    extra: JSON


# --- the fake ----------------------------------------------------------------------------------


class GoogleFake(DeliveryLog[Delivery]):
    """State, request handling and the HTTP server of the fake (see the module docstring)."""

    def __init__(
        self,
        *,
        discovery: Discovery | None = None,
        token_validator: Callable[[str], str | None] | None = None,
        page_size: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.discovery = discovery or Discovery.load()
        self.tokens: dict[str, str] = {}
        self.token_validator = token_validator or self.tokens.get
        self.page_size = page_size
        self.clock = clock or (lambda: datetime.now(UTC))
        self.accounts: dict[str, FakeAccount] = {}
        self.violations: list[Violation] = []
        self.response_violations: list[str] = []
        self.unimplemented: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.max_batch_calls = MAX_BATCH_CALLS
        self._batches = 0  # batch requests numbered since the last reset / clear_log
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._generation = 0
        self._snapshots: dict[str, _Snapshot] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.api_url = ""
        # push: channels, and notifications sent by a background thread
        self.default_channel_ttl = DEFAULT_CHANNEL_TTL
        self.max_channel_ttl = MAX_CHANNEL_TTL
        self._channels: dict[str, FakeChannel] = {}
        self._push: WebhookSender[Delivery] = WebhookSender(
            "google-fake-push", timeout=2.0, error=AssertionError
        )
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self._endpoint,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                )
            ]
        )

    # --- server ----------------------------------------------------------------------------------

    def start(self) -> GoogleFake:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", loop="asyncio"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="google-fake", daemon=True
        )
        self._server, self._thread, self._socket = server, thread, sock
        thread.start()
        for _ in range(1000):
            if server.started or not thread.is_alive():
                break
            thread.join(0.01)
        if not server.started:
            self.stop()
            raise RuntimeError("the Google Calendar fake did not start")
        self.api_url = f"http://127.0.0.1:{port}{SERVICE_PATH.rstrip('/')}"
        return self

    def stop(self) -> None:
        server, thread, sock = self._server, self._thread, self._socket
        self._server = self._thread = self._socket = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(10)
        if sock is not None:
            sock.close()
        # what is still queued is dropped
        self._push.stop(drain=False, timeout=self.delivery_timeout + 10)

    def __enter__(self) -> GoogleFake:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test set-up -----------------------------------------------------------------------------

    def add_account(
        self, email: str, *, token: str | None = None, calendar_user: bool = True
    ) -> str:
        """Create an account; returns a bearer token for it (registered in ``tokens``)."""
        with self._lock:
            self.accounts[email.lower()] = FakeAccount(email, calendar_user=calendar_user)
            token = token or f"ya29.fake-{secrets.token_urlsafe(16)}"
            self.tokens[token] = email
            return token

    def add_calendar(
        self,
        email: str,
        calendar_id: str,
        summary: str,
        primary: bool = False,
        *,
        access_role: str = "owner",
        time_zone: str = "UTC",
        summary_override: str | None = None,
    ) -> FakeCalendar:
        if access_role not in ("freeBusyReader", "reader", "writer", "owner"):
            raise ValueError(f"unknown accessRole {access_role!r}")
        ZoneInfo(time_zone)
        with self._lock:
            account = self._account(email)
            calendar = FakeCalendar(
                calendar_id, summary, primary, access_role, time_zone, summary_override
            )
            account.calendars[calendar_id] = calendar
            return calendar

    def remove_calendar(self, email: str, calendar_id: str) -> None:
        """Delete a calendar; its channels get a ``not_exists`` notification and end."""
        with self._lock:
            del self._account(email).calendars[calendar_id]
            self._notify(email, calendar_id, "not_exists")

    def put_event(self, email: str, calendar_id: str, event_json: Mapping[str, Any]) -> JSON:
        """Insert or replace an event (Google Event JSON); returns it as stored."""
        with self._lock:
            calendar = self._calendar_of(email, calendar_id)
            return self._put(email, calendar, event_json, deleted=False)

    def _put(
        self, email: str, calendar: FakeCalendar, event_json: Mapping[str, Any], *, deleted: bool
    ) -> JSON:
        """Store an event (``deleted``: as a deleted one, listed as cancelled); ValueError if
        it is not a valid Google event."""
        event = copy.deepcopy(dict(event_json))
        if event.get("recurringEventId") and "id" not in event:
            original = event.get("originalStartTime") or {}
            event["id"] = f"{event['recurringEventId']}_{_stamp(_time_value(original))}"
        event_id = event.setdefault("id", secrets.token_hex(13))
        before = calendar.events.get(event_id)
        seq = self._bump(calendar)
        now = _rfc3339(self.clock())
        event["kind"] = "calendar#event"
        event["etag"] = f'"{3_000_000_000_000_000 + seq}"'
        event.setdefault("status", "confirmed")
        master = calendar.events.get(str(event.get("recurringEventId", "")))
        uid = master.event["iCalUID"] if master is not None else f"{event_id}@google.com"
        event.setdefault("iCalUID", uid)  # exceptions share their series' iCalUID
        event["created"] = (before.event.get("created") if before else None) or now
        event["updated"] = now
        event["sequence"] = (before.event.get("sequence", 0) + 1) if before else 0
        self._validate_event(calendar, event)
        old_ids = self._instance_ids(calendar, before) if before else set()
        stored = StoredEvent(event, seq, deleted)
        calendar.events[event_id] = stored
        self._forget_instances(calendar, old_ids - self._instance_ids(calendar, stored), seq)
        self._notify(email, calendar.id, "exists")
        return copy.deepcopy(event)

    def delete_event(self, email: str, calendar_id: str, event_id: str) -> None:
        """Delete an event, or cancel one instance (``<id>_<stamp>``) of a recurring event."""
        with self._lock:
            calendar = self._calendar_of(email, calendar_id)
            stored = calendar.events.get(event_id)
            if stored is None or stored.deleted:
                master = self._instance_master(calendar, event_id)
                if master is None:
                    raise KeyError(event_id)
                instance = self._instance_ids_with_starts(calendar, master.event)[event_id]
                self.put_event(
                    email,
                    calendar_id,
                    {
                        "id": event_id,
                        "status": "cancelled",
                        "recurringEventId": master.event["id"],
                        "originalStartTime": instance,
                        "start": instance,
                        "end": instance,
                    },
                )
                return
            seq = self._bump(calendar)
            old_ids = self._instance_ids(calendar, stored.event)
            stored.event["status"] = "cancelled"
            stored.event["etag"] = f'"{3_000_000_000_000_000 + seq}"'
            stored.event["updated"] = _rfc3339(self.clock())
            stored.seq, stored.deleted = seq, True
            self._forget_instances(calendar, old_ids, seq)
            self._notify(email, calendar.id, "exists")

    def expire_sync_tokens(self) -> None:
        """Every sync token issued so far now answers 410 fullSyncRequired."""
        with self._lock:
            self._generation += 1

    def fail_next(
        self,
        status: int,
        *,
        reason: str | None = None,
        retry_after: float | str | None = None,
        count: int = 1,
        method: str | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``count`` (matching) calls with Google's error for ``status``, once
        ``after`` matching calls went through. Calls inside a batch match one by one;
        ``method=BATCH`` fails a whole batch request instead."""
        with self._lock:
            wanted = self._method_id(method) if method else None
            delay = None if retry_after is None else str(retry_after)
            self._faults.append(Fault(status, reason, delay, count, wanted, skip=after))

    def reset(self) -> None:
        """Forget every account, token, fault, record and sync token (the server keeps running)."""
        with self._lock:
            self.accounts.clear()
            self.tokens.clear()
            self.violations.clear()
            self.response_violations.clear()
            self.unimplemented.clear()
            self.requests.clear()
            self._batches = 0
            self.max_batch_calls = MAX_BATCH_CALLS
            self._faults.clear()
            self._snapshots.clear()
            self._generation += 1
            self._channels.clear()
        self._push.discard()  # notifications still queued are dropped

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self._batches = 0

    def requests_for(self, method: str) -> list[RecordedRequest]:
        """The calls of one method (``"events.insert"``), or the batch requests (``BATCH``)."""
        wanted = self._method_id(method)
        return [r for r in self.requests if r.method == wanted]

    def _method_id(self, method: str) -> str:
        return BATCH if method == BATCH else self.discovery.method(method).id

    # --- push notifications ----------------------------------------------------------------------

    @property
    def channels(self) -> list[FakeChannel]:
        """The live channels (not stopped, not expired), as copies."""
        with self._lock:
            now = self.clock()
            return [replace(c) for c in self._channels.values() if c.expiration > now]

    def _notify(self, email: str, calendar_id: str, state: str) -> None:
        """Queue ``state`` for every live channel of the calendar (``not_exists`` ends them)."""
        now = self.clock()
        for channel in list(self._channels.values()):
            if channel.expiration <= now:
                del self._channels[channel.id]  # Google forgets expired channels
            elif channel.email == email.lower() and channel.calendar_id == calendar_id:
                self._queue(channel, state)
                if state == "not_exists":
                    del self._channels[channel.id]

    def _queue(self, channel: FakeChannel, state: str) -> None:
        channel.messages += 1
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": format_datetime(channel.expiration, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel.messages),
            "User-Agent": _PUSH_USER_AGENT,
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        # an empty body; no retries (Google retries with back-off)
        self._push.send(
            "POST",
            channel.address,
            headers=headers,
            content=b"",
            record=partial(
                Delivery, channel.id, state, channel.messages, channel.address, dict(headers)
            ),
        )

    # --- request handling ------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        query = parse_qsl(
            request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
        )
        auth = request.headers.get("authorization")
        payload = await request.body()
        content_type = request.headers.get("content-type")
        if path == BATCH_PATH and request.method == "POST":
            with self._lock:
                status, content, headers = self._batch(payload, content_type, auth)
            return Response(content, status_code=status, headers=headers)
        with self._lock:
            status, body, headers, method_id = self._handle(
                request.method,
                path,
                query,
                auth,
                payload=payload,
                content_type=content_type,
                if_match=request.headers.get("if-match"),
            )
            self.requests.append(
                RecordedRequest(request.method, path, tuple(query), method_id, status)
            )
        if body is None:
            return Response(status_code=status, headers=headers)
        return Response(
            json.dumps(body, indent=1),
            status_code=status,
            headers=headers,
            media_type="application/json; charset=UTF-8",
        )

    def _handle(
        self,
        http_method: str,
        path: str,
        query: list[tuple[str, str]],
        auth: str | None,
        *,
        payload: bytes = b"",
        content_type: str | None = None,
        if_match: str | None = None,
    ) -> tuple[int, JSON | None, dict[str, str], str | None]:
        method: ApiMethod | None = None
        try:
            try:  # what the discovery document allows
                if not path.startswith(SERVICE_PATH):
                    raise GoogleApiError(404, "notFound", "Not Found")
                segments = [unquote(s) for s in path[len(SERVICE_PATH) :].split("/")]
                method, path_params = self.discovery.match(http_method, segments)
                values = self.discovery.check_parameters(method, path_params, query)
                resource = self._request_body(method, payload, content_type)
            except GoogleApiError as exc:
                self.violations.append(
                    Violation((method.id if method else None), path, exc.message)
                )
                raise
            self._injected_fault(method.id)
            email = self._authenticate(auth, values)
            try:
                body = self._serve(method, path_params, values, email, resource, if_match)
            except GoogleApiError as exc:
                if exc.status == 400 and exc.violation:  # what the reference pages forbid
                    self.violations.append(Violation(method.id, path, exc.message))
                raise
        except GoogleApiError as exc:
            return exc.status, exc.body(), exc.headers, (method.id if method else None)
        if body is None:
            return 204, None, {}, method.id
        if method.response:
            schema = {"$ref": method.response}
            for problem in schema_problems(body, schema, self.discovery.schemas):
                self.response_violations.append(f"{method.id}: {problem}")
        return 200, body, {}, method.id

    def _injected_fault(self, method_id: str) -> None:
        for fault in self._faults:
            wanted = fault.method == method_id or (fault.method is None and method_id != BATCH)
            if fault.remaining > 0 and wanted:
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                raise _fault_error(fault)

    def _authenticate(self, auth: str | None, values: Mapping[str, list[str]]) -> str:
        token: str | None = None
        if auth is not None:
            scheme, _, credential = auth.partition(" ")
            if scheme.lower() == "bearer" and credential.strip():
                token = credential.strip()
        elif "oauth_token" in values:
            token = values["oauth_token"][0]
        if token is None:
            raise GoogleApiError(
                401,
                "required",
                "Request is missing required authentication credential. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential.",
                location="Authorization",
                location_type="header",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        email = self.token_validator(token)
        if email is None:
            raise GoogleApiError(
                401,
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
                location="Authorization",
                location_type="header",
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
                    'error="invalid_token"'
                },
            )
        account = self.accounts.get(email.lower())
        if account is None or not account.calendar_user:
            domain, message = _REASON_FAULTS["notACalendarUser"]
            raise GoogleApiError(403, "notACalendarUser", message, domain=domain)
        return account.email

    def _request_body(self, method: ApiMethod, payload: bytes, content_type: str | None) -> JSON:
        """The JSON body of a method that takes one, checked against its discovery schema."""
        if method.request is None or not payload.strip():
            return {}
        if (content_type or "").split(";")[0].strip().lower() != "application/json":
            raise _bad_request("The request body must be sent as application/json.")
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise GoogleApiError(400, "parseError", "Parse Error") from None
        problems = schema_problems(body, {"$ref": method.request}, self.discovery.schemas)
        if problems:
            raise _bad_request(
                f"Invalid JSON payload received: {'; '.join(problems)}", reason="badRequest"
            )
        assert isinstance(body, dict)
        return body

    def _serve(
        self,
        method: ApiMethod,
        path_params: Mapping[str, str],
        values: Mapping[str, list[str]],
        email: str,
        resource: JSON,
        if_match: str | None = None,
    ) -> JSON | None:
        unserved = sorted(_UNSERVED_PARAMETERS & values.keys())
        handler = {
            "calendar.calendarList.list": self._calendar_list,
            "calendar.calendarList.get": self._calendar_list_get,
            "calendar.calendars.get": self._calendars_get,
            "calendar.events.list": self._events_list,
            "calendar.events.get": self._events_get,
        }.get(method.id)
        with_body = {
            "calendar.events.watch": self._events_watch,
            "calendar.channels.stop": self._channels_stop,
        }.get(method.id)
        write = {
            "calendar.calendars.insert": self._calendars_insert,
            "calendar.calendars.delete": self._calendars_delete,
            "calendar.events.insert": self._events_insert,
            "calendar.events.update": self._events_update,
            "calendar.events.patch": self._events_patch,
            "calendar.events.delete": self._events_delete,
        }.get(method.id)
        if (
            (handler is None and with_body is None and write is None)
            or unserved
            or (method.id == "calendar.calendarList.list" and "syncToken" in values)
        ):
            what = f"{method.id} {' '.join(unserved)}".strip()
            self.unimplemented.append(what)
            raise GoogleApiError(501, "notImplemented", f"The fake does not serve {what}")
        if write is not None:
            return write(email, path_params, resource, if_match)
        if with_body is not None:
            return with_body(email, path_params, values, resource)
        assert handler is not None
        return handler(email, path_params, values)

    # --- events.watch and channels.stop --------------------------------------------------------

    def _events_watch(
        self,
        email: str,
        path_params: Mapping[str, str],
        values: Mapping[str, list[str]],
        resource: JSON,
    ) -> JSON:
        calendar = self._calendar(email, path_params["calendarId"])
        channel_id, kind, address = (resource.get(k) for k in ("id", "type", "address"))
        for name, value in (("id", channel_id), ("type", kind), ("address", address)):
            if not value:
                raise _bad_request(f"Required: {name}", f"resource.{name}", "required")
        assert isinstance(channel_id, str) and isinstance(address, str)
        if len(channel_id) > _CHANNEL_ID_MAX:
            raise _bad_request(
                f"Channel id longer than {_CHANNEL_ID_MAX} characters", "resource.id"
            )
        if kind not in ("web_hook", "webhook"):
            raise _bad_request(f"Invalid value for type: {kind}", "resource.type")
        token = resource.get("token")
        if isinstance(token, str) and len(token) > _CHANNEL_TOKEN_MAX:
            raise _bad_request(
                f"Channel token longer than {_CHANNEL_TOKEN_MAX} characters", "resource.token"
            )
        now = self.clock()
        live = self._channels.get(channel_id)
        if live is not None and live.expiration > now:
            raise GoogleApiError(
                400, "channelIdNotUnique", f"Channel id {channel_id} not unique", domain="push"
            )
        parts = urlsplit(address)
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise GoogleApiError(
                400,
                "push.webhookUrlNotHttps",
                f"WebHook callback must be HTTPS: {address}",
                domain="global",
                violation=False,  # Google's verdict on a well-formed request
            )
        lifetime = self._channel_lifetime(resource, now)
        expiration = datetime.fromtimestamp(int((now + lifetime).timestamp() * 1000) / 1000, UTC)
        digest = hashlib.sha256(f"events:{calendar.id}".encode()).digest()
        channel = FakeChannel(
            id=channel_id,
            resource_id=base64.b32encode(digest).decode().lower()[:26],  # stable per calendar
            resource_uri=f"{self.api_url}/calendars/{quote(calendar.id, safe='')}/events?alt=json",
            email=email.lower(),
            calendar_id=calendar.id,
            address=address,
            token=token if isinstance(token, str) else None,
            expiration=expiration,
        )
        self._channels[channel_id] = channel
        self._queue(channel, "sync")
        body: JSON = {
            "kind": "api#channel",
            "id": channel.id,
            "resourceId": channel.resource_id,
            "resourceUri": channel.resource_uri,
            "expiration": str(channel.expiration_ms),
        }
        if channel.token is not None:
            body["token"] = channel.token
        return body

    def _channel_lifetime(self, resource: JSON, now: datetime) -> timedelta:
        """``params.ttl`` (seconds), else ``expiration`` (ms), else the default; capped."""
        ttl = (resource.get("params") or {}).get("ttl")
        expiration = resource.get("expiration")
        if ttl is not None:
            if not _INT.match(ttl) or int(ttl) <= 0:
                raise _bad_request(f"Invalid ttl value: {ttl}", "resource.params.ttl")
            lifetime = timedelta(seconds=int(ttl))
        elif expiration is not None:
            ends = datetime.fromtimestamp(int(expiration) / 1000, UTC)
            if ends <= now:
                raise _bad_request("The channel expiration lies in the past", "expiration")
            lifetime = ends - now
        else:
            lifetime = self.default_channel_ttl
        return min(lifetime, self.max_channel_ttl)

    def _channels_stop(
        self,
        email: str,
        path_params: Mapping[str, str],
        values: Mapping[str, list[str]],
        resource: JSON,
    ) -> None:
        channel_id, resource_id = resource.get("id"), resource.get("resourceId")
        for name, value in (("id", channel_id), ("resourceId", resource_id)):
            if not value:
                raise _bad_request(f"Required: {name}", f"resource.{name}", "required")
        channel = self._channels.get(str(channel_id))
        if (
            channel is None
            or channel.resource_id != resource_id
            or channel.email != email.lower()
            or channel.expiration <= self.clock()
        ):
            raise GoogleApiError(404, "notFound", f"Channel '{channel_id}' not found")
        del self._channels[channel.id]
        return None

    # --- calendarList ------------------------------------------------------------------------

    def _entry(self, calendar: FakeCalendar) -> JSON:
        entry: JSON = {
            "kind": "calendar#calendarListEntry",
            "etag": f'"{3_100_000_000_000_000 + calendar.seq}"',
            "id": calendar.id,
            "summary": calendar.summary,
            "timeZone": calendar.time_zone,
            "colorId": "1",
            "backgroundColor": "#9fe1e7",
            "foregroundColor": "#000000",
            "selected": True,
            "accessRole": calendar.access_role,
            "defaultReminders": [],
        }
        if calendar.summary_override is not None:
            entry["summaryOverride"] = calendar.summary_override
        if calendar.description is not None:  # CalendarListEntry.description, read-only
            entry["description"] = calendar.description
        if calendar.primary:
            entry["primary"] = True
        return entry

    def _calendar_list(
        self, email: str, path_params: Mapping[str, str], values: Mapping[str, list[str]]
    ) -> JSON:
        role = _one(values, "minAccessRole")
        calendars = self._account(email).calendars.values()
        items = [
            self._entry(c)
            for c in calendars
            if role is None or _ROLE_RANK[c.access_role] >= _ROLE_RANK[role]
        ]
        body, _ = self._page(
            email, "calendarList", values, items, {}, default_size=100, max_size=250
        )
        return {"kind": "calendar#calendarList", "etag": '"p33f1s"', **body}

    def _calendar_list_get(
        self, email: str, path_params: Mapping[str, str], values: Mapping[str, list[str]]
    ) -> JSON:
        return self._entry(self._calendar(email, path_params["calendarId"]))

    # --- events --------------------------------------------------------------------------------

    def _events_get(
        self, email: str, path_params: Mapping[str, str], values: Mapping[str, list[str]]
    ) -> JSON:
        calendar = self._calendar(email, path_params["calendarId"])
        event_id = path_params["eventId"]
        stored = calendar.events.get(event_id)
        if stored is not None:
            return copy.deepcopy(stored.event)
        master = self._instance_master(calendar, event_id)
        if master is None:
            raise GoogleApiError(404, "notFound", "Not Found")
        for instance in self._instances(calendar, master.event, None):
            if instance["id"] == event_id:
                return instance
        raise GoogleApiError(404, "notFound", "Not Found")

    def _events_list(
        self, email: str, path_params: Mapping[str, str], values: Mapping[str, list[str]]
    ) -> JSON:
        calendar = self._calendar(email, path_params["calendarId"])
        single = _one(values, "singleEvents") == "true"
        show_deleted = _one(values, "showDeleted") == "true"
        sync_token = _one(values, "syncToken")
        order = _one(values, "orderBy")
        if order == "startTime" and not single:
            raise _bad_request("The requested ordering is not available.", "orderBy")
        if sync_token is not None:
            for name in _SYNC_RESTRICTIONS:
                if name in values:
                    raise _bad_request(
                        "Sync token cannot be used with other request restrictions.",
                        name,
                        "syncTokenWithRequestRestrictions",
                    )
            if _one(values, "showDeleted") == "false":
                raise _bad_request(
                    "Sync token cannot be used with showDeleted=false.", "showDeleted"
                )
        if "pageToken" not in values:
            since = self._decode_sync_token(calendar, sync_token, single) if sync_token else None
            items = (
                self._changes(calendar, since, single)
                if since is not None
                else self._listing(calendar, values, single, show_deleted)
            )
            if order == "startTime":
                items.sort(key=lambda e: self._bounds(calendar, e)[0])
            elif order == "updated":
                items.sort(key=lambda e: str(e.get("updated", "")))
        else:
            items = []
        restricted = any(name in values for name in _NO_SYNC_TOKEN_FILTERS)
        next_sync = None if restricted else self._sync_token(calendar, single)
        body, extra = self._page(
            email,
            f"events:{calendar.id}",
            values,
            items,
            {"nextSyncToken": next_sync},
            default_size=250,
            max_size=2500,
        )
        if "nextPageToken" not in body and extra.get("nextSyncToken"):
            body["nextSyncToken"] = extra["nextSyncToken"]
        return {
            "kind": "calendar#events",
            "etag": f'"{3_200_000_000_000_000 + calendar.seq}"',
            "summary": calendar.summary,
            "updated": _rfc3339(self.clock()),
            "timeZone": calendar.time_zone,
            "accessRole": calendar.access_role,
            "defaultReminders": [],
            **body,
        }

    def _listing(
        self,
        calendar: FakeCalendar,
        values: Mapping[str, list[str]],
        single: bool,
        show_deleted: bool,
    ) -> list[JSON]:
        low = _parse_time(_one(values, "timeMin"))
        high = _parse_time(_one(values, "timeMax"))
        if low is not None and high is not None and low >= high:
            raise GoogleApiError(
                400,
                "timeRangeEmpty",
                "The specified time range is empty.",
                domain="calendar",
                location="timeMax",
            )
        window = (low, high)
        out: list[JSON] = []
        for stored in calendar.events.values():
            out.extend(self._listed(calendar, stored, window, single, show_deleted))
        return [e for e in out if _filters_match(e, values)]

    def _listed(
        self,
        calendar: FakeCalendar,
        stored: StoredEvent,
        window: tuple[datetime | None, datetime | None],
        single: bool,
        show_deleted: bool,
    ) -> list[JSON]:
        """What one stored event contributes to a listing of ``window``."""
        event = stored.event
        if stored.deleted:
            return [copy.deepcopy(event)] if show_deleted and not event.get("recurrence") else []
        if event.get("recurringEventId"):
            return self._listed_exception(calendar, event, window, single, show_deleted)
        if event.get("recurrence"):
            instances = self._instances(calendar, event, window)
            if single:
                return [i for i in instances if self._overlaps(calendar, i, window)]
            if any(self._overlaps(calendar, i, window) for i in instances):
                return [copy.deepcopy(event)]
            return []
        return [copy.deepcopy(event)] if self._overlaps(calendar, event, window) else []

    def _listed_exception(
        self,
        calendar: FakeCalendar,
        event: JSON,
        window: tuple[datetime | None, datetime | None],
        single: bool,
        show_deleted: bool,
    ) -> list[JSON]:
        """A changed or cancelled instance of a recurring event, in a listing."""
        master = calendar.events.get(event["recurringEventId"])
        if master is None or master.deleted:
            return []
        cancelled = event.get("status") == "cancelled"
        if cancelled and single and not show_deleted:
            return []
        if cancelled or self._overlaps(calendar, event, window):
            return [copy.deepcopy(event)]
        return []

    def _changes(self, calendar: FakeCalendar, since: int, single: bool) -> list[JSON]:
        changed: dict[str, JSON] = {}
        for stored in calendar.events.values():
            if stored.seq <= since:
                continue
            event = stored.event
            if single and event.get("recurrence"):
                if not stored.deleted:
                    for instance in self._instances(calendar, event, None):
                        changed[instance["id"]] = instance
                continue
            changed[event["id"]] = _stub(event) if stored.deleted else copy.deepcopy(event)
        if single:
            for instance_id, (seq, stub) in calendar.gone_instances.items():
                if seq > since and instance_id not in changed:
                    changed[instance_id] = copy.deepcopy(stub)
        return list(changed.values())

    # --- calendars and event writes ------------------------------------------------------------

    def _calendar_resource(self, calendar: FakeCalendar) -> JSON:
        body: JSON = {
            "kind": "calendar#calendar",
            "etag": f'"{3_100_000_000_000_000 + calendar.seq}"',
            "id": calendar.id,
            "summary": calendar.summary,
            "timeZone": calendar.time_zone,
        }
        if calendar.description is not None:
            body["description"] = calendar.description
        return body

    def _calendars_get(
        self, email: str, path_params: Mapping[str, str], values: Mapping[str, list[str]]
    ) -> JSON:
        return self._calendar_resource(self._calendar(email, path_params["calendarId"]))

    def _calendars_insert(
        self, email: str, path_params: Mapping[str, str], resource: JSON, if_match: str | None
    ) -> JSON:
        """A secondary calendar owned by the account (it joins the calendar list)."""
        summary = resource.get("summary")
        if not summary:
            raise _bad_request("Missing title.", "summary", "required")
        account = self._account(email)
        primary = next((c for c in account.calendars.values() if c.primary), None)
        zone = resource.get("timeZone") or (primary.time_zone if primary else "UTC")
        try:
            ZoneInfo(zone)
        except (ValueError, KeyError):
            raise _bad_request(f"Invalid time zone definition: {zone}", "timeZone") from None
        calendar_id = f"c_{secrets.token_hex(16)}@group.calendar.google.com"
        calendar = self.add_calendar(email, calendar_id, summary, time_zone=zone)
        calendar.description = resource.get("description")
        self._bump(calendar)
        return self._calendar_resource(calendar)

    def _calendars_delete(
        self, email: str, path_params: Mapping[str, str], resource: JSON, if_match: str | None
    ) -> None:
        """Only a secondary calendar can be deleted (the primary one only cleared)."""
        calendar = self._calendar(email, path_params["calendarId"])
        if calendar.primary:
            raise _bad_request(
                "The primary calendar cannot be deleted: use calendars.clear.", "calendarId"
            )
        if calendar.access_role != "owner":
            raise GoogleApiError(
                403, "requiredAccessLevel", "You need to be the owner of this calendar."
            )
        self.remove_calendar(email, calendar.id)
        return None

    def _writable(self, email: str, calendar_id: str) -> FakeCalendar:
        calendar = self._calendar(email, calendar_id)
        if calendar.access_role not in ("writer", "owner"):
            raise GoogleApiError(
                403, "requiredAccessLevel", "You need to have writer access to this calendar."
            )
        return calendar

    def _write(self, email: str, calendar: FakeCalendar, event: JSON) -> JSON:
        """Store an event sent by a client: a one-off one set to cancelled is deleted."""
        for name in _READ_ONLY_EVENT_FIELDS:
            event.pop(name, None)
        for name in ("start", "end"):
            if not isinstance(event.get(name), dict):
                raise _bad_request(f"Missing {name} time.", name, "required")
        cancelled = event.get("status") == "cancelled" and not event.get("recurringEventId")
        try:
            return self._put(email, calendar, event, deleted=cancelled)
        except (ValueError, KeyError) as exc:
            raise _bad_request(f"Invalid event: {exc}") from None

    def _stored_for_write(
        self, calendar: FakeCalendar, event_id: str, if_match: str | None
    ) -> StoredEvent:
        """The stored event a write addresses, its ETag checked against ``If-Match``."""
        stored = calendar.events.get(event_id)
        if stored is None:
            if self._instance_master(calendar, event_id) is not None:
                self.unimplemented.append("writes to an unmodified recurring instance")
                raise GoogleApiError(501, "notImplemented", "The fake does not serve that")
            raise GoogleApiError(404, "notFound", "Not Found")
        _check_if_match(stored.event, if_match)
        return stored

    def _events_insert(
        self, email: str, path_params: Mapping[str, str], resource: JSON, if_match: str | None
    ) -> JSON:
        """A new event; a client-chosen ``id`` must be base32hex and never used before in the
        calendar (a deleted event keeps its id: 409 duplicate)."""
        calendar = self._writable(email, path_params["calendarId"])
        event = copy.deepcopy(resource)
        event_id = event.get("id")
        if event_id is not None:
            if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
                raise _bad_request("Invalid resource id value.", "id")
            if event_id in calendar.events or self._instance_master(calendar, event_id):
                raise GoogleApiError(409, "duplicate", "The requested identifier already exists.")
        if event.get("recurringEventId"):
            raise _bad_request("Use events.update to change one instance.", "recurringEventId")
        event.setdefault("status", "confirmed")
        return self._write(email, calendar, event)

    def _events_update(
        self, email: str, path_params: Mapping[str, str], resource: JSON, if_match: str | None
    ) -> JSON:
        """Replace an event; a deleted one comes back (``status`` confirmed unless given)."""
        calendar = self._writable(email, path_params["calendarId"])
        event_id = path_params["eventId"]
        stored = self._stored_for_write(calendar, event_id, if_match)
        event = copy.deepcopy(resource)
        if event.setdefault("id", event_id) != event_id:
            raise _bad_request("The event id in the body differs from the path.", "id")
        for name in ("recurringEventId", "originalStartTime"):
            if name in stored.event:
                event[name] = copy.deepcopy(stored.event[name])
        event.setdefault("status", "confirmed")
        return self._write(email, calendar, event)

    def _events_patch(
        self, email: str, path_params: Mapping[str, str], resource: JSON, if_match: str | None
    ) -> JSON:
        """Merge the given fields into the event (objects merged, arrays replaced)."""
        calendar = self._writable(email, path_params["calendarId"])
        event_id = path_params["eventId"]
        stored = self._stored_for_write(calendar, event_id, if_match)
        if resource.get("id", event_id) != event_id:
            raise _bad_request("The event id in the body differs from the path.", "id")
        return self._write(email, calendar, _merged(stored.event, resource))

    def _events_delete(
        self, email: str, path_params: Mapping[str, str], resource: JSON, if_match: str | None
    ) -> None:
        """Delete an event (or cancel one instance); a deleted one answers 410 deleted."""
        calendar = self._writable(email, path_params["calendarId"])
        event_id = path_params["eventId"]
        stored = calendar.events.get(event_id)
        if stored is not None and (stored.deleted or stored.event.get("status") == "cancelled"):
            raise GoogleApiError(410, "deleted", "Resource has been deleted")
        if stored is None and self._instance_master(calendar, event_id) is None:
            raise GoogleApiError(404, "notFound", "Not Found")
        if stored is not None:
            _check_if_match(stored.event, if_match)
        self.delete_event(email, calendar.id, event_id)
        return None

    # --- batch requests --------------------------------------------------------------------------

    def _batch(
        self, payload: bytes, content_type: str | None, auth: str | None
    ) -> tuple[int, bytes, dict[str, str]]:
        """A ``multipart/mixed`` batch: each part one call, answered in one part each, in order.
        The batch's ``Authorization`` serves the calls that send none of their own."""
        self._batches += 1
        number = self._batches
        try:
            self._injected_fault(BATCH)
            try:
                calls = parse_batch(payload, content_type, self.max_batch_calls)
            except GoogleApiError as exc:
                self.violations.append(Violation(BATCH, BATCH_PATH, exc.message))
                raise
        except GoogleApiError as exc:
            self.requests.append(RecordedRequest("POST", BATCH_PATH, (), BATCH, exc.status))
            error = json.dumps(exc.body(), indent=1).encode()
            return exc.status, error, {**exc.headers, "Content-Type": _JSON_TYPE}
        self.requests.append(RecordedRequest("POST", BATCH_PATH, (), BATCH, 200))
        boundary = f"batch_{secrets.token_urlsafe(12)}"
        out = bytearray()
        for call in calls:
            status, body, headers, method_id = self._handle(
                call.http_method,
                call.path,
                call.query,
                call.headers.get("authorization", auth),
                payload=call.body,
                content_type=call.headers.get("content-type"),
                if_match=call.headers.get("if-match"),
            )
            self.requests.append(
                RecordedRequest(
                    call.http_method, call.path, tuple(call.query), method_id, status, number
                )
            )
            out += f"--{boundary}\r\nContent-Type: application/http\r\n".encode()
            if call.content_id is not None:
                out += f"Content-ID: <response-{call.content_id}>\r\n".encode()
            out += b"\r\n" + _http_response(status, body, headers) + b"\r\n"
        out += f"--{boundary}--\r\n".encode()
        return 200, bytes(out), {"Content-Type": f"multipart/mixed; boundary={boundary}"}

    # --- paging and tokens -----------------------------------------------------------------------

    def _page(
        self,
        email: str,
        kind: str,
        values: Mapping[str, list[str]],
        items: list[JSON],
        extra: JSON,
        *,
        default_size: int,
        max_size: int,
    ) -> tuple[JSON, JSON]:
        fingerprint = tuple(
            sorted((k, v) for k, vs in values.items() for v in vs if k not in _PAGE_FREE)
        )
        page_token = _one(values, "pageToken")
        if page_token is None:
            snapshot_id, offset = secrets.token_hex(8), 0
            self._snapshots[snapshot_id] = _Snapshot(fingerprint, f"{email}/{kind}", items, extra)
        else:
            try:
                snapshot_id, offset_text = _b64decode(page_token).split(":")
                offset = int(offset_text)
                snapshot = self._snapshots[snapshot_id]
            except (ValueError, KeyError):
                raise _bad_request("Invalid page token value.", "pageToken") from None
            if snapshot.fingerprint != fingerprint or snapshot.owner != f"{email}/{kind}":
                raise _bad_request(
                    "The pageToken was issued for a request with other parameters.", "pageToken"
                )
        snapshot = self._snapshots[snapshot_id]
        size = min(int(_one(values, "maxResults") or default_size), max_size)
        if self.page_size is not None:
            size = min(size, self.page_size)
        page = snapshot.items[offset : offset + size]
        body: JSON = {"items": page}
        if offset + size < len(snapshot.items):
            body["nextPageToken"] = _b64encode(f"{snapshot_id}:{offset + size}")
        return body, snapshot.extra

    def _sync_token(self, calendar: FakeCalendar, single: bool) -> str:
        payload = {"c": calendar.id, "s": calendar.seq, "g": self._generation, "e": single}
        return _b64encode(json.dumps(payload, separators=(",", ":")))

    def _decode_sync_token(self, calendar: FakeCalendar, token: str, single: bool) -> int:
        try:
            payload = json.loads(_b64decode(token))
            seq, generation, calendar_id = int(payload["s"]), payload["g"], payload["c"]
        except (ValueError, KeyError, TypeError):
            raise _fault_error(Fault(410, None, None, 1, None)) from None
        if generation != self._generation or calendar_id != calendar.id:
            raise _fault_error(Fault(410, None, None, 1, None))
        if payload.get("e") != single:
            self.violations.append(
                Violation(
                    "calendar.events.list",
                    calendar.id,
                    "syncToken used with another singleEvents than the full sync (undefined)",
                )
            )
        return seq

    # --- recurrence ------------------------------------------------------------------------------

    def _instances(
        self,
        calendar: FakeCalendar,
        master: JSON,
        window: tuple[datetime | None, datetime | None] | None,
    ) -> list[JSON]:
        """The instances of a recurring ``master`` (exceptions applied, cancelled ones left out)."""
        starts = self._instance_ids_with_starts(calendar, master, window)
        out: list[JSON] = []
        for instance_id, original in starts.items():
            exception = calendar.events.get(instance_id)
            if exception is not None and exception.event.get("recurringEventId"):
                continue  # listed on its own
            out.append(_instance(master, instance_id, original))
        return out

    def _instance_ids_with_starts(
        self,
        calendar: FakeCalendar,
        master: JSON,
        window: tuple[datetime | None, datetime | None] | None = None,
    ) -> dict[str, JSON]:
        """Instance id -> originalStartTime of every occurrence of ``master`` (up to a horizon)."""
        start = master["start"]
        all_day = "date" in start
        zone = ZoneInfo(start.get("timeZone") or calendar.time_zone)
        first = _occurrence_start(start, zone)
        horizon = max(self.clock(), first.astimezone(UTC) if first.tzinfo else _utc_day(first))
        stop = horizon + timedelta(days=365 * _EXPANSION_YEARS_AHEAD)
        if window is not None and window[1] is not None:
            stop = min(stop, window[1])
        out: dict[str, JSON] = {}
        for occurrence in _rule_set(master["recurrence"], first, zone, all_day):
            moment = occurrence.astimezone(UTC) if not all_day else _utc_day(occurrence)
            if moment >= stop or len(out) >= _MAX_INSTANCES:
                break
            if all_day:
                original: JSON = {"date": occurrence.date().isoformat()}
            else:
                original = {"dateTime": occurrence.isoformat(), "timeZone": str(zone)}
            out[f"{master['id']}_{_stamp(occurrence if not all_day else occurrence.date())}"] = (
                original
            )
        return out

    def _instance_ids(self, calendar: FakeCalendar, event: JSON | StoredEvent) -> set[str]:
        body = event.event if isinstance(event, StoredEvent) else event
        if isinstance(event, StoredEvent) and event.deleted:
            return set()
        if not body.get("recurrence") or "start" not in body:
            return set()
        return set(self._instance_ids_with_starts(calendar, body))

    def _instance_master(self, calendar: FakeCalendar, instance_id: str) -> StoredEvent | None:
        master_id, sep, _ = instance_id.rpartition("_")
        master = calendar.events.get(master_id) if sep else None
        if master is None or master.deleted or not master.event.get("recurrence"):
            return None
        if instance_id not in self._instance_ids_with_starts(calendar, master.event):
            return None
        return master

    def _forget_instances(self, calendar: FakeCalendar, ids: Iterable[str], seq: int) -> None:
        for instance_id in ids:
            master_id = instance_id.rpartition("_")[0]
            stub = {
                "kind": "calendar#event",
                "etag": f'"{3_000_000_000_000_000 + seq}"',
                "id": instance_id,
                "status": "cancelled",
                "recurringEventId": master_id,
            }
            calendar.gone_instances[instance_id] = (seq, stub)

    # --- helpers ---------------------------------------------------------------------------------

    def _bump(self, calendar: FakeCalendar) -> int:
        calendar.seq = next(self._seq)
        return calendar.seq

    def _account(self, email: str) -> FakeAccount:
        return self.accounts[email.lower()]

    def _calendar_of(self, email: str, calendar_id: str) -> FakeCalendar:
        return self._account(email).calendars[calendar_id]

    def _calendar(self, email: str, calendar_id: str) -> FakeCalendar:
        calendars = self._account(email).calendars
        if calendar_id == "primary":
            calendar_id = next((c.id for c in calendars.values() if c.primary), calendar_id)
        calendar = calendars.get(calendar_id)
        if calendar is None:
            raise GoogleApiError(404, "notFound", "Not Found")
        return calendar

    def _bounds(self, calendar: FakeCalendar, event: JSON) -> tuple[datetime, datetime]:
        start = _moment(event.get("start"), calendar.zone)
        end = _moment(event.get("end"), calendar.zone) or start
        if start is None or end is None:
            return datetime.min.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC)
        return start, max(start, end)

    def _overlaps(
        self,
        calendar: FakeCalendar,
        event: JSON,
        window: tuple[datetime | None, datetime | None],
    ) -> bool:
        """timeMin bounds the end (exclusive), timeMax the start (exclusive), as Google does."""
        start, end = self._bounds(calendar, event)
        low, high = window
        return (low is None or end > low) and (high is None or start < high)

    def _validate_event(self, calendar: FakeCalendar, event: JSON) -> None:
        problems = schema_problems(event, {"$ref": "Event"}, self.discovery.schemas)
        if problems:
            raise ValueError(f"not a Google Event: {'; '.join(problems)}")
        if event["status"] not in ("confirmed", "tentative", "cancelled"):
            raise ValueError(f"unknown event status {event['status']!r}")
        for name in ("start", "end"):
            value = event.get(name)
            if not isinstance(value, dict) or ("date" in value) == ("dateTime" in value):
                raise ValueError(f"{name} needs exactly one of date / dateTime")
        if event.get("recurrence"):
            if "dateTime" in event["start"] and not event["start"].get("timeZone"):
                raise ValueError("Missing time zone definition for start time.")
            self._instance_ids_with_starts(calendar, event)  # raises on a bad rule
        if event.get("recurringEventId") and not event.get("originalStartTime"):
            raise ValueError("an exception needs originalStartTime")


_PAGE_FREE = frozenset({"pageToken", "maxResults", "prettyPrint", "quotaUser", "oauth_token"})


def start_google_fake(
    *,
    token_validator: Callable[[str], str | None] | None = None,
    page_size: int | None = None,
    clock: Callable[[], datetime] | None = None,
    discovery: Discovery | None = None,
) -> GoogleFake:
    """A running fake on an ephemeral 127.0.0.1 port; call ``stop()`` when done."""
    fake = GoogleFake(
        discovery=discovery, token_validator=token_validator, page_size=page_size, clock=clock
    )
    return fake.start()


# --- module helpers ------------------------------------------------------------------------------


def _fault_error(fault: Fault) -> GoogleApiError:
    domain, reason, message = _DEFAULT_FAULTS.get(fault.status, ("global", "backendError", "Error"))
    if fault.reason is not None:
        reason = fault.reason
        domain, message = _REASON_FAULTS.get(reason, (domain, message))
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    if fault.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
        location: str | None = "Authorization"
    else:
        location = None
    return GoogleApiError(
        fault.status,
        reason,
        message,
        domain=domain,
        location=location,
        location_type="header" if location else None,
        headers=headers,
    )


def _one(values: Mapping[str, list[str]], name: str) -> str | None:
    given = values.get(name)
    return given[0] if given else None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _b64encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _b64decode(text: str) -> str:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a token") from None


def _stamp(value: date | datetime) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%d")


def _time_value(value: Mapping[str, Any]) -> date | datetime:
    if "dateTime" in value:
        return datetime.fromisoformat(str(value["dateTime"]).replace("Z", "+00:00"))
    return date.fromisoformat(str(value["date"]))


def _moment(value: Any, zone: tzinfo) -> datetime | None:
    """An EventDateTime as a UTC instant (a date is its midnight in ``zone``)."""
    if not isinstance(value, Mapping):
        return None
    moment = _time_value(value)
    if isinstance(moment, datetime):
        return moment.astimezone(UTC)
    return datetime.combine(moment, datetime.min.time(), zone).astimezone(UTC)


def _utc_day(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


def _occurrence_start(start: Mapping[str, Any], zone: ZoneInfo) -> datetime:
    """The series' first start: aware in ``zone`` (timed) or a naive midnight (all-day)."""
    value = _time_value(start)
    if isinstance(value, datetime):
        return value.astimezone(zone)
    return datetime.combine(value, datetime.min.time())


def _rule_set(lines: list[str], first: datetime, zone: ZoneInfo, all_day: bool) -> rruleset:
    """RRULE / RDATE / EXDATE lines (as in ``Event.recurrence``) as a dateutil rule set."""
    rules = rruleset()
    rules.rdate(first)  # DTSTART is always the first instance
    for line in lines:
        name, _, rest = line.partition(":")
        head = name.split(";")[0].upper()
        if head == "RRULE":
            rule = rrulestr(rest, dtstart=first)
            if not isinstance(rule, rrule):
                raise ValueError(f"unsupported RRULE {line!r}")
            rules.rrule(rule)
        elif head in ("EXDATE", "RDATE"):
            for moment in _date_list(name, rest, first, zone, all_day):
                (rules.exdate if head == "EXDATE" else rules.rdate)(moment)
        else:
            raise ValueError(f"unsupported recurrence line {line!r}")
    return rules


def _date_list(
    name: str, values: str, first: datetime, zone: ZoneInfo, all_day: bool
) -> list[datetime]:
    params = dict(p.split("=", 1) for p in name.split(";")[1:] if "=" in p)
    tz = ZoneInfo(params["TZID"]) if "TZID" in params else zone
    out: list[datetime] = []
    for raw in values.split(","):
        text = raw.strip().split("/")[0]
        if len(text) == 8:
            day = datetime.strptime(text, "%Y%m%d")
            moment = day if all_day else datetime.combine(day.date(), first.timetz())
        else:
            naive = datetime.strptime(text.rstrip("Z"), "%Y%m%dT%H%M%S")
            aware = naive.replace(tzinfo=UTC if text.endswith("Z") else tz)
            moment = datetime.combine(aware.date(), datetime.min.time()) if all_day else aware
        out.append(moment.astimezone(zone) if moment.tzinfo else moment)
    return out


def _instance(master: JSON, instance_id: str, original: JSON) -> JSON:
    """One instance of ``master`` starting at ``original`` (an EventDateTime)."""
    instance = {k: copy.deepcopy(v) for k, v in master.items() if k not in ("recurrence",)}
    first, last = _time_value(master["start"]), _time_value(master["end"])
    begin = _time_value(original)
    if isinstance(begin, datetime) and isinstance(first, datetime) and isinstance(last, datetime):
        zone = ZoneInfo(original.get("timeZone") or "UTC")
        end = (begin.astimezone(UTC) + (last - first)).astimezone(zone)
        instance["start"] = {"dateTime": begin.isoformat(), "timeZone": str(zone)}
        instance["end"] = {"dateTime": end.isoformat(), "timeZone": str(zone)}
    else:
        days = (_as_date(last) - _as_date(first)).days
        instance["start"] = {"date": _as_date(begin).isoformat()}
        instance["end"] = {"date": (_as_date(begin) + timedelta(days=days)).isoformat()}
    instance["id"] = instance_id
    instance["recurringEventId"] = master["id"]
    instance["originalStartTime"] = dict(original)
    instance.pop("etag", None)
    digest = hashlib.sha256(json.dumps(instance, sort_keys=True).encode()).hexdigest()
    instance["etag"] = f'"{int(digest[:15], 16)}"'
    return instance


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _stub(event: JSON) -> JSON:
    """What Google lists for a deleted event: its identity and ``status: cancelled``."""
    stub: JSON = {k: event[k] for k in ("kind", "etag", "id", "recurringEventId") if k in event}
    if "originalStartTime" in event:
        stub["originalStartTime"] = copy.deepcopy(event["originalStartTime"])
    stub["status"] = "cancelled"
    return stub


def _filters_match(event: JSON, values: Mapping[str, list[str]]) -> bool:
    uid = _one(values, "iCalUID")
    if uid is not None and event.get("iCalUID") != uid:
        return False
    types = values.get("eventTypes")
    if types and event.get("eventType", "default") not in types:
        return False
    properties = event.get("extendedProperties") or {}
    for kind in ("private", "shared"):
        for constraint in values.get(f"{kind}ExtendedProperty", []):
            key, _, wanted = constraint.partition("=")
            if (properties.get(kind) or {}).get(key) != wanted:
                return False
    return True


def _check_if_match(event: JSON, if_match: str | None) -> None:
    """412 conditionNotMet unless ``If-Match`` is absent, ``*`` or names the event's ETag."""
    if if_match is None or if_match.strip() == "*":
        return
    if event.get("etag") not in {tag.strip() for tag in if_match.split(",")}:
        raise GoogleApiError(
            412,
            "conditionNotMet",
            "Precondition Failed",
            location="If-Match",
            location_type="header",
        )


def _merged(base: JSON, patch: Mapping[str, Any]) -> JSON:
    """``base`` with ``patch`` applied as events.patch does: objects merged, the rest replaced."""
    out = copy.deepcopy(base)
    for name, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(name), dict):
            out[name] = _merged(out[name], value)
        else:
            out[name] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class BatchCall:
    """One HTTP request inside a batch request (header names in lower case)."""

    content_id: str | None
    http_method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


def parse_batch(payload: bytes, content_type: str | None, limit: int) -> list[BatchCall]:
    """The calls of a ``multipart/mixed`` batch body; a 400 ``GoogleApiError`` when it is
    malformed, a part is no ``application/http`` request, a request names a full URL or there
    are more than ``limit`` calls."""
    mime, _, rest = (content_type or "").partition(";")
    params = dict(_parameter(p) for p in rest.split(";") if "=" in p)
    boundary = params.get("boundary")
    if mime.strip().lower() != "multipart/mixed" or not boundary:
        raise _bad_request("A batch request must be multipart/mixed with a boundary.")
    pieces = payload.split(b"--" + boundary.encode("latin-1"))
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise _bad_request("The batch body is not a closed multipart/mixed body with parts.")
    calls = [_batch_call(piece) for piece in pieces[1:-1]]
    if len(calls) > limit:
        raise _bad_request(f"A batch request may hold at most {limit} calls.")
    return calls


def _parameter(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    return name.strip().lower(), value.strip().strip('"')


def _batch_call(piece: bytes) -> BatchCall:
    part_head, inner = _head_and_body(re.sub(rb"^[ \t]*\r?\n", b"", piece))
    part_headers = _header_map(part_head)
    if part_headers.get("content-type", "").split(";")[0].strip() != "application/http":
        raise _bad_request("Each part of a batch request must be Content-Type: application/http.")
    content_id = part_headers.get("content-id", "").strip().strip("<>") or None
    head, body = _head_and_body(re.sub(rb"\r?\n$", b"", inner))
    words = head[0].split() if head else []
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise _bad_request("A batch part does not hold an HTTP request line.")
    http_method, target, _ = words
    if "://" in target or not target.startswith("/"):
        raise _bad_request("Calls in a batch request give the path only, never a full URL.")
    path, _, query = target.partition("?")
    return BatchCall(
        content_id,
        http_method,
        path,
        parse_qsl(query, keep_blank_values=True),
        _header_map(head[1:]),
        body,
    )


def _head_and_body(data: bytes) -> tuple[list[str], bytes]:
    match = re.search(rb"\r?\n\r?\n", data)
    head, body = (data[: match.start()], data[match.end() :]) if match else (data, b"")
    return [line for line in re.split(r"\r?\n", head.decode("latin-1")) if line], body


def _header_map(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep:
            raise _bad_request(f"Malformed header line in a batch request: {line!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


def _http_response(status: int, body: JSON | None, headers: Mapping[str, str]) -> bytes:
    """One call's answer as the ``application/http`` text of a batch response part."""
    content = b"" if body is None else json.dumps(body, indent=1).encode()
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    if body is not None:
        lines.append(f"Content-Type: {_JSON_TYPE}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(content)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + content
