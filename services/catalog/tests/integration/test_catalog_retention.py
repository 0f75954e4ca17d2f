"""Statuses and retention: a replaced live version is retired, a never-live one is ready, and only the newest
rollback targets (and failed versions) are kept, with their products partitions and files."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
from sqlalchemy import text

from yummi.catalog.v1 import catalog_pb2 as pb
from yummi_catalog.adapters.file_store import LocalFileStore
from yummi_catalog.service_layer import datasets, retention, uploads
from yummi_catalog.service_layer.imports import import_catalog
from yummi_common.errors import NotFound
from yummi_common.service import Runtime

from .catalog_factories import catalog_bytes, catalog_items

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def imported(runtime: Runtime, store: LocalFileStore, count: int = 20) -> uuid.UUID:
    async with runtime.uow() as uow:
        result = await import_catalog(uow=uow, store=store, content=catalog_bytes(count=count))
    return result.dataset_id


async def uploaded(runtime: Runtime, store: LocalFileStore, content: bytes) -> uuid.UUID:
    """A dataset through the upload path, indexed to ready (or failed), never activated."""
    async with runtime.uow() as uow:
        row, _ = await uploads.create_dataset(uow=uow, store=store)

    async def chunks() -> AsyncIterator[pb.UploadDatasetFileChunk]:
        yield pb.UploadDatasetFileChunk(dataset_id=str(row.id), data=content)

    await uploads.upload_dataset_file(uow_factory=runtime.uow, store=store, chunks=chunks())
    async with runtime.uow() as uow:
        await uploads.complete_dataset(
            uow=uow, store=store, dataset_id=str(row.id), checksum=hashlib.sha256(content).hexdigest()
        )
    await uploads.index_dataset(uow_factory=runtime.uow, store=store, dataset_id=row.id)
    return row.id


async def statuses(runtime: Runtime) -> dict[uuid.UUID, str]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, status FROM catalog.datasets"))
        return {row.id: row.status for row in rows}


async def partitions(runtime: Runtime) -> set[uuid.UUID]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT relname FROM pg_class WHERE relname ~ '^products_[0-9a-f]{32}$' AND relkind = 'r'")
        )
        return {uuid.UUID(name.removeprefix("products_")) for name in rows.scalars()}


async def prune(runtime: Runtime, store: LocalFileStore, keep: int) -> list[uuid.UUID]:
    return await retention.prune_versions(
        uow_factory=runtime.uow, engine=runtime.engine, store=store, keep=keep
    )


async def test_retention_keeps_the_live_version_and_the_newest_rollback_targets(
    runtime: Runtime, store: LocalFileStore
) -> None:
    oldest, older, old = [await imported(runtime, store, count) for count in (20, 21, 22)]
    ready = await uploaded(runtime, store, catalog_bytes(count=23))
    bad = catalog_items(count=20)
    bad[3]["price"] = "free"
    failed_first = await uploaded(runtime, store, orjson.dumps(bad))
    failed_second = await uploaded(runtime, store, orjson.dumps(bad[:19]))
    live = await imported(runtime, store, 24)
    assert await statuses(runtime) == {
        oldest: "retired",
        older: "retired",
        old: "retired",
        ready: "ready",
        failed_first: "failed",
        failed_second: "failed",
        live: "active",
    }
    assert (store.root / "datasets" / str(oldest)).is_dir()

    # Rollback targets by recency (when they stopped being live or became ready): old, ready, older, oldest.
    pruned = await prune(runtime, store, keep=2)
    assert set(pruned) == {oldest, older}
    assert set(await statuses(runtime)) == {old, ready, failed_first, failed_second, live}
    assert {oldest, older}.isdisjoint(await partitions(runtime))
    assert not (store.root / "datasets" / str(oldest)).exists()
    async with runtime.uow() as uow:
        with pytest.raises(NotFound):
            await datasets.activate_dataset(uow=uow, dataset_id=str(oldest))
    async with runtime.uow() as uow:
        rolled_back = await datasets.activate_dataset(uow=uow, dataset_id=str(old))
    assert rolled_back.status == "active"

    assert await prune(runtime, store, keep=2) == []  # nothing more to do
    everything_but_live = await prune(runtime, store, keep=0)
    assert set(everything_but_live) == {ready, failed_first, failed_second, live}
    assert set(await statuses(runtime)) == {old}
    assert await partitions(runtime) == {old}


async def test_a_partition_left_without_its_dataset_is_dropped(
    runtime: Runtime, store: LocalFileStore
) -> None:
    orphan = uuid.uuid4()
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text(f"CREATE TABLE catalog.products_{orphan.hex} (LIKE catalog.products INCLUDING DEFAULTS)")
        )
    assert orphan in await partitions(runtime)
    await prune(runtime, store, keep=5)
    assert orphan not in await partitions(runtime)
