"""The one place where errors become HTTP responses in the platform's error envelope (1.7)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from calsync.errors import CalsyncError, FieldViolation, InvalidArgument

WWW_AUTHENTICATE = 'Bearer realm="calsync"'
_STATUS_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    429: "RESOURCE_EXHAUSTED",
}


def envelope(error: CalsyncError) -> dict[str, Any]:
    if isinstance(error, InvalidArgument):
        return {
            "message": f"INVALID_ARGUMENT: {error.description}",
            "details": {
                "validationError": {
                    "fieldViolations": [
                        {
                            "field": v.field,
                            "description": v.description,
                            "violatedRule": v.violated_rule,
                            "ruleName": "VALIDATION_ERROR",
                            "data": v.data,
                        }
                        for v in error.violations
                    ]
                }
            },
        }
    return {
        "message": error.description,
        "details": {
            "applicationError": {
                "code": error.code,
                "description": error.description,
                "data": error.data,
            }
        },
    }


def error_response(error: CalsyncError) -> JSONResponse:
    headers = {}
    retry = error.data.get("retryAfterSeconds")
    if isinstance(retry, int | float):
        headers["Retry-After"] = str(max(1, int(retry)))
    if error.http_status == 401:
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    return JSONResponse(envelope(error), status_code=error.http_status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(CalsyncError)
    async def _calsync(_request: Request, exc: CalsyncError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "INTERNAL")
        body = {
            "message": str(exc.detail),
            "details": {
                "applicationError": {"code": code, "description": str(exc.detail), "data": {}}
            },
        }
        # 405 keeps Starlette's Allow header (the methods the path has).
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        violations = [
            FieldViolation(".".join(str(p) for p in e["loc"][1:]), e["msg"], "FORMAT")
            for e in exc.errors()
        ]
        return error_response(InvalidArgument(violations))
