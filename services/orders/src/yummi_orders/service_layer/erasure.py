"""Erasure: forget a user's basket and the notes they wrote; keep order records (amounts, statuses)."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from yummi.events.v1 import events_pb2
from yummi_common.db import UnitOfWork
from yummi_common.logging import get_logger
from yummi_orders.adapters import repository as repo
from yummi_orders.adapters.tables import baskets, orders

log = get_logger(__name__)


async def erase_user_data(*, uow: UnitOfWork, user_id: str) -> None:
    """Delete the user's basket, blank the notes they wrote, report the orders context done (no commit)."""
    try:
        owner = uuid.UUID(user_id)
    except ValueError:
        log.error("erasure event names no valid user", user_id=user_id[:64])
        return
    await repo.delete_basket_items(uow.session, user_id=owner)
    await uow.session.execute(baskets.delete().where(baskets.c.user_id == owner))
    await uow.session.execute(
        update(orders).where(orders.c.user_id == owner, orders.c.notes != "").values(notes="")
    )
    uow.emit(
        "identity.user.erasure_completed",
        events_pb2.UserErasureCompleted(user_id=str(owner), context="orders"),
    )
