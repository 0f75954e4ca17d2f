"""Large datasets: create a version, get its file into the store, verify it, then index it in the background.

The file reaches the store one of two ways: straight to object storage with the presigned PUT that
CreateDataset hands out (verified at CompleteDataset by streaming the object to hash it), or through the
gateway's upload route, which streams it here over UploadDatasetFile (hashed on the way in).

The indexer is a loop in every catalog process: it picks up datasets in `indexing` (also ones a stopped
process left half-done, whose transaction rolled back), holds a per-dataset advisory lock so two processes
never index the same one, and streams the file: items are parsed and validated in a worker thread, a batch at
a time, while the previous batch is COPYed into the version's new partition, so memory holds a batch or two,
never the file. Progress is published as it goes (`total` is an estimate from the bytes read until the end).
The dataset ends `ready` (an admin activates it) or `failed` with the reason. The whole load is one
transaction: a process that dies mid-way leaves nothing behind (the live version untouched) and the dataset
`indexing`, so the next indexer loop of any catalog process starts it again. Each start is counted (committed
before the load begins): after `CATALOG_INDEX_MAX_ATTEMPTS` starts that never finished, the dataset is
`failed` instead, so a file that stops the process every time cannot crash-loop every catalog replica.
Completing it again resets the count.

A dataset nobody completes (no upload, or no CompleteDataset) is failed by `expire_uploads`, which the
retention sweep runs, `DATASET_UPLOAD_TTL_SECONDS` after it was created; its stored file is deleted.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from yummi.catalog.v1 import catalog_pb2
from yummi_catalog.adapters import datasets as repo
from yummi_catalog.adapters.file_store import (
    DatasetStore,
    ObjectChanged,
    StoredFile,
    UploadTarget,
    upload_object_key,
)
from yummi_catalog.adapters.products import attach_partition, copy_products, create_partition
from yummi_catalog.adapters.tables import AnyRow
from yummi_catalog.adapters.tables import datasets as datasets_table
from yummi_catalog.domain.catalog_file import CatalogFileError, CatalogItem, CatalogStream
from yummi_catalog.domain.datasets import (
    MAX_CREATED_BY,
    MAX_NAME,
    MAX_NOTES,
    DatasetStatus,
    check_text,
    check_version,
)
from yummi_common.db import UnitOfWork
from yummi_common.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from yummi_common.logging import get_logger
from yummi_common.timeutil import utcnow

log = get_logger(__name__)

MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # the default of DATASET_UPLOAD_MAX_BYTES
INDEX_BATCH = 5_000
PROGRESS_SECONDS = 0.5  # how often indexing progress is written
MAX_BASE_URL = 500
DEFAULT_NAME = "dataset"
_HEX64 = re.compile(r"[0-9a-f]{64}")

UnitOfWorkFactory = Callable[[], UnitOfWork]


def gateway_upload_target(*, dataset_id: uuid.UUID, upload_base_url: str) -> UploadTarget:
    """Where the client PUTs the file when the store is local: the gateway's own upload route."""
    base = _base_url(upload_base_url)
    return UploadTarget(
        method="PUT",
        url=f"{base}/v1/admin/datasets/{dataset_id}/file",
        headers={"Content-Type": "application/json"},
    )


async def create_dataset(
    *,
    uow: UnitOfWork,
    store: DatasetStore,
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
    object_key = upload_object_key(row.id)
    target = store.presigned_upload(object_key)
    if target is None:
        target = gateway_upload_target(dataset_id=row.id, upload_base_url=upload_base_url)
    else:  # the client writes straight to this key; CompleteDataset verifies what landed there
        await repo.record_file(
            uow.session,
            dataset_id=row.id,
            object_key=object_key,
            checksum=None,
            size_bytes=0,
            uploaded_at=None,
        )
    await uow.commit()
    return row, target


async def upload_dataset_file(
    *,
    uow_factory: UnitOfWorkFactory,
    store: DatasetStore,
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

    object_key = upload_object_key(dataset_id)
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
            etag=stored.etag,
        )
        await repo.update_dataset(uow.session, dataset_id, size_bytes=stored.size_bytes)
        await uow.commit()
    if previous is not None and previous.object_key != stored.object_key:
        await store.delete(previous.object_key)
    return stored


async def complete_dataset(
    *, uow: UnitOfWork, store: DatasetStore, dataset_id: str, checksum: str, max_bytes: int = MAX_UPLOAD_BYTES
) -> AnyRow:
    """Check the uploaded file against the client's checksum (and size limit) and queue it for indexing."""
    parsed_id = _dataset_id(dataset_id)
    checksum = checksum.strip().lower()
    if not _HEX64.fullmatch(checksum):
        raise InvalidArgument(
            "checksum_sha256 must be 64 hex characters",
            errors=[{"field": "checksum_sha256", "message": "64 hex characters"}],
        )
    row = _require_completable(await repo.get_dataset(uow.session, parsed_id), checksum)
    if row.status == DatasetStatus.INDEXING:
        return row  # completing twice is harmless
    file_row = await repo.get_file(uow.session, parsed_id)
    if file_row is None:
        raise Conflict("no file has been uploaded for this dataset")
    if file_row.checksum_sha256 is None:
        # Uploaded straight to object storage: read it back once. No transaction stays open meanwhile.
        await uow.rollback()
        stored = await _verify_direct_upload(
            store, file_row.object_key, checksum=checksum, max_bytes=max_bytes
        )
    elif file_row.checksum_sha256 != checksum:
        raise _checksum_mismatch()
    else:
        stored = StoredFile(file_row.object_key, file_row.size_bytes, file_row.checksum_sha256, file_row.etag)

    row = _require_completable(await repo.get_dataset(uow.session, parsed_id, for_update=True), checksum)
    if row.status == DatasetStatus.INDEXING:
        return row
    current = await repo.get_file(uow.session, parsed_id)
    if current is None or current.object_key != stored.object_key:
        raise Conflict("the dataset's file changed meanwhile; complete it again")
    if current.checksum_sha256 is None:
        await repo.record_file(
            uow.session,
            dataset_id=parsed_id,
            object_key=stored.object_key,
            checksum=stored.checksum_sha256,
            size_bytes=stored.size_bytes,
            uploaded_at=utcnow(),
            etag=stored.etag,
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
        index_attempts=0,
    )
    await uow.commit()
    return row


async def _verify_direct_upload(
    store: DatasetStore, object_key: str, *, checksum: str, max_bytes: int
) -> StoredFile:
    """The object's size and SHA-256, refused when too large or not what the client says it sent."""
    info = await store.stat(object_key)
    if info is None:
        raise Conflict("no file has been uploaded for this dataset")
    if info.size_bytes > max_bytes:
        raise InvalidArgument(
            f"the uploaded file is larger than {max_bytes} bytes",
            errors=[{"field": "file", "message": f"at most {max_bytes} bytes"}],
        )
    try:
        verified = await store.hash_object(object_key, etag=info.etag)
    except (FileNotFoundError, ObjectChanged):
        raise Conflict("the uploaded file changed while it was being checked; complete it again") from None
    if verified.checksum_sha256 != checksum:
        raise _checksum_mismatch()
    return verified


async def expire_uploads(
    *, uow_factory: UnitOfWorkFactory, store: DatasetStore, ttl_seconds: float, now: datetime | None = None
) -> list[uuid.UUID]:
    """Fail the datasets still `uploading` `ttl_seconds` after they were created and delete their files.

    The row changes first (under its lock, re-checked: a CompleteDataset may have won meanwhile), so neither
    an upload nor a completion can go on with it; then the objects go. A crash in between leaves an object
    whose failed dataset retention deletes with its files later. Returns the ids expired.
    """
    cutoff = (now or utcnow()) - timedelta(seconds=ttl_seconds)
    async with uow_factory() as uow:
        stale = await repo.uploads_created_before(uow.session, cutoff)
    expired: list[uuid.UUID] = []
    for dataset_id in stale:
        async with uow_factory() as uow:
            row = await repo.get_dataset(uow.session, dataset_id, for_update=True)
            if row is None or row.status != DatasetStatus.UPLOADING or row.created_at >= cutoff:
                continue
            await repo.delete_file(uow.session, dataset_id)
            await repo.update_dataset(
                uow.session, dataset_id, status=DatasetStatus.FAILED, error=_expired_reason(ttl_seconds)
            )
            await uow.commit()
        await store.delete_dataset(dataset_id)
        expired.append(dataset_id)
        log.info("dataset upload expired", dataset_id=str(dataset_id))
    return expired


def _expired_reason(ttl_seconds: float) -> str:
    hours = ttl_seconds / 3600
    within = f"{hours:g} hours" if hours >= 1 else f"{ttl_seconds:g} seconds"
    return (
        f"the upload expired: the dataset was not completed within {within} of being created, "
        "and its file was deleted; create a new dataset"
    )


async def index_dataset(
    *,
    uow_factory: UnitOfWorkFactory,
    store: DatasetStore,
    dataset_id: uuid.UUID,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_attempts: int = 3,
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
        started = await _count_attempt(uow_factory, dataset_id)
        if started > max_attempts:
            interrupted = started - 1
            await _fail(
                uow_factory,
                dataset_id,
                f"indexing was interrupted {interrupted} times (the catalog process stopped part-way each "
                "time); complete it again to retry",
            )
            return "failed"
        stored = await repo.get_file(session, dataset_id)
        try:
            if stored is None or stored.checksum_sha256 is None:
                raise CatalogFileError("the dataset has no verified file")
            reader = await asyncio.to_thread(store.open, stored.object_key, etag=stored.etag)
        except (CatalogFileError, FileNotFoundError, ObjectChanged) as exc:
            await _fail(uow_factory, dataset_id, _file_fault(exc))
            return "failed"
        try:
            catalog = CatalogStream(reader, max_bytes=max_bytes)
            try:
                total = await _load_products(uow_factory, session, row, catalog.batches(INDEX_BATCH), catalog)
            except (CatalogFileError, OSError, ObjectChanged) as exc:
                await _fail(uow_factory, dataset_id, _file_fault(exc))
                return "failed"
        finally:
            await asyncio.to_thread(reader.close)
        problems = catalog.checker.problems
        if problems:
            first = problems[0]
            reason = (
                f"{len(problems)} of {catalog.checker.total} items are invalid; "
                f"first: index {first.index}: {first.reason}"
            )
            await _fail(uow_factory, dataset_id, reason)
            return "failed"
        if catalog.checksum_sha256 != row.checksum_sha256:
            await _fail(uow_factory, dataset_id, "the stored file does not match the dataset's checksum")
            return "failed"
        await attach_partition(session, dataset_id=dataset_id)
        await repo.update_dataset(
            session,
            dataset_id,
            status=DatasetStatus.READY,
            item_count=total,
            progress_done=total,
            progress_total=total,
        )
        await uow.commit()
    log.info("dataset indexed", dataset_id=str(dataset_id), items=total)
    return "ready"


async def _load_products(
    uow_factory: UnitOfWorkFactory,
    session: AsyncSession,
    row: AnyRow,
    batches: Iterator[list[CatalogItem]],
    catalog: CatalogStream,
) -> int:
    """COPY each batch into the new partition while the worker thread parses the next one; the count.

    Progress goes out on its own connection beside the load (never more than one write at a time), so a
    slow commit of it never holds up the next COPY.
    """
    await create_partition(session, dataset_id=row.id)
    done = 0
    published = time.monotonic()
    publishing: asyncio.Task[None] | None = None
    upcoming = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
    try:
        while (batch := await upcoming) is not None:
            upcoming = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
            await copy_products(session, dataset_id=row.id, items=batch)
            done += len(batch)
            if time.monotonic() - published >= PROGRESS_SECONDS and (publishing is None or publishing.done()):
                estimate = done * row.size_bytes // max(catalog.size_bytes, 1)
                publishing = asyncio.create_task(
                    _progress(uow_factory, row.id, done, max(done, estimate), best_effort=True)
                )
                published = time.monotonic()
    finally:
        if not upcoming.done():  # the thread cannot be interrupted: let it finish its batch
            await asyncio.wait([upcoming])
        if publishing is not None:
            await asyncio.wait([publishing])
    await _progress(uow_factory, row.id, done, done)
    return done


async def index_pending(
    *,
    uow_factory: UnitOfWorkFactory,
    store: DatasetStore,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_attempts: int = 3,
) -> int:
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
            outcome = await index_dataset(
                uow_factory=uow_factory,
                store=store,
                dataset_id=dataset_id,
                max_bytes=max_bytes,
                max_attempts=max_attempts,
            )
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
    *,
    uow_factory: UnitOfWorkFactory,
    store: DatasetStore,
    stop: asyncio.Event,
    poll_interval: float = 0.5,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_attempts: int = 3,
) -> None:
    """Index datasets as they are completed, until `stop` is set."""
    while not stop.is_set():
        try:
            await index_pending(
                uow_factory=uow_factory, store=store, max_bytes=max_bytes, max_attempts=max_attempts
            )
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


def _require_completable(row: AnyRow | None, checksum: str) -> AnyRow:
    """An uploading or failed dataset, or one already indexing this very checksum."""
    if row is None:
        raise NotFound("dataset not found")
    if row.status == DatasetStatus.INDEXING and row.checksum_sha256 == checksum:
        return row
    if row.status not in (DatasetStatus.UPLOADING, DatasetStatus.FAILED):
        raise Conflict(f"dataset is {row.status}; only an uploading (or failed) dataset can be completed")
    return row


def _checksum_mismatch() -> InvalidArgument:
    return InvalidArgument(
        "checksum_sha256 does not match the uploaded file",
        errors=[{"field": "checksum_sha256", "message": "does not match the uploaded file"}],
    )


def _file_fault(exc: BaseException) -> str:
    if isinstance(exc, CatalogFileError):
        return exc.reason
    if isinstance(exc, ObjectChanged):
        return "the uploaded file was replaced after it was completed; upload it as a new dataset"
    if isinstance(exc, FileNotFoundError):
        return "the uploaded file is missing from the store"
    return "the uploaded file cannot be read"


async def _progress(
    uow_factory: UnitOfWorkFactory, dataset_id: uuid.UUID, done: int, total: int, *, best_effort: bool = False
) -> None:
    """Publish progress in its own short transaction, so GetDataset sees it while indexing runs (best effort:
    a failed write is logged, and the next one says more)."""
    try:
        async with uow_factory() as uow:
            await repo.update_dataset(uow.session, dataset_id, progress_done=done, progress_total=total)
            await uow.commit()
    except Exception as exc:
        if not best_effort:
            raise
        log.warning("indexing progress not written", dataset_id=str(dataset_id), error=str(exc))


async def _count_attempt(uow_factory: UnitOfWorkFactory, dataset_id: uuid.UUID) -> int:
    """Record that an indexing run starts (committed at once, so a run that dies still counts); its number."""
    async with uow_factory() as uow:
        row = await repo.update_dataset(
            uow.session, dataset_id, index_attempts=datasets_table.c.index_attempts + 1
        )
        await uow.commit()
    return int(row.index_attempts)


async def _fail(uow_factory: UnitOfWorkFactory, dataset_id: uuid.UUID, reason: str) -> None:
    async with uow_factory() as uow:
        row = await repo.get_dataset(uow.session, dataset_id, for_update=True)
        if row is not None and row.status == DatasetStatus.INDEXING:
            await repo.update_dataset(
                uow.session, dataset_id, status=DatasetStatus.FAILED, error=reason[:2000]
            )
            await uow.commit()
    log.warning("dataset indexing failed", dataset_id=str(dataset_id), reason=reason)
