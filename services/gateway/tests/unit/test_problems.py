"""The one failure → problem mapping."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc

from yummi_common.db import DatabaseUnavailable
from yummi_gateway.problems import grpc_problem, grpc_status_to_http, install_problem_handlers, problem


def rpc_error(
    code: grpc.StatusCode, details: str, trailing: tuple[tuple[str, str], ...] = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details=details)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 422),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.FAILED_PRECONDITION, 409),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 503),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.INTERNAL, 502),
        (grpc.StatusCode.UNKNOWN, 502),
        (grpc.StatusCode.DATA_LOSS, 502),
    ],
)
def test_grpc_status_maps_to_the_documented_http_status(code: grpc.StatusCode, status: int) -> None:
    assert grpc_status_to_http(code) == status
    assert grpc_problem(rpc_error(code, "x")).status_code == status


def test_invalid_argument_becomes_422_with_the_services_field_errors() -> None:
    errors = [{"field": "items[0].product_id", "message": "unknown product"}]
    response = grpc_problem(
        rpc_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown product",
            (("x-problem-errors", orjson.dumps(errors).decode()),),
        )
    )
    body = orjson.loads(response.body)
    assert response.status_code == 422
    assert response.media_type == "application/problem+json"
    assert body["errors"] == errors
    assert body["detail"] == "unknown product"
    assert {"type", "title", "status", "detail"} <= body.keys()


def test_internal_errors_are_answered_generically_without_the_upstream_details() -> None:
    response = grpc_problem(rpc_error(grpc.StatusCode.INTERNAL, "psycopg: relation orders does not exist"))
    body = orjson.loads(response.body)
    assert response.status_code == 502
    assert "relation" not in body["detail"]


def test_unavailable_tells_the_client_when_to_retry() -> None:
    response = grpc_problem(rpc_error(grpc.StatusCode.UNAVAILABLE, "connect failed to 10.0.0.7:50051"))
    assert response.headers["retry-after"] == "1"
    assert "10.0.0.7" not in orjson.loads(response.body)["detail"]


def test_problem_has_the_rfc_9457_members() -> None:
    body = orjson.loads(problem(404, "order not found").body)
    assert body == {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "order not found"}


def database_failure_app() -> FastAPI:
    """A route per failure of the gateway's own database, behind the gateway's problem handlers."""
    app = FastAPI()
    install_problem_handlers(app)
    lost = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    duplicate = asyncpg.exceptions.UniqueViolationError("duplicate key value violates unique constraint")
    failures: dict[str, Exception] = {
        "unreachable": DatabaseUnavailable(
            "the database cannot be reached: ConnectionRefusedError(10.1.2.3:5432)"
        ),
        "dropped": sa_exc.DBAPIError("SELECT 1", None, lost),
        "pool-timeout": sa_exc.TimeoutError("QueuePool limit of size 10 overflow 0 reached"),
        "driver-dropped": lost,
        "bug": sa_exc.IntegrityError("INSERT", None, duplicate),
    }
    for name, failure in failures.items():
        app.add_api_route(f"/{name}", raising(failure))
    return app


def raising(failure: Exception) -> Any:
    async def fail() -> None:
        raise failure

    return fail


@pytest.mark.parametrize("name", ["unreachable", "dropped", "pool-timeout", "driver-dropped"])
def test_a_database_that_cannot_be_had_is_503_without_naming_it(name: str) -> None:
    with TestClient(database_failure_app(), raise_server_exceptions=False) as client:
        response = client.get(f"/{name}")
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "10.1.2.3" not in response.text and "5432" not in response.text and "Pool" not in response.text


def test_any_other_database_error_stays_a_bug() -> None:
    with TestClient(database_failure_app(), raise_server_exceptions=False) as client:
        assert client.get("/bug").status_code == 500
