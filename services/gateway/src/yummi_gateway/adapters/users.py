"""Reading and writing identity.users with the session of a unit of work."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from yummi_gateway.adapters.tables import users

_COLUMNS = (
    users.c.id,
    users.c.clerk_user_id,
    users.c.email,
    users.c.created_at,
    users.c.erased_at,
    users.c.pseudonym,
)


async def upsert_user(session: AsyncSession, *, clerk_user_id: str, email: str | None) -> Any:
    """Insert the user, or update the email when a new one is known; returns the row."""
    stmt = insert(users).values(id=uuid.uuid4(), clerk_user_id=clerk_user_id, email=email)
    if email is not None:
        stmt = stmt.on_conflict_do_update(
            index_elements=[users.c.clerk_user_id],
            set_={"email": stmt.excluded.email, "updated_at": func.now()},
            where=users.c.email.is_distinct_from(stmt.excluded.email),
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=[users.c.clerk_user_id])
    row = (await session.execute(stmt.returning(*_COLUMNS))).first()
    if row is not None:
        return row
    # The row existed and nothing changed: RETURNING is empty then.
    return (await session.execute(select(*_COLUMNS).where(users.c.clerk_user_id == clerk_user_id))).one()


async def get_user(session: AsyncSession, *, user_id: uuid.UUID) -> Any | None:
    return (await session.execute(select(*_COLUMNS).where(users.c.id == user_id))).first()


async def get_user_by_clerk_id(session: AsyncSession, *, clerk_user_id: str) -> Any | None:
    return (await session.execute(select(*_COLUMNS).where(users.c.clerk_user_id == clerk_user_id))).first()


async def mark_erased(session: AsyncSession, *, user_id: uuid.UUID, pseudonym: str) -> None:
    """Drop the PII: the email goes, and the Clerk id is replaced so a later sign-in starts afresh."""
    await session.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(
            email=None,
            clerk_user_id="erased:" + pseudonym,
            pseudonym=pseudonym,
            erased_at=func.now(),
            updated_at=func.now(),
        )
    )
