"""Importing a catalog.json in one go: validate, store, bulk-load and make it the live version atomically."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from yummi_catalog.adapters import datasets as repo
from yummi_catalog.adapters.file_store import DatasetStore, dataset_object_key
from yummi_catalog.adapters.products import attach_partition, copy_products, create_partition
from yummi_catalog.adapters.tables import AnyRow
from yummi_catalog.domain.catalog_file import CatalogFileError, ItemProblem, checksum_sha256, parse_catalog
from yummi_catalog.domain.datasets import (
    MAX_CREATED_BY,
    MAX_NAME,
    MAX_SOURCE,
    DatasetStatus,
    check_text,
)
from yummi_catalog.service_layer.datasets import promote_and_announce
from yummi_common.db import UnitOfWork
from yummi_common.errors import InvalidArgument
from yummi_common.logging import get_logger
from yummi_common.timeutil import utcnow

log = get_logger(__name__)

MAX_IMPORT_BYTES = (
    25 * 1024 * 1024
)  # the gateway's limit for a direct import; bigger files use the upload path
MAX_LISTED_PROBLEMS = 100
MAX_LISTED_SKIPPED = 1_000
DEFAULT_NAME = "catalog import"
DEFAULT_SOURCE = "upload"


@dataclass(frozen=True)
class ImportResult:
    dataset_id: uuid.UUID
    version: str
    item_count: int
    checksum_sha256: str
    active: bool
    already_imported: bool
    skipped: list[ItemProblem] = field(default_factory=list)


def invalid_items(problems: list[ItemProblem], total: int) -> InvalidArgument:
    """The refusal of a catalog with bad items: the first 100 listed, the count in the message."""
    listed = problems[:MAX_LISTED_PROBLEMS]
    more = f" (the first {len(listed)} are listed)" if len(problems) > len(listed) else ""
    return InvalidArgument(
        f"{len(problems)} of {total} catalog items are invalid{more}; nothing was imported",
        errors=[problem.as_error() for problem in listed],
    )


async def import_catalog(
    *,
    uow: UnitOfWork,
    store: DatasetStore,
    content: bytes,
    skip_invalid: bool = False,
    created_by: str = "",
    name: str = "",
    source: str = "",
    max_bytes: int = MAX_IMPORT_BYTES,
) -> ImportResult:
    """Import a catalog.json as a new live version; the same bytes imported before are a no-op."""
    name = check_text(name, field="name", limit=MAX_NAME) or DEFAULT_NAME
    source = check_text(source, field="source", limit=MAX_SOURCE) or DEFAULT_SOURCE
    created_by = check_text(created_by, field="created_by", limit=MAX_CREATED_BY)
    if len(content) > max_bytes:
        raise InvalidArgument(
            f"the catalog is larger than {max_bytes // (1024 * 1024)} MB; upload it as a dataset instead",
            errors=[{"field": "content", "message": f"at most {max_bytes} bytes"}],
        )
    checksum = checksum_sha256(content)
    existing = await repo.find_servable_by_checksum(uow.session, checksum)
    if existing is not None:
        return _already_imported(existing)

    try:
        # Parsing 25 MB takes a moment: keep the event loop answering other calls meanwhile.
        parsed = await asyncio.to_thread(parse_catalog, content)
    except CatalogFileError as exc:
        raise InvalidArgument(exc.reason, errors=[{"field": "content", "message": exc.reason}]) from None
    if parsed.problems and not skip_invalid:
        raise invalid_items(parsed.problems, parsed.total)
    if not parsed.items:
        raise InvalidArgument(
            f"none of the {parsed.total} catalog items is valid; nothing was imported",
            errors=[problem.as_error() for problem in parsed.problems[:MAX_LISTED_PROBLEMS]],
        )

    await repo.lock_activation(uow.session)
    existing = await repo.find_servable_by_checksum(uow.session, checksum)  # a concurrent import won the lock
    if existing is not None:
        return _already_imported(existing)

    dataset_id = uuid.uuid4()
    version = await repo.next_generated_version(uow.session)
    skipped = f"skipped {len(parsed.problems)} invalid items" if parsed.problems else ""
    await repo.insert_dataset(
        uow.session,
        id=dataset_id,
        name=name,
        version=version,
        status=DatasetStatus.INDEXING,
        source=source,
        notes=skipped,
        item_count=len(parsed.items),
        checksum_sha256=checksum,
        size_bytes=len(content),
        created_by=created_by,
        progress_done=len(parsed.items),
        progress_total=len(parsed.items),
    )
    await create_partition(uow.session, dataset_id=dataset_id)
    await copy_products(uow.session, dataset_id=dataset_id, items=parsed.items)
    await attach_partition(uow.session, dataset_id=dataset_id)
    stored = await store.put_bytes(dataset_object_key(dataset_id), content)
    await repo.record_file(
        uow.session,
        dataset_id=dataset_id,
        object_key=stored.object_key,
        checksum=checksum,
        size_bytes=stored.size_bytes,
        uploaded_at=utcnow(),
        etag=stored.etag,
    )
    await promote_and_announce(uow=uow, dataset_id=dataset_id)
    await uow.commit()
    log.info("catalog imported", dataset_id=str(dataset_id), version=version, items=len(parsed.items))
    return ImportResult(
        dataset_id=dataset_id,
        version=version,
        item_count=len(parsed.items),
        checksum_sha256=checksum,
        active=True,
        already_imported=False,
        skipped=parsed.problems[:MAX_LISTED_SKIPPED],
    )


def _already_imported(row: AnyRow) -> ImportResult:
    """The earlier import of the same bytes, as it is now (live or not: importing again changes nothing)."""
    return ImportResult(
        dataset_id=row.id,
        version=row.version,
        item_count=row.item_count,
        checksum_sha256=row.checksum_sha256,
        active=row.status == DatasetStatus.ACTIVE,
        already_imported=True,
    )
