"""Admin dataset routes against a catalog that takes its time: completing is given a deadline of its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
import pytest_asyncio

from yummi.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from yummi_common.grpc_server import ServerContextInterceptor
from yummi_gateway.entrypoints.routes.admin import COMPLETE_DEADLINE_SECONDS

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ADMIN_EMAIL = "admin@example.com"  # an admin in the test settings
DEFAULT_DEADLINE = 0.5  # the app's deadline for every other call in these tests
VERIFYING_SECONDS = 1.0  # how long the catalog below takes to check an uploaded file: past that default


class SlowCatalog(catalog_pb2_grpc.CatalogServiceServicer):
    """CompleteDataset as a catalog that reads a large object back to hash it: slow, then `indexing`."""

    def __init__(self) -> None:
        self.deadlines: list[float | None] = []

    async def CompleteDataset(self, request: Any, context: Any) -> catalog_pb2.Dataset:
        self.deadlines.append(context.time_remaining())
        await asyncio.sleep(VERIFYING_SECONDS)
        return catalog_pb2.Dataset(
            id=request.id,
            name="weekly",
            version="v0007",
            status="indexing",
            checksum_sha256=request.checksum_sha256,
        )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def slow_catalog() -> AsyncIterator[tuple[str, SlowCatalog]]:
    servicer = SlowCatalog()
    server = grpc.aio.server(interceptors=[ServerContextInterceptor()])
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(grace=None)


async def test_completing_a_dataset_outlasts_the_default_deadline(
    app_client: Callable[..., Any], auth: Callable[..., dict[str, str]], slow_catalog: tuple[str, SlowCatalog]
) -> None:
    addr, catalog = slow_catalog
    dataset_id = str(uuid.uuid4())
    checksum = "ab" * 32
    async with app_client(catalog_grpc_addr=addr, grpc_deadline_seconds=DEFAULT_DEADLINE) as http:
        response = await http.post(
            f"/v1/admin/datasets/{dataset_id}/complete",
            json={"checksum_sha256": checksum.upper()},
            headers=auth(email=ADMIN_EMAIL),
        )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["id"], body["status"], body["checksum_sha256"]) == (dataset_id, "indexing", checksum)
    (remaining,) = catalog.deadlines
    # The grpc-timeout header carries the deadline rounded up to its unit: the server may see a hair more.
    assert remaining is not None
    assert COMPLETE_DEADLINE_SECONDS - 60 < remaining <= COMPLETE_DEADLINE_SECONDS + 1
