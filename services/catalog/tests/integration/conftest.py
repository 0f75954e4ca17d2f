"""Integration fixtures: the migrated catalog schema, a runtime, and the real gRPC server on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text

from yummi.catalog.v1 import catalog_pb2_grpc
from yummi_catalog.adapters.file_store import LocalFileStore
from yummi_catalog.adapters.s3_store import S3FileStore
from yummi_catalog.adapters.tables import SCHEMA, messaging, metadata
from yummi_catalog.entrypoints.grpc_server import register
from yummi_catalog.migrations import MIGRATIONS_DIR
from yummi_catalog.service_layer.uploads import run_indexer
from yummi_common.grpc_client import make_channel
from yummi_common.grpc_server import start_grpc_server
from yummi_common.migrations import upgrade
from yummi_common.service import Runtime
from yummi_common.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings from the environment, with the catalog schema migrated (idempotent)."""
    settings = Settings()
    upgrade(settings=settings, service="catalog", script_location=MIGRATIONS_DIR)
    return settings


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalFileStore:
    return LocalFileStore(Path(tmp_path_factory.mktemp("catalog-store")))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 wire-protocol server (moto) on a free port, throw-away credentials in the environment."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "test-key-id")
        env.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
        env.delenv("AWS_PROFILE", raising=False)
        yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3_store(s3_endpoint: str) -> S3FileStore:
    """A fresh bucket behind the S3 server, as the catalog's dataset store."""
    bucket = f"yummi-datasets-{uuid.uuid4().hex[:12]}"
    store = S3FileStore(bucket=bucket, endpoint_url=s3_endpoint, region="us-east-1")
    store._client.create_bucket(Bucket=bucket)
    return store


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A runtime on an emptied catalog schema (events stay in the outbox, where the tests read them)."""
    runtime = await Runtime.start(
        service="catalog", settings=settings, metadata=metadata, tables=messaging, with_messaging=False
    )
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
    yield runtime
    await runtime.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stub(runtime: Runtime, store: LocalFileStore) -> AsyncIterator[catalog_pb2_grpc.CatalogServiceStub]:
    """A client of the real server (servicer, interceptor, health) with the background indexer running."""
    addr = f"127.0.0.1:{_free_port()}"
    server, _health = await start_grpc_server(addr=addr, register=lambda s: register(s, runtime, store=store))
    stop = asyncio.Event()
    indexer = asyncio.create_task(
        run_indexer(uow_factory=runtime.uow, store=store, stop=stop, poll_interval=0.05)
    )
    channel = make_channel(addr, deadline=30.0)
    try:
        yield catalog_pb2_grpc.CatalogServiceStub(channel)
    finally:
        await channel.close()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(indexer, timeout=10)
        await server.stop(grace=None)
