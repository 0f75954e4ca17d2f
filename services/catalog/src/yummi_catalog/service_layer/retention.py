"""Retention: keep the live version, the newest `CATALOG_RETAIN_VERSIONS` rollback targets and as many failed
versions; delete older ones with their products (a partition drop) and their stored files.

A version is deleted row first, under the activation lock (so it can no longer be activated or read), then
its partition is detached concurrently and dropped (reads of other versions never wait), then its files go.
A partition left behind by a crash between those steps has no dataset row; the next sweep drops it.

Each sweep first expires abandoned uploads: a dataset still `uploading` `DATASET_UPLOAD_TTL_SECONDS` after it
was created becomes `failed` (saying so) and its stored file is deleted; retention then treats it like any
other failed version.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from yummi_catalog.adapters import datasets as repo
from yummi_catalog.adapters.file_store import DatasetStore
from yummi_catalog.adapters.products import drop_partition
from yummi_catalog.service_layer.uploads import expire_uploads
from yummi_common.db import UnitOfWork
from yummi_common.logging import get_logger

log = get_logger(__name__)

UnitOfWorkFactory = Callable[[], UnitOfWork]
SWEEP_SECONDS = 5.0


async def prune_versions(
    *, uow_factory: UnitOfWorkFactory, engine: AsyncEngine, store: DatasetStore, keep: int
) -> list[uuid.UUID]:
    """Delete the versions retention does not keep, and orphaned partitions; return the deleted ids."""
    async with uow_factory() as uow:
        candidates = await repo.retention_candidates(uow.session, keep=keep)
    pruned: list[uuid.UUID] = []
    for dataset_id in candidates:
        async with uow_factory() as uow:
            await repo.lock_activation(uow.session)
            # Re-checked under the lock: it may have been activated since.
            if dataset_id not in await repo.retention_candidates(uow.session, keep=keep):
                continue
            await repo.delete_dataset(uow.session, dataset_id)
            await uow.commit()
        await _drop_products(engine, dataset_id)
        await store.delete_dataset(dataset_id)
        pruned.append(dataset_id)
        log.info("dataset version deleted by retention", dataset_id=str(dataset_id))
    await _drop_orphaned_partitions(uow_factory, engine)
    return pruned


async def run_retention(
    *,
    uow_factory: UnitOfWorkFactory,
    engine: AsyncEngine,
    store: DatasetStore,
    keep: int,
    stop: asyncio.Event,
    interval: float = SWEEP_SECONDS,
    upload_ttl_seconds: float | None = None,
) -> None:
    """Expire abandoned uploads (given a TTL) and apply retention every `interval` seconds (so shortly after
    each activation) until `stop` is set."""
    while not stop.is_set():
        try:
            if upload_ttl_seconds is not None:
                await expire_uploads(uow_factory=uow_factory, store=store, ttl_seconds=upload_ttl_seconds)
            await prune_versions(uow_factory=uow_factory, engine=engine, store=store, keep=keep)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the database or the store may be briefly away
            log.warning("retention sweep failed", error=str(exc))
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass


async def _drop_products(engine: AsyncEngine, dataset_id: uuid.UUID) -> None:
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await drop_partition(autocommit, dataset_id=dataset_id)


async def _drop_orphaned_partitions(uow_factory: UnitOfWorkFactory, engine: AsyncEngine) -> None:
    async with uow_factory() as uow:
        partitions = await repo.partition_dataset_ids(uow.session)
        known = await repo.existing_dataset_ids(uow.session, partitions)
    for dataset_id in partitions:
        if dataset_id not in known:
            await _drop_products(engine, dataset_id)
            log.info("orphaned products partition dropped", dataset_id=str(dataset_id))
