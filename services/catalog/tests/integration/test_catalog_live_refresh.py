"""Two catalog replicas on one database: when one activates a version, the other serves it soon after.

Each replica caches the live version. The first test gives them a refresh interval of an hour, so only the
`catalog.dataset.activated` broadcast over NATS can tell the second replica; the second runs without NATS and
relies on the refresh interval alone. Either way every page is entirely one version.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from yummi.catalog.v1 import catalog_pb2 as pb
from yummi.catalog.v1.catalog_pb2_grpc import CatalogServiceStub
from yummi_catalog.adapters.file_store import LocalFileStore
from yummi_catalog.adapters.tables import SCHEMA, messaging, metadata
from yummi_catalog.entrypoints.grpc_server import register
from yummi_common.grpc_client import make_channel
from yummi_common.grpc_server import bound_port, start_grpc_server
from yummi_common.service import Runtime
from yummi_common.settings import Settings

from .catalog_factories import catalog_bytes

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]

DEADLINE_SECONDS = 20.0


@contextlib.asynccontextmanager
async def replica(
    settings: Settings, store: LocalFileStore, *, nats: bool
) -> AsyncIterator[CatalogServiceStub]:
    """One catalog process: its own runtime (relay and NATS when `nats`), gRPC server and client."""
    runtime = await Runtime.start(
        service="catalog", settings=settings, metadata=metadata, tables=messaging, with_messaging=nats
    )
    server, _health = await start_grpc_server(
        addr="127.0.0.1:0", register=lambda s: register(s, runtime, store=store)
    )
    channel = make_channel(f"127.0.0.1:{bound_port(server)}", deadline=30.0)
    try:
        yield CatalogServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(grace=None)
        await runtime.close()


async def emptied(settings: Settings) -> None:
    runtime = await Runtime.start(
        service="catalog", settings=settings, metadata=metadata, tables=messaging, with_messaging=False
    )
    try:
        async with runtime.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {SCHEMA}.dataset_files, {SCHEMA}.datasets, {SCHEMA}.outbox"))
            partitions = await conn.execute(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :schema AND c.relname ~ '^products_[0-9a-f]{32}$'"
                ),
                {"schema": SCHEMA},
            )
            for name in partitions.scalars():
                await conn.execute(text(f"DROP TABLE {SCHEMA}.{name}"))
    finally:
        await runtime.close()


async def one_version_page(stub: CatalogServiceStub) -> str:
    """A page of the live catalog, checked to hold one version only; that version."""
    page = await stub.ListProducts(pb.ListProductsRequest(limit=500))
    assert page.items, "the live catalog is empty"
    assert {product.dataset_version for product in page.items} == {page.dataset_version}
    return page.dataset_version


async def until_serving(stub: CatalogServiceStub, version: str) -> None:
    """Poll (a page, a random sample, a lookup) until `stub` answers from `version`; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    seen = ""
    while loop.time() < deadline:
        seen = await one_version_page(stub)
        if seen == version:
            sample = await stub.ListProducts(pb.ListProductsRequest(limit=5, random=True))
            product = await stub.GetProduct(pb.GetProductRequest(id="1001"))
            assert {p.dataset_version for p in sample.items} == {version}
            assert product.dataset_version == version
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still serving {seen!r}, not {version!r}, after {DEADLINE_SECONDS}s")


async def activate_on_one_replica_and_read_on_the_other(
    settings: Settings, store: LocalFileStore, nats: bool
) -> None:
    await emptied(settings)
    async with replica(settings, store, nats=nats) as first, replica(settings, store, nats=nats) as second:
        old = await first.ImportCatalog(
            pb.ImportCatalogRequest(content=catalog_bytes(30), created_by="admin")
        )
        assert old.active
        await until_serving(second, old.version)  # the second replica has now cached the old version
        new = await first.ImportCatalog(
            pb.ImportCatalogRequest(content=catalog_bytes(20), created_by="admin")
        )
        assert new.active
        assert await one_version_page(first) == new.version  # the activating replica knows at once
        await until_serving(second, new.version)

        rolled_back = await second.ActivateDataset(pb.DatasetRef(id=old.dataset_id))
        assert rolled_back.status == "active"
        assert await one_version_page(second) == old.version
        await until_serving(first, old.version)


@pytest.fixture
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalFileStore:
    return LocalFileStore(tmp_path_factory.mktemp("catalog-store"))


async def test_an_activation_reaches_the_other_replica_over_nats(
    settings: Settings, store: LocalFileStore
) -> None:
    if not settings.nats_url:
        pytest.skip("needs NATS")
    # An hour: only the broadcast can tell the other replica in time.
    own = settings.model_copy(update={"catalog_live_refresh_seconds": 3600.0})
    await activate_on_one_replica_and_read_on_the_other(own, store, nats=True)


async def test_without_nats_the_other_replica_catches_up_within_the_refresh_interval(
    settings: Settings, store: LocalFileStore
) -> None:
    own = settings.model_copy(update={"catalog_live_refresh_seconds": 0.5})
    await activate_on_one_replica_and_read_on_the_other(own, store, nats=False)
