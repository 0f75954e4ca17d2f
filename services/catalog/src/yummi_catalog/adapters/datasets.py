"""Queries on dataset versions: lookup, listing, version names, activation and the activation lock."""

from __future__ import annotations

import uuid
import zlib
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from yummi_catalog.adapters.tables import SCHEMA, AnyRow, dataset_files, datasets
from yummi_catalog.domain.datasets import SERVABLE, DatasetStatus, generated_version

# One activation (or import) at a time: keeps "exactly one active version" a rule, not a race.
_ACTIVATION_LOCK = zlib.crc32(b"yummi.catalog.activation")


async def lock_activation(session: AsyncSession) -> None:
    """Hold the catalog's activation lock until this transaction ends."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ACTIVATION_LOCK})


async def get_dataset(
    session: AsyncSession, dataset_id: uuid.UUID, *, for_update: bool = False
) -> AnyRow | None:
    query = select(datasets).where(datasets.c.id == dataset_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).first()


async def get_dataset_by_version(session: AsyncSession, version: str) -> AnyRow | None:
    return (await session.execute(select(datasets).where(datasets.c.version == version))).first()


async def active_dataset(session: AsyncSession) -> AnyRow | None:
    return (await session.execute(select(datasets).where(datasets.c.status == DatasetStatus.ACTIVE))).first()


async def find_servable_by_checksum(session: AsyncSession, checksum: str) -> AnyRow | None:
    """A fully loaded dataset with these exact bytes, the live one first."""
    query = (
        select(datasets)
        .where(datasets.c.checksum_sha256 == checksum, datasets.c.status.in_([str(s) for s in SERVABLE]))
        .order_by((datasets.c.status == DatasetStatus.ACTIVE).desc(), datasets.c.created_at.desc())
        .limit(1)
    )
    return (await session.execute(query)).first()


async def version_exists(session: AsyncSession, version: str) -> bool:
    found = await session.execute(select(datasets.c.id).where(datasets.c.version == version))
    return found.first() is not None


async def next_generated_version(session: AsyncSession) -> str:
    """The next free `vNNNN` (skipping names an admin already chose)."""
    while True:
        sequence = (
            await session.execute(text(f"SELECT nextval('{SCHEMA}.dataset_version_seq')"))
        ).scalar_one()
        version = generated_version(int(sequence))
        if not await version_exists(session, version):
            return version


async def insert_dataset(session: AsyncSession, **values: Any) -> AnyRow:
    row: AnyRow = (await session.execute(insert(datasets).values(**values).returning(datasets))).one()
    return row


async def update_dataset(session: AsyncSession, dataset_id: uuid.UUID, **values: Any) -> AnyRow:
    values.setdefault("updated_at", func.now())
    query = update(datasets).where(datasets.c.id == dataset_id).values(**values).returning(datasets)
    row: AnyRow = (await session.execute(query)).one()
    return row


async def promote(
    session: AsyncSession, dataset_id: uuid.UUID, *, now: datetime
) -> tuple[AnyRow, AnyRow | None]:
    """Make `dataset_id` the live version and the previous live one `retired`; return (new, previous)."""
    previous = await active_dataset(session)
    if previous is not None and previous.id != dataset_id:
        await update_dataset(session, previous.id, status=DatasetStatus.RETIRED)
    elif previous is not None:
        previous = None
    current = await update_dataset(
        session, dataset_id, status=DatasetStatus.ACTIVE, activated_at=now, error=None
    )
    return current, previous


async def list_datasets(
    session: AsyncSession, *, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[AnyRow]:
    """Newest first; `after` is the (created_at, id) of the last row of the previous page."""
    query = select(datasets).order_by(datasets.c.created_at.desc(), datasets.c.id.desc()).limit(limit)
    if after is not None:
        created_at, last_id = after
        query = query.where(
            or_(
                datasets.c.created_at < created_at,
                and_(datasets.c.created_at == created_at, datasets.c.id < last_id),
            )
        )
    return list((await session.execute(query)).all())


async def record_file(
    session: AsyncSession,
    *,
    dataset_id: uuid.UUID,
    object_key: str,
    checksum: str | None,
    size_bytes: int,
    uploaded_at: datetime | None,
    etag: str | None = None,
) -> None:
    """Insert or replace the dataset's stored file (checksum None: not verified yet)."""
    values = {
        "object_key": object_key,
        "checksum_sha256": checksum,
        "size_bytes": size_bytes,
        "uploaded_at": uploaded_at,
        "etag": etag,
    }
    query = pg_insert(dataset_files).values(dataset_id=dataset_id, **values)
    await session.execute(
        query.on_conflict_do_update(index_elements=[dataset_files.c.dataset_id], set_=values)
    )


async def delete_file(session: AsyncSession, dataset_id: uuid.UUID) -> None:
    """Forget the dataset's stored file (the object itself is deleted from the store separately)."""
    await session.execute(delete(dataset_files).where(dataset_files.c.dataset_id == dataset_id))


async def uploads_created_before(session: AsyncSession, cutoff: datetime) -> list[uuid.UUID]:
    """Datasets still waiting for their file (`uploading`) that were created before `cutoff`, oldest first."""
    query = (
        select(datasets.c.id)
        .where(datasets.c.status == DatasetStatus.UPLOADING, datasets.c.created_at < cutoff)
        .order_by(datasets.c.created_at)
    )
    return list((await session.execute(query)).scalars())


async def get_file(session: AsyncSession, dataset_id: uuid.UUID) -> AnyRow | None:
    return (
        await session.execute(select(dataset_files).where(dataset_files.c.dataset_id == dataset_id))
    ).first()


async def retention_candidates(session: AsyncSession, *, keep: int) -> list[uuid.UUID]:
    """Versions past the `keep` latest rollback targets (ready/retired) and the `keep` newest failed ones.

    Recency is `updated_at`: when a version stopped being live, finished indexing or failed.
    """
    ranked = (
        select(
            datasets.c.id,
            func.row_number()
            .over(
                partition_by=datasets.c.status == DatasetStatus.FAILED,
                order_by=(datasets.c.updated_at.desc(), datasets.c.id.desc()),
            )
            .label("rank"),
        )
        .where(datasets.c.status.in_([DatasetStatus.READY, DatasetStatus.RETIRED, DatasetStatus.FAILED]))
        .subquery()
    )
    query = select(ranked.c.id).where(ranked.c.rank > keep)
    return list((await session.execute(query)).scalars())


async def delete_dataset(session: AsyncSession, dataset_id: uuid.UUID) -> None:
    """Delete a version's row (and its file rows); its products partition is dropped separately."""
    await session.execute(delete(datasets).where(datasets.c.id == dataset_id))


async def partition_dataset_ids(session: AsyncSession) -> list[uuid.UUID]:
    """The dataset ids of every products partition that exists (attached or not)."""
    rows = await session.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind = 'r' AND c.relname ~ '^products_[0-9a-f]{32}$'"
        ),
        {"schema": SCHEMA},
    )
    return [uuid.UUID(name.removeprefix("products_")) for name in rows.scalars()]


async def existing_dataset_ids(session: AsyncSession, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    if not ids:
        return set()
    return set((await session.execute(select(datasets.c.id).where(datasets.c.id.in_(ids)))).scalars())
