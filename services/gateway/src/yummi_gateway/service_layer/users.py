"""Identity users: created on the first authenticated call, kept in sync with Clerk, erased on request."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert

from yummi.events.v1 import events_pb2
from yummi_common.db import UnitOfWork
from yummi_common.errors import NotFound
from yummi_common.timeutil import isoformat
from yummi_gateway.adapters import users as repo
from yummi_gateway.adapters.tables import webhook_deliveries
from yummi_gateway.domain.identity import new_pseudonym

# Erasure forgets a user only in the cache of the process that erased it: other gateway workers and replicas
# may answer from a cached record for up to this long, so it stays short (a refresh is one indexed read).
USER_CACHE_TTL_SECONDS = 30.0
USER_CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class UserRecord:
    id: uuid.UUID
    clerk_user_id: str
    email: str | None
    created_at: datetime


class UserCache:
    """clerk_user_id → user, for a short while: most requests then skip Postgres entirely."""

    def __init__(
        self,
        *,
        ttl: float = USER_CACHE_TTL_SECONDS,
        max_entries: int = USER_CACHE_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, UserRecord]] = OrderedDict()

    def get(self, clerk_user_id: str) -> UserRecord | None:
        entry = self._entries.get(clerk_user_id)
        if entry is None:
            return None
        stored_at, record = entry
        if self._clock() - stored_at > self._ttl:
            self._entries.pop(clerk_user_id, None)
            return None
        return record

    def put(self, record: UserRecord) -> None:
        self._entries[record.clerk_user_id] = (self._clock(), record)
        self._entries.move_to_end(record.clerk_user_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, clerk_user_id: str) -> None:
        self._entries.pop(clerk_user_id, None)


def _record(row: Any) -> UserRecord:
    return UserRecord(id=row.id, clerk_user_id=row.clerk_user_id, email=row.email, created_at=row.created_at)


async def ensure_user(
    *, uow_factory: Callable[[], UnitOfWork], cache: UserCache, clerk_user_id: str, email: str | None
) -> UserRecord:
    """The identity user of a Clerk subject, created on first sight; a changed email is stored."""
    cached = cache.get(clerk_user_id)
    if cached is not None and (email is None or email == cached.email):
        return cached
    async with uow_factory() as uow:
        # Read first: the user nearly always exists with this email, and a read needs no write transaction.
        row = await repo.get_user_by_clerk_id(uow.session, clerk_user_id=clerk_user_id)
        if row is None or (email is not None and email != row.email):
            row = await repo.upsert_user(uow.session, clerk_user_id=clerk_user_id, email=email)
            await uow.commit()
    record = _record(row)
    cache.put(record)
    return record


async def sync_clerk_user(
    *, uow_factory: Callable[[], UnitOfWork], cache: UserCache, clerk_user_id: str, email: str | None
) -> None:
    """Apply a Clerk user.created/updated webhook: create the user or store the new email."""
    cache.forget(clerk_user_id)
    await ensure_user(uow_factory=uow_factory, cache=cache, clerk_user_id=clerk_user_id, email=email)


async def claim_webhook_delivery(
    *, uow_factory: Callable[[], UnitOfWork], svix_id: str, event_type: str
) -> bool:
    """Record a Svix message id before applying it; False when it was applied (or is being applied)."""
    async with uow_factory() as uow:
        inserted = await uow.session.execute(
            pg_insert(webhook_deliveries)
            .values(svix_id=svix_id, event_type=event_type)
            .on_conflict_do_nothing()
            .returning(webhook_deliveries.c.svix_id)
        )
        claimed = inserted.first() is not None
        await uow.commit()
    return claimed


async def release_webhook_delivery(*, uow_factory: Callable[[], UnitOfWork], svix_id: str) -> None:
    """Forget a claimed message id whose effect failed, so Svix's retry applies it."""
    async with uow_factory() as uow:
        await uow.session.execute(delete(webhook_deliveries).where(webhook_deliveries.c.svix_id == svix_id))
        await uow.commit()


async def erase_user(*, uow_factory: Callable[[], UnitOfWork], cache: UserCache, user_id: uuid.UUID) -> str:
    """Forget the user's PII here and tell every context (identity.user.erased); returns the pseudonym."""
    async with uow_factory() as uow:
        row = await repo.get_user(uow.session, user_id=user_id)
        if row is None:
            raise NotFound("user not found")
        if row.erased_at is not None:
            return str(row.pseudonym)
        pseudonym = new_pseudonym()
        await repo.mark_erased(uow.session, user_id=user_id, pseudonym=pseudonym)
        uow.emit(
            "identity.user.erased",
            events_pb2.UserErased(user_id=str(user_id), clerk_user_id=row.clerk_user_id, pseudonym=pseudonym),
        )
        await uow.commit()
    cache.forget(row.clerk_user_id)
    return pseudonym


async def erase_clerk_user(
    *, uow_factory: Callable[[], UnitOfWork], cache: UserCache, clerk_user_id: str
) -> bool:
    """Apply a Clerk user.deleted webhook; False when we never knew the user."""
    async with uow_factory() as uow:
        row = await repo.get_user_by_clerk_id(uow.session, clerk_user_id=clerk_user_id)
    if row is None:
        return False
    await erase_user(uow_factory=uow_factory, cache=cache, user_id=row.id)
    return True


async def export_identity(*, uow_factory: Callable[[], UnitOfWork], user_id: uuid.UUID) -> dict[str, Any]:
    """What the identity context holds about the user."""
    async with uow_factory() as uow:
        row = await repo.get_user(uow.session, user_id=user_id)
    if row is None:
        raise NotFound("user not found")
    return {
        "id": str(row.id),
        "clerk_user_id": row.clerk_user_id,
        "email": row.email,
        "created_at": isoformat(row.created_at),
    }
