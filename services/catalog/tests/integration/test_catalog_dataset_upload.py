"""Large datasets through the real gRPC server: create, stream the file, complete, index in the background."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import grpc
import orjson
import pytest

from yummi.catalog.v1 import catalog_pb2 as pb
from yummi.catalog.v1.catalog_pb2_grpc import CatalogServiceStub
from yummi_catalog.adapters.file_store import LocalFileStore

from .catalog_factories import catalog_bytes, catalog_items

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def expect_error(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def chunks_of(
    dataset_id: str, content: bytes, size: int = 4096
) -> AsyncIterator[pb.UploadDatasetFileChunk]:
    for start in range(0, max(len(content), 1), size):
        yield pb.UploadDatasetFileChunk(
            dataset_id=dataset_id if start == 0 else "", data=content[start : start + size]
        )


async def wait_until_settled(stub: CatalogServiceStub, dataset_id: str) -> pb.Dataset:
    for _ in range(200):
        dataset: pb.Dataset = await stub.GetDataset(pb.DatasetRef(id=dataset_id))
        if dataset.status not in ("uploading", "indexing"):
            return dataset
        await asyncio.sleep(0.05)
    raise AssertionError("indexing did not finish")


async def upload(stub: CatalogServiceStub, content: bytes, **create: str) -> pb.Dataset:
    created: pb.Dataset = await stub.CreateDataset(
        pb.CreateDatasetRequest(upload_base_url="https://api.example.test/", **create)
    )
    uploaded = await stub.UploadDatasetFile(chunks_of(created.id, content))
    assert uploaded.size_bytes == len(content)
    assert uploaded.checksum_sha256 == hashlib.sha256(content).hexdigest()
    return created


async def test_an_uploaded_dataset_is_indexed_in_the_background_then_activated(
    stub: CatalogServiceStub,
) -> None:
    content = catalog_bytes(count=12_000)
    created = await upload(
        stub, content, name="weekly scrape", version="2025-04-01", notes="big one", created_by="admin-7"
    )
    assert (created.status, created.version, created.name, created.notes) == (
        "uploading",
        "2025-04-01",
        "weekly scrape",
        "big one",
    )
    assert created.upload.method == "PUT"
    assert created.upload.url == f"https://api.example.test/v1/admin/datasets/{created.id}/file"

    completing = await stub.CompleteDataset(
        pb.CompleteDatasetRequest(id=created.id, checksum_sha256=hashlib.sha256(content).hexdigest())
    )
    assert completing.status == "indexing"
    ready = await wait_until_settled(stub, created.id)
    assert ready.status == "ready", ready.error
    assert ready.item_count == 12_000 and ready.progress.done == ready.progress.total == 12_000
    assert ready.size_bytes == len(content) and ready.checksum_sha256 == hashlib.sha256(content).hexdigest()

    live_before = await stub.GetCatalogSource(pb.GetCatalogSourceRequest())
    assert live_before.dataset_id != created.id  # ready, not live until activated
    page = await stub.ListProducts(pb.ListProductsRequest(limit=5, dataset_version="2025-04-01"))
    assert len(page.items) == 5 and page.dataset_version == "2025-04-01"

    activated = await stub.ActivateDataset(pb.DatasetRef(id=created.id))
    assert activated.status == "active"
    source = await stub.GetCatalogSource(pb.GetCatalogSourceRequest())
    assert (source.dataset_version, source.item_count) == ("2025-04-01", 12_000)


async def test_a_version_name_can_only_be_used_once(stub: CatalogServiceStub) -> None:
    await stub.CreateDataset(pb.CreateDatasetRequest(version="only-once"))
    await expect_error(
        stub.CreateDataset(pb.CreateDatasetRequest(version="only-once")), grpc.StatusCode.ALREADY_EXISTS
    )
    await expect_error(
        stub.CreateDataset(pb.CreateDatasetRequest(version="has space")), grpc.StatusCode.INVALID_ARGUMENT
    )
    await expect_error(
        stub.CreateDataset(
            pb.CreateDatasetRequest(version="bad-base", upload_base_url="javascript:alert(1)")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    listed = await stub.ListDatasets(pb.ListDatasetsRequest(limit=500))
    assert "bad-base" not in {d.version for d in listed.items}  # refused before anything was created
    generated = await stub.CreateDataset(pb.CreateDatasetRequest())
    assert generated.version.startswith("v") and generated.name == "dataset"


async def test_completing_checks_the_file_and_the_state(stub: CatalogServiceStub) -> None:
    content = catalog_bytes()
    created = await stub.CreateDataset(pb.CreateDatasetRequest())
    await expect_error(
        stub.CompleteDataset(pb.CompleteDatasetRequest(id=created.id, checksum_sha256="0" * 64)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await stub.UploadDatasetFile(chunks_of(created.id, content))
    for wrong in ("0" * 64, "not-hex", ""):
        await expect_error(
            stub.CompleteDataset(pb.CompleteDatasetRequest(id=created.id, checksum_sha256=wrong)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    await expect_error(
        stub.ActivateDataset(pb.DatasetRef(id=created.id)), grpc.StatusCode.FAILED_PRECONDITION
    )
    checksum = hashlib.sha256(content).hexdigest().upper()
    await stub.CompleteDataset(pb.CompleteDatasetRequest(id=created.id, checksum_sha256=checksum))
    await expect_error(
        stub.UploadDatasetFile(chunks_of(created.id, content)), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert (await wait_until_settled(stub, created.id)).status == "ready"
    await expect_error(
        stub.CompleteDataset(pb.CompleteDatasetRequest(id=created.id, checksum_sha256=checksum)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_a_file_with_a_bad_item_fails_with_the_reason_and_cannot_go_live(
    stub: CatalogServiceStub,
) -> None:
    items = catalog_items()
    items[5]["price"] = "free"
    content = orjson.dumps(items)
    created = await upload(stub, content)
    await stub.CompleteDataset(
        pb.CompleteDatasetRequest(id=created.id, checksum_sha256=hashlib.sha256(content).hexdigest())
    )
    failed = await wait_until_settled(stub, created.id)
    assert failed.status == "failed"
    assert "index 5" in failed.error and "price" in failed.error
    await expect_error(
        stub.ActivateDataset(pb.DatasetRef(id=created.id)), grpc.StatusCode.FAILED_PRECONDITION
    )

    fixed = catalog_bytes()
    await expect_error(
        stub.UploadDatasetFile(chunks_of(created.id, fixed)), grpc.StatusCode.FAILED_PRECONDITION
    )


async def test_an_upload_must_name_an_uploading_dataset(stub: CatalogServiceStub) -> None:
    async def unnamed() -> AsyncIterator[pb.UploadDatasetFileChunk]:
        yield pb.UploadDatasetFileChunk(data=b"[]")

    await expect_error(stub.UploadDatasetFile(unnamed()), grpc.StatusCode.INVALID_ARGUMENT)
    await expect_error(stub.UploadDatasetFile(chunks_of("not-a-uuid", b"[]")), grpc.StatusCode.NOT_FOUND)


async def test_the_store_refuses_a_stream_past_its_limit_and_keeps_nothing(store: LocalFileStore) -> None:
    async def stream() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 1000

    with pytest.raises(ValueError, match="larger than"):
        await store.put_stream("datasets/limit-test/file.json", stream(), max_bytes=2500)
    assert not list((store.root / "datasets" / "limit-test").iterdir())
    with pytest.raises(ValueError, match="escapes"):
        await store.put_bytes("../outside.json", b"{}")
