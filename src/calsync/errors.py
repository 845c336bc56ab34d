"""The one exception tree of calsync.

Every error a caller can see has a stable ``code`` and maps to one HTTP status; the API layer
renders them (``api/errors.py``) and nothing else decides a status code.

    CalsyncError                      (500 INTERNAL)
    ├── InvalidArgument               (400, carries FieldViolation list)
    ├── Unauthenticated               (401 UNAUTHENTICATED)
    ├── BadCredentials                (401 BAD_CREDENTIALS: the external account refused them)
    ├── PermissionDenied              (403 PERMISSION_DENIED)
    ├── NotFound                      (404 NOT_FOUND)
    ├── FailedPrecondition            (428, code chosen by subclass)
    │   ├── NotSupportedByProvider    (NOT_SUPPORTED_BY_PROVIDER)
    │   ├── ConnectionNotConnected    (CONNECTION_NOT_CONNECTED)
    │   └── ConnectionAlreadyDisconnected (CONNECTION_ALREADY_DISCONNECTED)
    ├── PayloadTooLarge               (413 PAYLOAD_TOO_LARGE)
    ├── UriTooLong                    (414 URI_TOO_LONG)
    ├── HeadersTooLarge               (431 REQUEST_HEADER_FIELDS_TOO_LARGE)
    ├── RateLimited                   (429 RESOURCE_EXHAUSTED)
    ├── Unimplemented                 (501 UNIMPLEMENTED)
    └── ProviderUnavailable           (503 EXTERNAL_PROVIDER_UNAVAILABLE)

Provider adapters raise ``providers.base.ProviderError`` subclasses; services translate them
into this tree at their boundary.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field, by its wire path (``cursorPaging.limit``, ``scheduleIds[3]``)."""

    field: str
    description: str
    violated_rule: str = "OTHER"
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


class CalsyncError(Exception):
    """Base of every error calsync reports; ``code`` is stable, ``http_status`` is fixed."""

    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL"

    def __init__(self, description: str = "", *, data: dict[str, Any] | None = None) -> None:
        super().__init__(description or self.code)
        self.description = description or self.code
        self.data: dict[str, Any] = data or {}


class InvalidArgument(CalsyncError):
    http_status = 400
    code = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation]) -> None:
        first = violations[0] if violations else FieldViolation("", "invalid request")
        super().__init__(f'"{first.field}" {first.description}')
        self.violations = violations


class Unauthenticated(CalsyncError):
    http_status = 401
    code = "UNAUTHENTICATED"


class BadCredentials(CalsyncError):
    http_status = 401
    code = "BAD_CREDENTIALS"


class PermissionDenied(CalsyncError):
    http_status = 403
    code = "PERMISSION_DENIED"


class NotFound(CalsyncError):
    http_status = 404
    code = "NOT_FOUND"


class FailedPrecondition(CalsyncError):
    http_status = 428
    code = "FAILED_PRECONDITION"


class NotSupportedByProvider(FailedPrecondition):
    code = "NOT_SUPPORTED_BY_PROVIDER"


class ConnectionNotConnected(FailedPrecondition):
    code = "CONNECTION_NOT_CONNECTED"


class ConnectionAlreadyDisconnected(FailedPrecondition):
    code = "CONNECTION_ALREADY_DISCONNECTED"


class PayloadTooLarge(CalsyncError):
    http_status = 413
    code = "PAYLOAD_TOO_LARGE"


class UriTooLong(CalsyncError):
    http_status = 414
    code = "URI_TOO_LONG"


class HeadersTooLarge(CalsyncError):
    http_status = 431
    code = "REQUEST_HEADER_FIELDS_TOO_LARGE"


class RateLimited(CalsyncError):
    http_status = 429
    code = "RESOURCE_EXHAUSTED"


class Unimplemented(CalsyncError):
    http_status = 501
    code = "UNIMPLEMENTED"


class ProviderUnavailable(CalsyncError):
    """An external calendar server could not be reached or failed; ``data.failedProviderIds``."""

    http_status = 503
    code = "EXTERNAL_PROVIDER_UNAVAILABLE"


@dataclass
class ViolationCollector:
    """Collects field violations while parsing, then raises them all at once."""

    violations: list[FieldViolation] = dataclasses.field(default_factory=list)

    def add(self, field_path: str, description: str, rule: str = "OTHER") -> None:
        self.violations.append(FieldViolation(field_path, description, rule))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)
