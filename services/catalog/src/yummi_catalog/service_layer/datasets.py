"""Dataset versions: listing, lookup, activation (also rollback), and the live catalog source."""

from __future__ import annotations

import uuid
from datetime import datetime

from yummi.events.v1 import events_pb2
from yummi_catalog.adapters import datasets as repo
from yummi_catalog.adapters.tables import AnyRow
from yummi_catalog.domain.datasets import DatasetStatus, ensure_activatable
from yummi_common.db import UnitOfWork
from yummi_common.errors import InvalidArgument, NotFound
from yummi_common.pagination import decode_cursor, encode_cursor
from yummi_common.timeutil import to_timestamp, utcnow

DATASET_ACTIVATED = "catalog.dataset.activated"
DEFAULT_PAGE = 50
MAX_PAGE = 500


def parse_dataset_id(value: str) -> uuid.UUID:
    """A dataset id from a request; anything that is not a UUID names no dataset."""
    try:
        return uuid.UUID(value.strip())
    except (ValueError, AttributeError):
        raise NotFound("dataset not found") from None


async def get_dataset(*, uow: UnitOfWork, dataset_id: str) -> AnyRow:
    """One dataset version by id."""
    row = await repo.get_dataset(uow.session, parse_dataset_id(dataset_id))
    if row is None:
        raise NotFound("dataset not found")
    return row


async def list_datasets(*, uow: UnitOfWork, limit: int, cursor: str) -> tuple[list[AnyRow], str]:
    """Dataset versions, newest first, with the cursor of the next page ("" when none)."""
    limit = page_limit(limit)
    after = None
    if cursor:
        created_at, last_id = decode_cursor(cursor, arity=2)
        try:
            after = (datetime.fromisoformat(created_at), uuid.UUID(last_id))
        except (TypeError, ValueError):
            raise InvalidArgument(
                "cursor is not valid", errors=[{"field": "cursor", "message": "malformed"}]
            ) from None
        if after[0].tzinfo is None:
            raise InvalidArgument("cursor is not valid", errors=[{"field": "cursor", "message": "malformed"}])
    rows = await repo.list_datasets(uow.session, limit=limit + 1, after=after)
    next_cursor = ""
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([last.created_at.isoformat(), str(last.id)])
    return rows, next_cursor


async def activate_dataset(*, uow: UnitOfWork, dataset_id: str) -> AnyRow:
    """Make a fully loaded version live (rollback = activating an older one); the live one stays as it is."""
    parsed = parse_dataset_id(dataset_id)
    await repo.lock_activation(uow.session)
    row = await repo.get_dataset(uow.session, parsed, for_update=True)
    if row is None:
        raise NotFound("dataset not found")
    if row.status == DatasetStatus.ACTIVE:
        return row
    ensure_activatable(row.status)
    activated = await promote_and_announce(uow=uow, dataset_id=parsed)
    await uow.commit()
    return activated


async def promote_and_announce(*, uow: UnitOfWork, dataset_id: uuid.UUID) -> AnyRow:
    """Switch the live version in this transaction and emit catalog.dataset.activated with it (lock held)."""
    now = utcnow()
    current, previous = await repo.promote(uow.session, dataset_id, now=now)
    uow.emit(
        DATASET_ACTIVATED,
        events_pb2.DatasetActivated(
            dataset_id=str(current.id),
            version=current.version,
            item_count=current.item_count,
            checksum_sha256=current.checksum_sha256 or "",
            previous_dataset_id=str(previous.id) if previous is not None else "",
            activated_at=to_timestamp(now),
        ),
    )
    return current


async def catalog_source(*, uow: UnitOfWork) -> AnyRow | None:
    """The live dataset version, or None when nothing has been activated yet."""
    return await repo.active_dataset(uow.session)


def page_limit(limit: int) -> int:
    """A page size: 0 means the default (50); otherwise 1..500."""
    if limit == 0:
        return DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(
            "limit must be between 1 and 500",
            errors=[{"field": "limit", "message": "must be between 1 and 500"}],
        )
    return limit
