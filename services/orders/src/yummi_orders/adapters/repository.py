"""Reading and writing orders, their history and baskets with an explicit AsyncSession (Core statements)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    Row,
    Text,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from yummi_common.db import UnitOfWork, outbox_cte
from yummi_common.messaging.consumer import InboxClaim
from yummi_orders.adapters.tables import basket_items, baskets, messaging, order_events, orders
from yummi_orders.domain.basket import BasketItem
from yummi_orders.domain.orders import Order, OrderEvent, OrderLine, OrderStatus


def order_from_row(row: Row[Any], events: Sequence[OrderEvent] = ()) -> Order:
    return Order(
        id=row.id,
        user_id=row.user_id,
        status=OrderStatus(row.status),
        retailer=row.retailer,
        items=[OrderLine.from_json(item) for item in row.items],
        total_minor=int(row.total_minor),
        currency=row.currency,
        notes=row.notes,
        created_at=row.created_at,
        updated_at=row.updated_at,
        runner_id=row.runner_id,
        lease_expires_at=row.lease_expires_at,
        attempts=int(row.attempts),
        retailer_reference=row.retailer_reference,
        reason=row.reason,
        events=list(events),
    )


def _placed_order_statement() -> Any:
    """INSERT the order, its `order.placed` history entry and the outbox row of `orders.order.placed`, in one
    statement (built once, values bound; the event's values are `UnitOfWork.outbox_params`).

    An order whose (user_id, idempotency_key) is already taken inserts nothing (no history entry, no event)
    and the statement returns no row; a concurrent insert of the same key waits for the first to commit or
    roll back. Orders without a key (NULL) never conflict.
    """
    created = (
        pg_insert(orders)
        .values(
            id=bindparam("id"),
            user_id=bindparam("user_id"),
            status=OrderStatus.PENDING_PAYMENT.value,
            retailer=bindparam("retailer"),
            items=bindparam("items"),
            total_minor=bindparam("total_minor"),
            currency=bindparam("currency"),
            notes=bindparam("notes"),
            idempotency_key=bindparam("idempotency_key", type_=Text),
            idempotency_fingerprint=bindparam("idempotency_fingerprint", type_=Text),
        )
        .on_conflict_do_nothing(
            index_elements=[orders.c.user_id, orders.c.idempotency_key],
            index_where=orders.c.idempotency_key.isnot(None),
        )
        .returning(*orders.c)
        .cte("created")
    )
    logged = (
        insert(order_events)
        .from_select(
            ["order_id", "type", "payload", "created_at"],
            select(
                created.c.id,
                literal("order.placed"),
                bindparam("event_payload", type_=JSONB),
                func.clock_timestamp(),
            ),
        )
        .returning(order_events.c.order_id, order_events.c.created_at)
        .cte("logged")
    )
    return (
        select(created, logged.c.created_at.label("placed_at"))
        .select_from(created.join(logged, logged.c.order_id == created.c.id))
        .add_cte(outbox_cte(messaging.outbox, when=created))
    )


# Hot statements are built once: SQLAlchemy then reuses their cache key and compiled form on every call.
PLACED_ORDER = _placed_order_statement()


async def insert_placed_order(
    uow: UnitOfWork,
    *,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    retailer: str,
    lines: Sequence[OrderLine],
    total_minor: int,
    currency: str,
    notes: str,
    event_payload: dict[str, Any],
    placed: dict[str, Any],
    alone: bool,
    idempotency_key: str | None = None,
    idempotency_fingerprint: str | None = None,
) -> tuple[Row[Any], OrderEvent] | None:
    """Store a new order waiting for payment with its `order.placed` history entry and the event (`placed`:
    `uow.outbox_params` of `orders.order.placed`), in one statement: committed on its own when `alone`,
    else in the unit of work's transaction (the caller commits).

    None when the user already has an order with this idempotency key (nothing is written).
    """
    params = {
        "id": order_id,
        "user_id": user_id,
        "retailer": retailer,
        "items": [line.to_json() for line in lines],
        "total_minor": total_minor,
        "currency": currency,
        "notes": notes,
        "event_payload": event_payload,
        "idempotency_key": idempotency_key,
        "idempotency_fingerprint": idempotency_fingerprint,
        **placed,
    }
    if alone:
        rows = await uow.execute_alone(PLACED_ORDER, params)
    else:
        rows = list((await uow.session.execute(PLACED_ORDER, params)).all())
    if not rows:
        return None
    uow.event_written(placed)  # the order was inserted, and its event with it
    row = rows[0]
    return row, OrderEvent(type="order.placed", payload=event_payload, created_at=row.placed_at)


def _queue_paid_batch_statement() -> Any:
    """Claim `wallet.debited` events in the inbox and, for those new, move each order from pending payment to
    queued and append `order.queued`, in one statement (arrays of event ids, order ids and history payloads;
    the consumer's name and the event type): one row per event claimed now, with the moved order's id and
    total (NULL when it was missing or no longer pending: a concurrent transition holding the row makes the
    statement wait, then re-check). Events claimed before get no row."""
    inbox, history = messaging.inbox.fullname, order_events.fullname
    return text(
        f"""
        WITH incoming AS (
            SELECT * FROM unnest(:event_ids, :order_ids, :payloads) AS t(event_id, order_id, payload)
        ),
        claimed AS (
            INSERT INTO {inbox} (event_id, consumer, event_type)
            SELECT event_id, :consumer, :event_type FROM incoming
            ON CONFLICT DO NOTHING
            RETURNING event_id
        ),
        moved AS (
            UPDATE {orders.fullname} AS o SET status = :queued, updated_at = now()
            FROM incoming AS i JOIN claimed AS c ON c.event_id = i.event_id
            WHERE o.id = i.order_id AND o.status = :pending
            RETURNING o.id, o.total_minor, i.event_id, i.payload
        ),
        logged AS (
            INSERT INTO {history} (order_id, type, payload, created_at)
            SELECT id, 'order.queued', payload::jsonb, clock_timestamp() FROM moved
            RETURNING order_id
        )
        SELECT c.event_id, m.id, m.total_minor
        FROM claimed AS c LEFT JOIN moved AS m ON m.event_id = c.event_id
        """  # noqa: S608 - only our own tables' names are formatted in; every value is bound
    ).bindparams(
        bindparam("event_ids", type_=ARRAY(UUID(as_uuid=True))),
        bindparam("order_ids", type_=ARRAY(UUID(as_uuid=True))),
        bindparam("payloads", type_=ARRAY(Text)),
        bindparam("consumer", type_=Text),
        bindparam("event_type", type_=Text),
        bindparam("queued", value=OrderStatus.QUEUED.value, type_=Text),
        bindparam("pending", value=OrderStatus.PENDING_PAYMENT.value, type_=Text),
    )


QUEUE_PAID_BATCH = _queue_paid_batch_statement()


async def queue_paid_orders(
    uow: UnitOfWork, debits: Sequence[tuple[InboxClaim, uuid.UUID, dict[str, Any]]]
) -> dict[uuid.UUID, Row[Any]]:
    """Queue the paid orders of these debits (claim, order id, history payload) with one statement committed
    on its own: the rows of the events claimed now, by event id (`id`/`total_minor` None when nothing
    moved)."""
    if not debits:
        return {}
    first = debits[0][0]
    rows = await uow.execute_alone(
        QUEUE_PAID_BATCH,
        {
            "event_ids": [claim.event_id for claim, _, _ in debits],
            "order_ids": [order_id for _, order_id, _ in debits],
            "payloads": [orjson.dumps(payload).decode() for _, _, payload in debits],
            "consumer": first.consumer,
            "event_type": first.event_type,
        },
    )
    return {row.event_id: row for row in rows}


async def add_event(
    session: AsyncSession, *, order_id: uuid.UUID, type: str, payload: dict[str, Any] | None = None
) -> OrderEvent:
    """Append one entry to an order's history (clock time, so entries of one transaction keep their order)."""
    created_at = (
        await session.execute(
            insert(order_events)
            .values(order_id=order_id, type=type, payload=payload or {}, created_at=func.clock_timestamp())
            .returning(order_events.c.created_at)
        )
    ).scalar_one()
    return OrderEvent(type=type, payload=payload or {}, created_at=created_at)


async def add_events(session: AsyncSession, entries: Sequence[dict[str, Any]]) -> None:
    """Append many history entries at once (each: order_id, type, payload)."""
    if entries:
        await session.execute(insert(order_events).values(created_at=func.clock_timestamp()), list(entries))


async def events_of(session: AsyncSession, order_id: uuid.UUID) -> list[OrderEvent]:
    rows = await session.execute(
        select(order_events.c.type, order_events.c.payload, order_events.c.created_at)
        .where(order_events.c.order_id == order_id)
        .order_by(order_events.c.created_at, order_events.c.id)
    )
    return [OrderEvent(type=r.type, payload=r.payload, created_at=r.created_at) for r in rows]


async def get_order_row(session: AsyncSession, order_id: uuid.UUID, *, lock: bool = False) -> Row[Any] | None:
    """The order's row, locked FOR UPDATE when `lock` (so concurrent transitions serialise on it)."""
    stmt = select(orders).where(orders.c.id == order_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).first()


async def keyed_order_row(session: AsyncSession, user_id: uuid.UUID, idempotency_key: str) -> Row[Any] | None:
    """The user's order placed with this idempotency key, if any."""
    return (
        await session.execute(
            select(orders).where(orders.c.user_id == user_id, orders.c.idempotency_key == idempotency_key)
        )
    ).first()


async def load_order(session: AsyncSession, order_id: uuid.UUID, *, with_events: bool = True) -> Order | None:
    row = await get_order_row(session, order_id)
    if row is None:
        return None
    return order_from_row(row, await events_of(session, order_id) if with_events else ())


async def update_order(session: AsyncSession, order_id: uuid.UUID, **values: Any) -> Row[Any]:
    """Set columns of one order (and updated_at); returns the new row."""
    result = await session.execute(
        update(orders)
        .where(orders.c.id == order_id)
        .values(**values, updated_at=func.now())
        .returning(*orders.c)
    )
    return result.one()


async def list_user_orders(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    status: OrderStatus | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[Row[Any]]:
    """The user's orders, newest first, keyset-paginated on (created_at desc, id desc)."""
    stmt = select(orders).where(orders.c.user_id == user_id)
    if status is not None:
        stmt = stmt.where(orders.c.status == status.value)
    if after is not None:
        stmt = stmt.where(tuple_(orders.c.created_at, orders.c.id) < tuple_(*after))
    stmt = stmt.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit)
    return list((await session.execute(stmt)).all())


async def all_user_orders(session: AsyncSession, user_id: uuid.UUID) -> list[Order]:
    rows = (
        await session.execute(
            select(orders).where(orders.c.user_id == user_id).order_by(orders.c.created_at, orders.c.id)
        )
    ).all()
    if not rows:
        return []
    history = (
        await session.execute(
            select(order_events)
            .where(order_events.c.order_id.in_([r.id for r in rows]))
            .order_by(order_events.c.created_at, order_events.c.id)
        )
    ).all()
    by_order: dict[uuid.UUID, list[OrderEvent]] = {}
    for e in history:
        by_order.setdefault(e.order_id, []).append(OrderEvent(e.type, e.payload, e.created_at))
    return [order_from_row(r, by_order.get(r.id, [])) for r in rows]


async def claim_next_queued(
    session: AsyncSession, *, runner_id: str, retailer: str | None, lease_seconds: int
) -> Row[Any] | None:
    """Lease the oldest queued order to `runner_id`; concurrent claimers skip each other's locked rows."""
    stmt = select(orders.c.id).where(orders.c.status == OrderStatus.QUEUED.value)
    if retailer:
        stmt = stmt.where(orders.c.retailer == retailer)
    stmt = stmt.order_by(orders.c.created_at, orders.c.id).limit(1).with_for_update(skip_locked=True)
    order_id = (await session.execute(stmt)).scalar()
    if order_id is None:
        return None
    return await update_order(
        session,
        order_id,
        status=OrderStatus.CLAIMED.value,
        runner_id=runner_id,
        lease_expires_at=lease_deadline(lease_seconds),
    )


def lease_deadline(lease_seconds: int) -> Any:
    """now() + the lease, in the database's clock (the sweeper compares against the same clock)."""
    return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds)


async def expired_claims(session: AsyncSession, *, limit: int) -> list[Row[Any]]:
    """Claimed orders whose lease ran out, locked (skipping rows another sweeper or ack holds)."""
    stmt = (
        select(orders)
        .where(orders.c.status == OrderStatus.CLAIMED.value, orders.c.lease_expires_at < func.now())
        .order_by(orders.c.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).all())


async def pending_counts(session: AsyncSession) -> tuple[int, int, float]:
    """Queued and claimed orders, and the age in seconds of the oldest queued one."""
    row = (
        await session.execute(
            select(
                func.count().filter(orders.c.status == OrderStatus.QUEUED.value),
                func.count().filter(orders.c.status == OrderStatus.CLAIMED.value),
                func.coalesce(
                    func.extract(
                        "epoch",
                        func.now()
                        - func.min(orders.c.created_at).filter(orders.c.status == OrderStatus.QUEUED.value),
                    ),
                    0,
                ),
            ).where(orders.c.status.in_([OrderStatus.QUEUED.value, OrderStatus.CLAIMED.value]))
        )
    ).one()
    return int(row[0]), int(row[1]), max(float(row[2]), 0.0)


# --- baskets ------------------------------------------------------------------------------------------------


def _item_from_row(row: Row[Any]) -> BasketItem:
    return BasketItem(
        product_id=row.product_id,
        retailer=row.retailer,
        title=row.title,
        quantity=int(row.quantity),
        added_unit_price_minor=int(row.added_unit_price_minor),
        added_at=row.added_at,
    )


async def basket_items_of(
    session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False
) -> list[BasketItem]:
    """The user's basket lines in the order they were added; `lock` serialises writers on the basket row."""
    if lock:
        await ensure_basket(session, user_id)
        await session.execute(select(baskets.c.user_id).where(baskets.c.user_id == user_id).with_for_update())
    rows = await session.execute(
        select(basket_items)
        .where(basket_items.c.user_id == user_id)
        .order_by(basket_items.c.added_at, basket_items.c.product_id)
    )
    return [_item_from_row(r) for r in rows]


async def ensure_basket(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(pg_insert(baskets).values(user_id=user_id).on_conflict_do_nothing())


async def upsert_basket_item(session: AsyncSession, *, user_id: uuid.UUID, item: BasketItem) -> None:
    """Set a line's quantity; a new line remembers the price and title it was added at."""
    stmt = pg_insert(basket_items).values(
        user_id=user_id,
        product_id=item.product_id,
        retailer=item.retailer,
        title=item.title,
        quantity=item.quantity,
        added_unit_price_minor=item.added_unit_price_minor,
        added_at=func.clock_timestamp(),
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[basket_items.c.user_id, basket_items.c.product_id],
            set_={"quantity": stmt.excluded.quantity},
        )
    )
    await session.execute(update(baskets).where(baskets.c.user_id == user_id).values(updated_at=func.now()))


async def delete_basket_items(
    session: AsyncSession, *, user_id: uuid.UUID, product_ids: Sequence[str] | None = None
) -> int:
    """Remove some (or all) of the user's basket lines; returns how many went."""
    stmt = delete(basket_items).where(basket_items.c.user_id == user_id)
    if product_ids is not None:
        stmt = stmt.where(basket_items.c.product_id.in_(list(product_ids)))
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
