"""Large datasets through object storage: a presigned PUT straight to S3 (moto's real HTTP server), verified
at completion by reading the object back, indexed from the object, and deleted with their version."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from sqlalchemy import text

from yummi.catalog.v1 import catalog_pb2 as pb
from yummi_catalog.adapters.s3_store import S3FileStore
from yummi_catalog.service_layer import datasets, products, retention, uploads
from yummi_catalog.service_layer.imports import import_catalog
from yummi_common.errors import Conflict, InvalidArgument
from yummi_common.service import Runtime

from .catalog_factories import catalog_bytes, catalog_items

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def create(
    runtime: Runtime, store: S3FileStore, **fields: str
) -> tuple[uuid.UUID, uploads.UploadTarget]:
    async with runtime.uow() as uow:
        row, target = await uploads.create_dataset(
            uow=uow, store=store, upload_base_url="https://api.test", **fields
        )
    return row.id, target


def put(target: uploads.UploadTarget, content: bytes) -> None:
    """What an admin's client does with the upload target: PUT the bytes with the headers it names."""
    response = httpx.request(target.method, target.url, content=content, headers=target.headers, timeout=30)
    assert response.status_code == 200, response.text


async def complete(
    runtime: Runtime, store: S3FileStore, dataset_id: uuid.UUID, content: bytes, **limits: int
) -> str:
    async with runtime.uow() as uow:
        row = await uploads.complete_dataset(
            uow=uow,
            store=store,
            dataset_id=str(dataset_id),
            checksum=hashlib.sha256(content).hexdigest(),
            **limits,
        )
    return str(row.status)


async def status_and_error(runtime: Runtime, dataset_id: uuid.UUID) -> tuple[str, str]:
    async with runtime.uow() as uow:
        row = await datasets.get_dataset(uow=uow, dataset_id=str(dataset_id))
    return row.status, row.error or ""


async def test_a_presigned_upload_is_verified_then_indexed_from_the_bucket(
    runtime: Runtime, s3_store: S3FileStore, s3_endpoint: str
) -> None:
    content = catalog_bytes(count=2_500)
    dataset_id, target = await create(runtime, s3_store, version="s3-weekly", name="weekly scrape")
    assert target.method == "PUT"
    assert target.url.startswith(f"{s3_endpoint}/{s3_store.bucket}/datasets/{dataset_id}/upload-")
    assert "X-Amz-Signature=" in target.url and "X-Amz-Expires=3600" in target.url
    assert target.headers == {"Content-Type": "application/json"}

    put(target, content)
    assert await complete(runtime, s3_store, dataset_id, content) == "indexing"
    assert (
        await complete(runtime, s3_store, dataset_id, content) == "indexing"
    )  # completing twice is harmless
    outcome = await uploads.index_dataset(uow_factory=runtime.uow, store=s3_store, dataset_id=dataset_id)
    assert outcome == "ready"

    async with runtime.uow() as uow:
        ready = await datasets.get_dataset(uow=uow, dataset_id=str(dataset_id))
    reader = products.CatalogReader(runtime.engine, refresh_seconds=1.0)
    page = await products.list_products(reader=reader, dataset_version="s3-weekly", q="banana", limit=5)
    assert (ready.status, ready.item_count, ready.size_bytes) == ("ready", 2_500, len(content))
    assert ready.checksum_sha256 == hashlib.sha256(content).hexdigest()
    assert page.rows and all("banana" in row["title"].lower() for row in page.rows)
    async with runtime.uow() as uow:
        live = await datasets.activate_dataset(uow=uow, dataset_id=str(dataset_id))
    assert live.status == "active"


async def test_completing_a_direct_upload_checks_the_object_and_the_client_checksum(
    runtime: Runtime, s3_store: S3FileStore
) -> None:
    content = catalog_bytes(count=30)
    dataset_id, target = await create(runtime, s3_store)
    with pytest.raises(Conflict, match="no file has been uploaded"):
        await complete(runtime, s3_store, dataset_id, content)
    put(target, content)
    with pytest.raises(InvalidArgument, match="does not match"):
        await complete(runtime, s3_store, dataset_id, content + b" ")
    with pytest.raises(InvalidArgument, match="larger than 100 bytes"):
        await complete(runtime, s3_store, dataset_id, content, max_bytes=100)
    assert await status_and_error(runtime, dataset_id) == ("uploading", "")
    assert await complete(runtime, s3_store, dataset_id, content) == "indexing"


async def test_an_object_replaced_after_completion_is_not_indexed(
    runtime: Runtime, s3_store: S3FileStore
) -> None:
    content = catalog_bytes(count=30)
    dataset_id, target = await create(runtime, s3_store)
    put(target, content)
    await complete(runtime, s3_store, dataset_id, content)
    put(target, catalog_bytes(count=31))  # the presigned URL still works: someone uploads again
    outcome = await uploads.index_dataset(uow_factory=runtime.uow, store=s3_store, dataset_id=dataset_id)
    assert outcome == "failed"
    status, error = await status_and_error(runtime, dataset_id)
    assert status == "failed" and "replaced" in error


async def test_a_bad_item_in_the_object_fails_the_version_with_its_index(
    runtime: Runtime, s3_store: S3FileStore
) -> None:
    items = catalog_items(count=40)
    items[33]["price"] = "free"
    content = orjson.dumps(items)
    dataset_id, target = await create(runtime, s3_store)
    put(target, content)
    await complete(runtime, s3_store, dataset_id, content)
    assert (
        await uploads.index_dataset(uow_factory=runtime.uow, store=s3_store, dataset_id=dataset_id)
        == "failed"
    )
    status, error = await status_and_error(runtime, dataset_id)
    assert status == "failed" and "index 33" in error and "price" in error
    async with runtime.engine.connect() as conn:
        leftover = await conn.execute(
            text("SELECT to_regclass(:name)"), {"name": f"catalog.products_{dataset_id.hex}"}
        )
        assert leftover.scalar() is None  # the half-loaded partition went with the rolled-back transaction


async def test_a_file_streamed_through_the_service_lands_in_the_bucket_too(
    runtime: Runtime, s3_store: S3FileStore
) -> None:
    content = catalog_bytes(count=50)
    dataset_id, _target = await create(runtime, s3_store)

    async def chunks() -> AsyncIterator[pb.UploadDatasetFileChunk]:
        for start in range(0, len(content), 1000):
            yield pb.UploadDatasetFileChunk(
                dataset_id=str(dataset_id) if start == 0 else "", data=content[start : start + 1000]
            )

    stored = await uploads.upload_dataset_file(uow_factory=runtime.uow, store=s3_store, chunks=chunks())
    assert stored.checksum_sha256 == hashlib.sha256(content).hexdigest() and stored.etag
    assert await complete(runtime, s3_store, dataset_id, content) == "indexing"
    assert (
        await uploads.index_dataset(uow_factory=runtime.uow, store=s3_store, dataset_id=dataset_id) == "ready"
    )


async def test_retention_deletes_a_pruned_versions_objects(runtime: Runtime, s3_store: S3FileStore) -> None:
    async with runtime.uow() as uow:
        first = await import_catalog(uow=uow, store=s3_store, content=catalog_bytes(count=12))
    async with runtime.uow() as uow:
        await import_catalog(uow=uow, store=s3_store, content=catalog_bytes(count=13))
    assert s3_store._client.list_objects_v2(Bucket=s3_store.bucket, Prefix=f"datasets/{first.dataset_id}/")[
        "KeyCount"
    ]

    pruned = await retention.prune_versions(
        uow_factory=runtime.uow, engine=runtime.engine, store=s3_store, keep=0
    )
    assert first.dataset_id in pruned
    listing = s3_store._client.list_objects_v2(Bucket=s3_store.bucket, Prefix=f"datasets/{first.dataset_id}/")
    assert listing["KeyCount"] == 0
