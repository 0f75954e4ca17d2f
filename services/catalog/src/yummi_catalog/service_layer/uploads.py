"""Large datasets: create a version, stream its file into the store, then index it in the background.

The indexer is a loop in every catalog process: it picks up datasets in `indexing` (also ones a stopped
process left half-done, whose transaction rolled back), holds a per-dataset advisory lock so two processes
never index the same one, loads the products in batches while publishing progress, and leaves the dataset
`ready` (an admin activates it) or `failed` with the reason. The file is read into memory to be parsed, so
files far beyond a few hundred MB need a streaming parser first.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from sqlalchemy import select, text

from yummi.catalog.v1 import catalog_pb2
from yummi_catalog.adapters import datasets as repo
from yummi_catalog.adapters.file_store import LocalFileStore, StoredFile
from yummi_catalog.adapters.products import copy_products
from yummi_catalog.adapters.tables import AnyRow
from yummi_catalog.adapters.tables import datasets as datasets_table
from yummi_catalog.domain.catalog_file import CatalogFileError, checksum_sha256, parse_catalog
from yummi_catalog.domain.datasets import (
    MAX_CREATED_BY,
    MAX_NAME,
    MAX_NOTES,
    DatasetStatus,
    check_text,
    check_version,
)
from yummi_catalog.service_layer.imports import refresh_statistics
from yummi_common.db import UnitOfWork
from yummi_common.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from yummi_common.logging import get_logger
from yummi_common.timeutil import utcnow

log = get_logger(__name__)

MAX_UPLOAD_BYTES = 512 * 1024 * 1024
INDEX_BATCH = 5_000
MAX_BASE_URL = 500
DEFAULT_NAME = "dataset"
_HEX64 = re.compile(r"[0-9a-f]{64}")

UnitOfWorkFactory = Callable[[], UnitOfWork]


@dataclass(frozen=True)
class UploadTarget:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


def upload_target(*, dataset_id: uuid.UUID, upload_base_url: str) -> UploadTarget:
    """Where the client PUTs the file: the gateway's own upload route for the local store."""
    base = _base_url(upload_base_url)
    return UploadTarget(
        method="PUT",
        url=f"{base}/v1/admin/datasets/{dataset_id}/file",
        headers={"Content-Type": "application/json"},
    )


async def create_dataset(
    *,
    uow: UnitOfWork,
    name: str = "",
    version: str = "",
    notes: str = "",
    created_by: str = "",
    upload_base_url: str = "",
) -> tuple[AnyRow, UploadTarget]:
    """A new dataset version waiting for its file (`uploading`), and where to upload that file."""
    _base_url(upload_base_url)
    name = check_text(name, field="name", limit=MAX_NAME) or DEFAULT_NAME
    notes = check_text(notes, field="notes", limit=MAX_NOTES)
    created_by = check_text(created_by, field="created_by", limit=MAX_CREATED_BY)
    await repo.lock_activation(uow.session)
    if version.strip():
        version = check_version(version)
        if await repo.version_exists(uow.session, version):
            raise AlreadyExists(f"dataset version {version!r} already exists")
    else:
        version = await repo.next_generated_version(uow.session)
    row = await repo.insert_dataset(
        uow.session,
        id=uuid.uuid4(),
        name=name,
        version=version,
        status=DatasetStatus.UPLOADING,
        source="upload",
        notes=notes,
        created_by=created_by,
    )
    await uow.commit()
    return row, upload_target(dataset_id=row.id, upload_base_url=upload_base_url)


async def upload_dataset_file(
    *,
    uow_factory: UnitOfWorkFactory,
    store: LocalFileStore,
    chunks: AsyncIterator[catalog_pb2.UploadDatasetFileChunk],
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> StoredFile:
    """Stream a dataset's file into the store (the first chunk names the dataset); it replaces the last."""
    iterator = chunks.__aiter__()
    first = await anext(iterator, None)
    if first is None or not first.dataset_id:
        raise InvalidArgument(
            "the first chunk must name the dataset", errors=[{"field": "dataset_id", "message": "required"}]
        )
    dataset_id = _dataset_id(first.dataset_id)
    async with uow_factory() as uow:
        _require_uploading(await repo.get_dataset(uow.session, dataset_id))

    async def data() -> AsyncIterator[bytes]:
        yield first.data
        async for chunk in iterator:
            if chunk.dataset_id and chunk.dataset_id != first.dataset_id:
                raise InvalidArgument("all chunks must belong to the same dataset")
            yield chunk.data

    # Each attempt has its own key, so a second upload never rewrites a file that is being indexed.
    object_key = f"datasets/{dataset_id}/upload-{uuid.uuid4().hex}.json"
    try:
        stored = await store.put_stream(object_key, data(), max_bytes=max_bytes)
    except ValueError as exc:
        raise InvalidArgument(
            str(exc), errors=[{"field": "file", "message": f"at most {max_bytes} bytes"}]
        ) from None

    async with uow_factory() as uow:
        try:
            _require_uploading(await repo.get_dataset(uow.session, dataset_id, for_update=True))
        except (Conflict, NotFound):
            await store.delete(object_key)
            raise
        previous = await repo.get_file(uow.session, dataset_id)
        await repo.record_file(
            uow.session,
            dataset_id=dataset_id,
            object_key=stored.object_key,
            checksum=stored.checksum_sha256,
            size_bytes=stored.size_bytes,
            uploaded_at=utcnow(),
        )
        await repo.update_dataset(uow.session, dataset_id, size_bytes=stored.size_bytes)
        await uow.commit()
    if previous is not None and previous.object_key != stored.object_key:
        await store.delete(previous.object_key)
    return stored


async def complete_dataset(*, uow: UnitOfWork, dataset_id: str, checksum: str) -> AnyRow:
    """Check the uploaded file against the client's checksum and queue the dataset for indexing."""
    parsed_id = _dataset_id(dataset_id)
    checksum = checksum.strip().lower()
    if not _HEX64.fullmatch(checksum):
        raise InvalidArgument(
            "checksum_sha256 must be 64 hex characters",
            errors=[{"field": "checksum_sha256", "message": "64 hex characters"}],
        )
    row = await repo.get_dataset(uow.session, parsed_id, for_update=True)
    if row is None:
        raise NotFound("dataset not found")
    if row.status == DatasetStatus.INDEXING and row.checksum_sha256 == checksum:
        return row  # completing twice is harmless
    if row.status not in (DatasetStatus.UPLOADING, DatasetStatus.FAILED):
        raise Conflict(f"dataset is {row.status}; only an uploading (or failed) dataset can be completed")
    stored = await repo.get_file(uow.session, parsed_id)
    if stored is None:
        raise Conflict("no file has been uploaded for this dataset")
    if stored.checksum_sha256 != checksum:
        raise InvalidArgument(
            "checksum_sha256 does not match the uploaded file",
            errors=[{"field": "checksum_sha256", "message": "does not match the uploaded file"}],
        )
    row = await repo.update_dataset(
        uow.session,
        parsed_id,
        status=DatasetStatus.INDEXING,
        checksum_sha256=checksum,
        size_bytes=stored.size_bytes,
        error=None,
        item_count=0,
        progress_done=0,
        progress_total=0,
    )
    await uow.commit()
    return row


async def index_dataset(
    *, uow_factory: UnitOfWorkFactory, store: LocalFileStore, dataset_id: uuid.UUID
) -> str:
    """Index one `indexing` dataset unless another process holds it; return what happened."""
    async with uow_factory() as uow:
        session = uow.session
        locked = await session.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _lock_key(dataset_id)}
        )
        if not locked.scalar_one():
            return "busy"
        row = await repo.get_dataset(session, dataset_id)
        if row is None or row.status != DatasetStatus.INDEXING:
            return "skipped"
        stored = await repo.get_file(session, dataset_id)
        try:
            if stored is None:
                raise CatalogFileError("the dataset has no uploaded file")
            content = await store.read_bytes(stored.object_key)
            if checksum_sha256(content) != row.checksum_sha256:
                raise CatalogFileError("the stored file does not match the dataset's checksum")
            parsed = await asyncio.to_thread(parse_catalog, content)
        except (CatalogFileError, OSError) as exc:
            reason = exc.reason if isinstance(exc, CatalogFileError) else "the uploaded file cannot be read"
            await _fail(uow_factory, dataset_id, reason)
            return "failed"
        if parsed.problems:
            first = parsed.problems[0]
            reason = (
                f"{len(parsed.problems)} of {parsed.total} items are invalid; "
                f"first: index {first.index}: {first.reason}"
            )
            await _fail(uow_factory, dataset_id, reason)
            return "failed"
        total = len(parsed.items)
        await _progress(uow_factory, dataset_id, 0, total)
        for start in range(0, total, INDEX_BATCH):
            batch = parsed.items[start : start + INDEX_BATCH]
            await copy_products(session, dataset_id=dataset_id, items=batch)
            await _progress(uow_factory, dataset_id, start + len(batch), total)
        await repo.update_dataset(
            session,
            dataset_id,
            status=DatasetStatus.READY,
            item_count=total,
            progress_done=total,
            progress_total=total,
        )
        await uow.commit()
        await refresh_statistics(uow)
    log.info("dataset indexed", dataset_id=str(dataset_id), items=total)
    return "ready"


async def index_pending(*, uow_factory: UnitOfWorkFactory, store: LocalFileStore) -> int:
    """Index every dataset waiting in `indexing` that no other process holds; return how many were handled."""
    async with uow_factory() as uow:
        query = (
            select(datasets_table.c.id)
            .where(datasets_table.c.status == DatasetStatus.INDEXING)
            .order_by(datasets_table.c.updated_at)
        )
        pending = list((await uow.session.execute(query)).scalars())
    handled = 0
    for dataset_id in pending:
        try:
            outcome = await index_dataset(uow_factory=uow_factory, store=store, dataset_id=dataset_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("indexing failed", dataset_id=str(dataset_id))
            await _fail(
                uow_factory, dataset_id, "indexing failed with an internal error; complete it again to retry"
            )
            outcome = "failed"
        handled += outcome in ("ready", "failed")
    return handled


async def run_indexer(
    *, uow_factory: UnitOfWorkFactory, store: LocalFileStore, stop: asyncio.Event, poll_interval: float = 1.0
) -> None:
    """Index datasets as they are completed, until `stop` is set."""
    while not stop.is_set():
        try:
            await index_pending(uow_factory=uow_factory, store=store)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the database may be briefly away; try again later
            log.warning("indexer poll failed", error=str(exc))
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll_interval)
        except TimeoutError:
            pass


def _base_url(value: str) -> str:
    """The gateway's public base URL ("" gives a path relative to the gateway)."""
    base = value.strip().rstrip("/")
    if base and (
        len(base) > MAX_BASE_URL or not base.lower().startswith(("http://", "https://")) or " " in base
    ):
        raise InvalidArgument(
            "upload_base_url is not valid",
            errors=[
                {
                    "field": "upload_base_url",
                    "message": f"an http(s) URL of at most {MAX_BASE_URL} characters",
                }
            ],
        )
    return base


def _lock_key(dataset_id: uuid.UUID) -> int:
    return int.from_bytes(dataset_id.bytes[:8], "big", signed=True)


def _dataset_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise NotFound("dataset not found") from None


def _require_uploading(row: AnyRow | None) -> None:
    if row is None:
        raise NotFound("dataset not found")
    if row.status != DatasetStatus.UPLOADING:
        raise Conflict(f"dataset is {row.status}; files can only be uploaded while it is uploading")


async def _progress(uow_factory: UnitOfWorkFactory, dataset_id: uuid.UUID, done: int, total: int) -> None:
    """Publish progress in its own short transaction, so GetDataset sees it while indexing runs."""
    async with uow_factory() as uow:
        await repo.update_dataset(uow.session, dataset_id, progress_done=done, progress_total=total)
        await uow.commit()


async def _fail(uow_factory: UnitOfWorkFactory, dataset_id: uuid.UUID, reason: str) -> None:
    async with uow_factory() as uow:
        row = await repo.get_dataset(uow.session, dataset_id, for_update=True)
        if row is not None and row.status == DatasetStatus.INDEXING:
            await repo.update_dataset(
                uow.session, dataset_id, status=DatasetStatus.FAILED, error=reason[:2000]
            )
            await uow.commit()
    log.warning("dataset indexing failed", dataset_id=str(dataset_id), reason=reason)
