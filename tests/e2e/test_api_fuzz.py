"""Schemathesis over each operation of openapi.json on the running stack: no 5xx, true schemas."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import ADMIN_EMAIL, RUNNER_EMAIL, Stack

pytestmark = pytest.mark.e2e

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "openapi.json"
MAX_EXAMPLES = 25  # per operation; with derandomize=True the same inputs every run
# Runner routes fuzz as the runner: random ids answer 404; POST /v1/orders/next finds the queue empty here
# (no earlier module places orders) and a claim would only hold an order for ORDER_LEASE_SECONDS.
RUNNER_PATHS = ("/v1/orders/next", "/heartbeat", "/ack")
# Cannot be fuzzed sensibly:
# - PUT /v1/admin/datasets/{dataset_id}/file streams a body of up to DATASET_UPLOAD_MAX_BYTES to the object
#   store; its 4xx paths are covered by the catalog and gateway tests.
EXCLUDED = {("PUT", "/v1/admin/datasets/{dataset_id}/file")}


schema = schemathesis.openapi.from_path(OPENAPI_PATH)
for _method, _path in EXCLUDED:
    schema = schema.exclude(method=_method, path=_path)


def _headers(stack: Stack, method: str, path: str) -> dict[str, str]:
    """Admin routes as the admin, runner routes as the runner, the rest as a user of the operation's own."""
    if path.startswith("/v1/admin/"):
        return stack.auth("fuzz_admin", ADMIN_EMAIL)
    if path.startswith("/v1/orders/") and path.endswith(RUNNER_PATHS):
        return stack.auth("fuzz_runner", RUNNER_EMAIL)
    # One user per operation, so DELETE /v1/me (and what it does to its user) touches no other operation.
    tag = hashlib.sha256(f"{method} {path}".encode()).hexdigest()[:12]
    return stack.auth(f"fuzz_{tag}", f"fuzz_{tag}@e2e.example")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_operation_answers_without_5xx_and_as_documented(case: schemathesis.Case, stack: Stack) -> None:
    case.call_and_validate(
        base_url=stack.url,
        headers=_headers(stack, case.method.upper(), case.path),
        checks=[not_a_server_error, response_schema_conformance, status_code_conformance],
        timeout=30,
    )


def test_served_document_is_the_committed_openapi_json(stack: Stack) -> None:
    served = httpx.get(f"{stack.url}/openapi.json", timeout=10).json()
    committed = schemathesis.openapi.from_path(OPENAPI_PATH).raw_schema
    assert served == committed, "the gateway serves another document: `make openapi`, commit openapi.json"
