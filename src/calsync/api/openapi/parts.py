"""Builders of OpenAPI operations, parameters and responses in calsync's conventions: every
operation takes the optional ``wix-site-id`` header, every error uses the error envelope."""

from __future__ import annotations

from typing import Any

from calsync.api.openapi.schemas import PROVIDER_ID, Schema, ref

_ERROR_TEXT = {
    400: ("INVALID_ARGUMENT", "The request is malformed or failed validation."),
    401: ("UNAUTHENTICATED", "No API key, or an unknown or revoked one."),
    403: ("PERMISSION_DENIED", "The key may not do this (permission, tenant or ownership)."),
    404: ("NOT_FOUND", "No such object in the caller's tenant."),
    428: ("FAILED_PRECONDITION", "The object's state or its provider does not allow this."),
    429: (
        "RESOURCE_EXHAUSTED",
        "Too many calls from this tenant, or too many failed sign-ins from this client: wait "
        "for Retry-After seconds (CALSYNC_TENANT_REQUESTS_PER_SECOND and the auth limits).",
    ),
    503: ("EXTERNAL_PROVIDER_UNAVAILABLE", "An external calendar server could not be reached."),
}


def error(status: int, code: str | None = None, description: str | None = None) -> Schema:
    """A response in the error envelope, with an example carrying ``code``."""
    default_code, default_text = _ERROR_TEXT.get(status, ("INTERNAL", "internal error"))
    code = code or default_code
    text = description or default_text
    if status == 400:
        example: dict[str, Any] = {
            "message": 'INVALID_ARGUMENT: "scheduleId" must be a GUID',
            "details": {
                "validationError": {
                    "fieldViolations": [
                        {
                            "field": "scheduleId",
                            "description": "must be a GUID",
                            "violatedRule": "FORMAT",
                            "ruleName": "VALIDATION_ERROR",
                            "data": {},
                        }
                    ]
                }
            },
        }
    else:
        data = {"failedProviderIds": [PROVIDER_ID]} if status == 503 else {}
        example = {
            "message": text,
            "details": {"applicationError": {"code": code, "description": text, "data": data}},
        }
    return {
        "description": f"{code}: {text}",
        "content": {"application/json": {"schema": ref("ErrorEnvelope"), "example": example}},
    }


def _rate_limited() -> Schema:
    limited = error(429)
    limited["headers"] = {
        "Retry-After": {
            "description": "Seconds to wait before calling again.",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
    return limited


def errors(*statuses: int, **special: Schema) -> dict[str, Schema]:
    """Error responses by status; ``special`` (keyed ``s428``) replaces a default one."""
    out = {str(s): error(s) for s in statuses}
    out.update({key.removeprefix("s"): value for key, value in special.items()})
    return out


def ok(schema: Schema, example: Any, description: str = "Success.") -> dict[str, Schema]:
    return {
        "200": {
            "description": description,
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    }


def body(schema: Schema, example: Any, *, required: bool = True) -> Schema:
    return {
        "required": required,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


def path_param(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema or {"type": "string", "minLength": 1},
        "description": description,
    }


def query(name: str, schema: Schema, description: str, **extra: Any) -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description, **extra}


def operation(
    operation_id: str,
    summary: str,
    description: str,
    *,
    tag: str,
    responses: dict[str, Schema],
    parameters: list[Schema] | None = None,
    request_body: Schema | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "tags": [tag],
        "parameters": [*(parameters or []), {"$ref": "#/components/parameters/SiteId"}],
        "responses": responses,
    }
    if request_body is not None:
        op["requestBody"] = request_body
    if security is None and "429" not in responses:  # every authenticated call is limited
        op["responses"] = {**responses, "429": _rate_limited()}
    if security is not None:
        op["security"] = security
        op["parameters"] = parameters or []
    return op


def wrap(key: str, schema: Schema, *extra_required: str, **extra: Schema) -> Schema:
    return {
        "type": "object",
        "properties": {key: schema, **extra},
        "required": [key, *extra_required],
    }


CONNECTION_PARAM = path_param("connectionId", "Connection ID (opaque).")
GUIDS: Schema = {"type": "array", "items": ref("Guid"), "maxItems": 100}
