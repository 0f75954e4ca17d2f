"""The one mapping from failures (HTTP errors, validation, gRPC status codes, bugs) to RFC 9457 problems."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, cast

import asyncpg
import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from yummi_common.db import DatabaseUnavailable, connection_lost
from yummi_common.errors import YummiError
from yummi_common.grpc_client import problem_errors
from yummi_common.logging import get_logger
from yummi_gateway.responses import ProblemResponse

log = get_logger(__name__)

ABOUT_BLANK = "about:blank"
VALIDATION_TYPE = "urn:yummi:problem:validation-error"

GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.OUT_OF_RANGE: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}
# Details of these codes are written by our services for callers; anything else may carry internals.
_SAFE_DETAIL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
_GENERIC_DETAIL = {
    401: "Authentication is required.",
    501: "This operation is not available yet.",
    502: "An upstream service failed to answer this request.",
    503: "A service this request needs is unavailable; try again shortly.",
}
MAX_DETAIL_CHARS = 500


def problem(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type_: str = ABOUT_BLANK,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    """An `application/problem+json` response."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or _phrase(status),
        "status": status,
        "detail": detail or _phrase(status),
    }
    if errors is not None:
        body["errors"] = list(errors)
    body.update(extensions)
    return ProblemResponse(body, status_code=status, headers=dict(headers) if headers else None)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def grpc_status_to_http(code: grpc.StatusCode) -> int:
    """The HTTP status of a failed call: the documented mapping, 502 for anything else."""
    return GRPC_TO_HTTP.get(code, 502)


def grpc_problem(exc: grpc.aio.AioRpcError) -> ProblemResponse:
    """The problem for a failed gRPC call; unexpected codes are logged and answered generically."""
    code = exc.code()
    status = grpc_status_to_http(code)
    if code in _SAFE_DETAIL_CODES:
        detail = (exc.details() or "")[:MAX_DETAIL_CHARS] or None
    else:
        detail = _GENERIC_DETAIL.get(status)
        log_fn = log.warning if status in (501, 503) else log.error
        log_fn(
            "upstream call failed", grpc_code=code.name, grpc_details=(exc.details() or "")[:MAX_DETAIL_CHARS]
        )
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    if status == 422:
        return problem(
            422,
            detail,
            type_=VALIDATION_TYPE,
            title="Validation failed",
            errors=[_normalise_error(e) for e in problem_errors(exc)],
        )
    return problem(status, detail, headers=headers)


def _normalise_error(error: Any) -> dict[str, Any]:
    if not isinstance(error, Mapping):
        return {"message": str(error)[:MAX_DETAIL_CHARS]}
    return {str(k): v for k, v in error.items()}


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors as `{"loc", "field", "message", "type"}` without echoing the input back."""
    out = []
    for err in exc.errors():
        loc = [part for part in err.get("loc", ()) if part is not None]
        field_path = (
            [str(part) for part in loc[1:]]
            if loc and loc[0] in ("body", "query", "path", "header")
            else [str(part) for part in loc]
        )
        out.append(
            {
                "loc": list(loc),
                "field": ".".join(field_path),
                "message": str(err.get("msg", "invalid value")),
                "type": str(err.get("type", "value_error")),
            }
        )
    return out


async def _http_exception_handler(request: Request, exc: Exception) -> ProblemResponse:
    http_error = cast(StarletteHTTPException, exc)
    detail = http_error.detail if isinstance(http_error.detail, str) else None
    return problem(http_error.status_code, detail, headers=http_error.headers)


async def _validation_handler(request: Request, exc: Exception) -> ProblemResponse:
    invalid = cast(RequestValidationError, exc)
    if any(err.get("type") == "json_invalid" for err in invalid.errors()):
        return problem(400, "The request body is not valid JSON.", title="Malformed request")
    return problem(
        422,
        "The request has invalid or missing fields.",
        title="Validation failed",
        type_=VALIDATION_TYPE,
        errors=validation_errors(invalid),
    )


async def _grpc_handler(request: Request, exc: Exception) -> ProblemResponse:
    return grpc_problem(cast(grpc.aio.AioRpcError, exc))


async def _database_handler(request: Request, exc: Exception) -> ProblemResponse:
    """The gateway's own database (identity) could not be reached or dropped the connection: 503, retry soon.

    Anything else from the database is a bug, answered 500 by the edge middleware like every other bug.
    """
    if not connection_lost(exc):
        raise exc
    log.warning("database unavailable", error=repr(exc)[:MAX_DETAIL_CHARS])
    return problem(503, _GENERIC_DETAIL.get(503), headers={"Retry-After": "1"})


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers; bugs are answered by the edge middleware (so they carry our headers too)."""
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(grpc.aio.AioRpcError, _grpc_handler)
    app.add_exception_handler(YummiError, _domain_error_handler)
    # more specific than YummiError: its message names the server, which clients need not see
    app.add_exception_handler(DatabaseUnavailable, _database_handler)
    for database_error in (
        SQLAlchemyError,
        asyncpg.exceptions.PostgresError,
        asyncpg.exceptions.InterfaceError,
    ):
        app.add_exception_handler(database_error, _database_handler)


async def _domain_error_handler(request: Request, exc: Exception) -> ProblemResponse:
    error = cast(YummiError, exc)
    status = grpc_status_to_http(getattr(grpc.StatusCode, error.code, grpc.StatusCode.INTERNAL))
    if status == 502:
        log.error("unexpected domain error", error_type=type(error).__name__)
        return problem(500, "An unexpected error occurred.")
    if status == 422:
        return problem(
            422, error.message, title="Validation failed", type_=VALIDATION_TYPE, errors=error.errors
        )
    return problem(status, error.message)
