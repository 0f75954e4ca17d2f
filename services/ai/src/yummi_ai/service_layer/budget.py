"""The daily token budget: reserve before a provider call (atomically, under a row lock), settle after."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from yummi_ai.adapters.tables import ai_budget, ai_budget_reservations
from yummi_ai.domain.usage import budget_allows, budget_spent_message, usage_day
from yummi_common.db import UnitOfWork
from yummi_common.errors import ResourceExhausted
from yummi_common.logging import get_logger
from yummi_common.timeutil import utcnow

log = get_logger(__name__)


@dataclass(frozen=True)
class Reservation:
    """Tokens held for one call in flight, against the budget of `day`."""

    id: uuid.UUID
    user_id: uuid.UUID
    day: date
    tokens: int


async def reserve_tokens(
    *,
    uow: UnitOfWork,
    user_id: uuid.UUID,
    amount: int,
    daily_limit: int,
    hold_seconds: float,
    now: datetime | None = None,
) -> Reservation:
    """Hold `amount` tokens of today's budget, or ResourceExhausted when spent plus in flight would pass it.

    The user's budget row is locked for the check and the hold, so concurrent calls cannot all pass a check
    that only one of them fits. Holds past their expiry (a process that died mid-call) are released here.
    """
    now = now or utcnow()
    day = usage_day(now)[0].date()
    session = uow.session
    await session.execute(pg_insert(ai_budget).values(user_id=user_id, day=day).on_conflict_do_nothing())
    row = (
        await session.execute(
            select(ai_budget.c.used_tokens, ai_budget.c.reserved_tokens)
            .where(ai_budget.c.user_id == user_id, ai_budget.c.day == day)
            .with_for_update()
        )
    ).one()
    stale = (
        (
            await session.execute(
                delete(ai_budget_reservations)
                .where(
                    ai_budget_reservations.c.user_id == user_id,
                    ai_budget_reservations.c.day == day,
                    ai_budget_reservations.c.expires_at < now,
                )
                .returning(ai_budget_reservations.c.tokens)
            )
        )
        .scalars()
        .all()
    )
    if stale:
        log.warning("released expired token holds", user_id=str(user_id), holds=len(stale))
    used, reserved = int(row.used_tokens), max(int(row.reserved_tokens) - sum(stale), 0)
    allowed = budget_allows(used=used, reserved=reserved, amount=amount, limit=daily_limit)
    reservation = Reservation(id=uuid.uuid4(), user_id=user_id, day=day, tokens=amount)
    if allowed:
        await session.execute(
            insert(ai_budget_reservations).values(
                id=reservation.id,
                user_id=user_id,
                day=day,
                tokens=amount,
                expires_at=now + timedelta(seconds=hold_seconds),
            )
        )
        reserved += amount
    await session.execute(
        update(ai_budget)
        .where(ai_budget.c.user_id == user_id, ai_budget.c.day == day)
        .values(reserved_tokens=reserved, updated_at=now)
    )
    await uow.commit()
    if not allowed:
        raise ResourceExhausted(
            budget_spent_message(used=used, reserved=reserved, amount=amount, limit=daily_limit)
        )
    return reservation


async def settle_tokens(*, uow: UnitOfWork, reservation: Reservation, used_tokens: int) -> None:
    """Turn a hold into what the call really used (0 when it failed); the caller commits."""
    held = (
        await uow.session.execute(
            delete(ai_budget_reservations)
            .where(ai_budget_reservations.c.id == reservation.id)
            .returning(ai_budget_reservations.c.tokens)
        )
    ).scalar_one_or_none()
    await uow.session.execute(
        update(ai_budget)
        .where(ai_budget.c.user_id == reservation.user_id, ai_budget.c.day == reservation.day)
        .values(
            # A hold already released as expired no longer counts in reserved_tokens.
            reserved_tokens=func.greatest(ai_budget.c.reserved_tokens - (held or 0), 0),
            used_tokens=ai_budget.c.used_tokens + max(used_tokens, 0),
            updated_at=func.now(),
        )
    )
