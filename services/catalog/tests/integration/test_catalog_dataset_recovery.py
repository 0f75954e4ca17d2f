"""Datasets that never finish: uploads abandoned past their TTL (local store and S3), and indexing cut short
by a process that died (a real child process, killed)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from yummi.catalog.v1 import catalog_pb2 as pb
from yummi_catalog.adapters import datasets as repo
from yummi_catalog.adapters.file_store import LocalFileStore, dataset_prefix
from yummi_catalog.adapters.products import partition_name
from yummi_catalog.adapters.s3_store import S3FileStore
from yummi_catalog.adapters.tables import SCHEMA
from yummi_catalog.service_layer import datasets, imports, retention, uploads
from yummi_common.errors import Conflict
from yummi_common.service import Runtime

from .catalog_factories import catalog_bytes

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

DAY = 24 * 3600

# What a catalog process does with a completed dataset, in a process of its own that the test kills.
INDEXER = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from pathlib import Path

    from yummi_catalog.adapters.file_store import LocalFileStore
    from yummi_catalog.adapters.tables import messaging, metadata
    from yummi_catalog.service_layer.uploads import index_dataset
    from yummi_common.service import Runtime
    from yummi_common.settings import Settings


    async def main() -> None:
        runtime = await Runtime.start(
            service="catalog", settings=Settings(), metadata=metadata, tables=messaging, with_messaging=False
        )
        store = LocalFileStore(Path(sys.argv[1]))
        print(await index_dataset(uow_factory=runtime.uow, store=store, dataset_id=uuid.UUID(sys.argv[2])))


    asyncio.run(main())
    """
)


async def one_chunk(dataset_id: uuid.UUID, content: bytes) -> AsyncIterator[pb.UploadDatasetFileChunk]:
    yield pb.UploadDatasetFileChunk(dataset_id=str(dataset_id), data=content)


async def create(
    runtime: Runtime, store: LocalFileStore | S3FileStore
) -> tuple[uuid.UUID, uploads.UploadTarget]:
    async with runtime.uow() as uow:
        row, target = await uploads.create_dataset(uow=uow, store=store, upload_base_url="https://api.test")
    return row.id, target


async def upload_local(runtime: Runtime, store: LocalFileStore, dataset_id: uuid.UUID, content: bytes) -> str:
    stored = await uploads.upload_dataset_file(
        uow_factory=runtime.uow, store=store, chunks=one_chunk(dataset_id, content)
    )
    return stored.object_key


async def complete(
    runtime: Runtime, store: LocalFileStore | S3FileStore, dataset_id: uuid.UUID, content: bytes
) -> str:
    async with runtime.uow() as uow:
        row = await uploads.complete_dataset(
            uow=uow, store=store, dataset_id=str(dataset_id), checksum=hashlib.sha256(content).hexdigest()
        )
    return str(row.status)


def put(target: uploads.UploadTarget, content: bytes) -> None:
    """What an admin's client does with a presigned upload target."""
    response = httpx.request(target.method, target.url, content=content, headers=target.headers, timeout=30)
    assert response.status_code == 200, response.text


async def created_days_ago(runtime: Runtime, dataset_id: uuid.UUID, days: float) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text(
                f"UPDATE {SCHEMA}.datasets SET created_at = now() - make_interval(secs => :s) "  # noqa: S608 - constant
                "WHERE id = :id"
            ),
            {"s": days * DAY, "id": dataset_id},
        )


async def dataset_row(runtime: Runtime, dataset_id: uuid.UUID) -> tuple[str, str, bool]:
    """(status, error, whether a stored file is recorded)."""
    async with runtime.uow() as uow:
        row = await datasets.get_dataset(uow=uow, dataset_id=str(dataset_id))
        recorded = await repo.get_file(uow.session, dataset_id)
    return row.status, row.error or "", recorded is not None


async def test_an_upload_abandoned_past_its_ttl_is_failed_by_the_sweep_and_its_file_deleted(
    runtime: Runtime, store: LocalFileStore
) -> None:
    content = catalog_bytes(count=50)
    abandoned, _ = await create(runtime, store)  # uploaded, never completed
    object_key = await upload_local(runtime, store, abandoned, content)
    never_uploaded, _ = await create(runtime, store)
    fresh, _ = await create(runtime, store)  # uploaded just now: within its TTL
    await upload_local(runtime, store, fresh, content)
    completed, _ = await create(runtime, store)  # old, but completed: not an abandoned upload
    await upload_local(runtime, store, completed, content)
    assert await complete(runtime, store, completed, content) == "indexing"
    for dataset_id in (abandoned, never_uploaded, completed):
        await created_days_ago(runtime, dataset_id, 2)
    assert store.path_of(object_key).exists()

    # The catalog's background sweep (as bootstrap runs it), until it has expired both.
    stop = asyncio.Event()
    sweep = asyncio.create_task(
        retention.run_retention(
            uow_factory=runtime.uow,
            engine=runtime.engine,
            store=store,
            keep=1_000,
            stop=stop,
            interval=0.05,
            upload_ttl_seconds=DAY,
        )
    )
    try:
        for _ in range(400):
            if (await dataset_row(runtime, abandoned))[0] != "uploading" and (
                await dataset_row(runtime, never_uploaded)
            )[0] != "uploading":
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(sweep, timeout=10)

    status, error, recorded = await dataset_row(runtime, abandoned)
    assert (status, recorded) == ("failed", False)
    assert "upload expired" in error and "24 hours" in error
    assert not store.path_of(object_key).exists()
    assert not store.path_of(dataset_prefix(abandoned)).exists()
    assert (await dataset_row(runtime, never_uploaded))[:2] == ("failed", error)
    assert (await dataset_row(runtime, fresh))[0] == "uploading"
    assert (await dataset_row(runtime, completed))[0] == "indexing"

    # An expired dataset takes no more files and cannot be completed; sweeping again changes nothing.
    with pytest.raises(Conflict, match="only be uploaded while it is uploading"):
        await upload_local(runtime, store, abandoned, content)
    with pytest.raises(Conflict, match="no file has been uploaded"):
        await complete(runtime, store, abandoned, content)
    assert await uploads.expire_uploads(uow_factory=runtime.uow, store=store, ttl_seconds=DAY) == []
    assert (await dataset_row(runtime, fresh))[0] == "uploading"


async def test_a_presigned_upload_abandoned_past_its_ttl_loses_its_object(
    runtime: Runtime, s3_store: S3FileStore
) -> None:
    content = catalog_bytes(count=20)
    dataset_id, target = await create(runtime, s3_store)
    put(target, content)
    async with runtime.uow() as uow:
        object_key = (await repo.get_file(uow.session, dataset_id)).object_key  # type: ignore[union-attr]
    assert await s3_store.stat(object_key) is not None

    assert await uploads.expire_uploads(uow_factory=runtime.uow, store=s3_store, ttl_seconds=DAY) == []
    await created_days_ago(runtime, dataset_id, 1.5)
    assert await uploads.expire_uploads(uow_factory=runtime.uow, store=s3_store, ttl_seconds=DAY) == [
        dataset_id
    ]

    assert (await dataset_row(runtime, dataset_id))[:1] == ("failed",)
    assert await s3_store.stat(object_key) is None
    with pytest.raises(Conflict):
        await complete(runtime, s3_store, dataset_id, content)


async def test_indexing_cut_short_by_a_killed_process_leaves_the_live_version_and_is_resumed(
    runtime: Runtime, store: LocalFileStore, tmp_path: Path
) -> None:
    async with runtime.uow() as uow:
        live = await imports.import_catalog(uow=uow, store=store, content=catalog_bytes(count=30))
    content = catalog_bytes(count=60_000)
    dataset_id, _ = await create(runtime, store)
    await upload_local(runtime, store, dataset_id, content)
    assert await complete(runtime, store, dataset_id, content) == "indexing"

    script = tmp_path / "indexer.py"
    script.write_text(INDEXER)
    with (tmp_path / "indexer.log").open("wb") as log:
        child = await asyncio.create_subprocess_exec(
            sys.executable, str(script), str(store.root), str(dataset_id), stdout=log, stderr=log
        )
        try:
            # Killed once it has published progress: its load is under way in an open transaction.
            for _ in range(1_200):
                async with runtime.uow() as uow:
                    row = await repo.get_dataset(uow.session, dataset_id)
                assert row is not None and row.status == "indexing", row
                if row.progress_done > 0:
                    break
                assert child.returncode is None, (tmp_path / "indexer.log").read_text()
                await asyncio.sleep(0.025)
            else:
                raise AssertionError("the indexing process published no progress")
            child.send_signal(signal.SIGKILL)
            await asyncio.wait_for(child.wait(), timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
    assert child.returncode == -signal.SIGKILL

    # Nothing of the half-done load is visible; the live version is the one that was live.
    status, error, _ = await dataset_row(runtime, dataset_id)
    assert (status, error) == ("indexing", "")
    assert await index_attempts(runtime, dataset_id) == 1  # the dead run was counted before it began
    async with runtime.uow() as uow:
        source = await datasets.catalog_source(uow=uow)
        partition = await uow.session.execute(
            text("SELECT to_regclass(:name)"), {"name": f"{SCHEMA}.{partition_name(dataset_id)}"}
        )
        partition_exists = partition.scalar() is not None
    assert source is not None and source.id == live.dataset_id
    assert not partition_exists

    # The next catalog process to start picks it up again (once the dead one's lock is gone).
    for _ in range(400):
        await uploads.index_pending(uow_factory=runtime.uow, store=store)
        if (await dataset_row(runtime, dataset_id))[0] != "indexing":
            break
        await asyncio.sleep(0.05)
    async with runtime.uow() as uow:
        ready = await datasets.get_dataset(uow=uow, dataset_id=str(dataset_id))
        source = await datasets.catalog_source(uow=uow)
    assert (ready.status, ready.item_count, ready.error) == ("ready", 60_000, None)
    assert source is not None and source.id == live.dataset_id  # ready, not live until activated
    assert await index_attempts(runtime, dataset_id) == 2


async def test_a_dataset_whose_indexing_never_finishes_is_failed_after_the_attempt_limit(
    runtime: Runtime, store: LocalFileStore
) -> None:
    async with runtime.uow() as uow:
        live = await imports.import_catalog(uow=uow, store=store, content=catalog_bytes(count=20))
    content = catalog_bytes(count=40)
    dataset_id, _ = await create(runtime, store)
    await upload_local(runtime, store, dataset_id, content)
    assert await complete(runtime, store, dataset_id, content) == "indexing"
    # three runs started and died part-way (as the killed process above counts one)
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text(f"UPDATE {SCHEMA}.datasets SET index_attempts = 3 WHERE id = :id"),  # noqa: S608 - constant
            {"id": dataset_id},
        )

    assert await uploads.index_pending(uow_factory=runtime.uow, store=store, max_attempts=3) == 1
    status, error, _ = await dataset_row(runtime, dataset_id)
    assert status == "failed"
    assert "interrupted 3 times" in error and "complete it again" in error
    async with runtime.uow() as uow:
        source = await datasets.catalog_source(uow=uow)
    assert source is not None and source.id == live.dataset_id
    assert await uploads.index_pending(uow_factory=runtime.uow, store=store, max_attempts=3) == 0

    # completing it again starts the count afresh, and a run that finishes makes it ready
    assert await complete(runtime, store, dataset_id, content) == "indexing"
    assert await index_attempts(runtime, dataset_id) == 0
    assert await uploads.index_pending(uow_factory=runtime.uow, store=store, max_attempts=3) == 1
    status, error, _ = await dataset_row(runtime, dataset_id)
    assert (status, error) == ("ready", "")
    assert await index_attempts(runtime, dataset_id) == 1


async def index_attempts(runtime: Runtime, dataset_id: uuid.UUID) -> int:
    async with runtime.engine.connect() as conn:
        value = await conn.scalar(
            text(f"SELECT index_attempts FROM {SCHEMA}.datasets WHERE id = :id"),  # noqa: S608 - constant
            {"id": dataset_id},
        )
    return int(value)
