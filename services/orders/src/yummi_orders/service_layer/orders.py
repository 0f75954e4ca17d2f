"""Placing, reading, listing and cancelling orders, and the user's data export."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from yummi.events.v1 import events_pb2
from yummi_common.db import UnitOfWork
from yummi_common.errors import InvalidArgument, NotFound, YummiError
from yummi_common.money import CURRENCY
from yummi_common.pagination import decode_cursor, encode_cursor
from yummi_common.timeutil import isoformat
from yummi_orders.adapters import repository as repo
from yummi_orders.adapters.catalog import Catalog
from yummi_orders.domain import orders as machine
from yummi_orders.domain.lines import price_lines, validate_order_request
from yummi_orders.domain.orders import Order, OrderLine, OrderStatus, order_total
from yummi_orders.service_layer.idempotency import IdempotencyKey, keyed_order, order_placed_before
from yummi_orders.service_layer.idempotency import idempotency_key as idempotency_key_of
from yummi_orders.service_layer.ids import parse_order_id, parse_user_id

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
USER_CANCEL_REASON = "cancelled_by_user"


async def place_order(
    *,
    uow: UnitOfWork,
    catalog: Catalog,
    user_id: str,
    retailer: str,
    lines: Sequence[tuple[str, int]],
    notes: str = "",
    idempotency_key: str = "",
) -> Order:
    """Validate, price from the live catalog, store an order awaiting payment (emits orders.order.placed).

    With an `idempotency_key` the user already placed an order with, that order is answered as it is now and
    nothing is written (InvalidArgument when the key came with another request).
    """
    owner = parse_user_id(user_id)
    request = validate_order_request(retailer=retailer, lines=lines, notes=notes)
    keyed = idempotency_key_of(
        idempotency_key,
        request={
            "op": "place_order",
            "retailer": request.retailer,
            "items": [[str(product_id).strip(), quantity] for product_id, quantity in lines],
            "notes": request.notes,
        },
    )
    try:
        products = await catalog.batch_get_products([line.product_id for line in request.lines])
        priced = price_lines(retailer=request.retailer, lines=request.lines, products=products)
    except YummiError:
        # A retry of an order already placed gets that order, even when it could not be priced right now.
        if keyed is not None and (existing := await keyed_order(uow, owner, keyed)) is not None:
            return existing
        raise
    order = await create_order(
        uow=uow,
        user_id=owner,
        retailer=request.retailer,
        lines=priced,
        notes=request.notes,
        keyed=keyed,
        alone=True,
    )
    if order is None:  # only a keyed insert can conflict
        return await order_placed_before(uow, owner, keyed)
    return order  # committed by create_order


async def create_order(
    *,
    uow: UnitOfWork,
    user_id: uuid.UUID,
    retailer: str,
    lines: Sequence[OrderLine],
    notes: str,
    keyed: IdempotencyKey | None = None,
    alone: bool = False,
) -> Order | None:
    """Insert a priced order, its `order.placed` history entry and the outbox event in one statement: with
    `alone` committed at once (the unit of work must not have done anything else), else the caller commits.

    None, with nothing written or emitted, when the user already has an order with this idempotency key.
    """
    order_id = uuid.uuid4()
    total = order_total(list(lines))
    placed = uow.outbox_params(
        "orders.order.placed",
        events_pb2.OrderPlaced(
            order_id=str(order_id),
            user_id=str(user_id),
            total_minor=total,
            currency=CURRENCY,
            retailer=retailer,
            lines=[
                events_pb2.OrderLine(
                    product_id=line.product_id, quantity=line.quantity, unit_price_minor=line.unit_price_minor
                )
                for line in lines
            ],
        ),
    )
    inserted = await repo.insert_placed_order(
        uow,
        order_id=order_id,
        user_id=user_id,
        retailer=retailer,
        lines=lines,
        total_minor=total,
        currency=CURRENCY,
        notes=notes,
        event_payload={"total_minor": total, "currency": CURRENCY, "line_count": len(lines)},
        placed=placed,
        alone=alone,
        idempotency_key=keyed.key if keyed is not None else None,
        idempotency_fingerprint=keyed.fingerprint if keyed is not None else None,
    )
    if inserted is None:
        return None
    row, placed_event = inserted
    # The stored row and its one history entry are the whole order: no need to read it back.
    return repo.order_from_row(row, [placed_event])


async def reload_order(uow: UnitOfWork, order_id: uuid.UUID) -> Order:
    """The order (with its history) as this unit of work now sees it."""
    order = await repo.load_order(uow.session, order_id)
    if order is None:  # pragma: no cover - just written in this unit of work
        raise NotFound("order not found")
    return order


async def get_order(*, uow: UnitOfWork, order_id: str, user_id: str, privileged: bool = False) -> Order:
    """One order with its history; another user's order is NotFound unless the caller is privileged."""
    oid = parse_order_id(order_id)
    owner = None if privileged else parse_user_id(user_id)
    order = await repo.load_order(uow.session, oid)
    if order is None or (owner is not None and order.user_id != owner):
        raise NotFound("order not found")
    return order


def _parse_list_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    created_at, order_id = decode_cursor(cursor, arity=2)
    try:
        after = datetime.fromisoformat(str(created_at)), uuid.UUID(str(order_id))
    except ValueError:
        after = None
    if after is None or after[0].tzinfo is None:
        raise InvalidArgument("cursor is not valid", errors=[{"field": "cursor", "message": "malformed"}])
    return after


async def list_orders(
    *, uow: UnitOfWork, user_id: str, status: str = "", limit: int = 0, cursor: str = ""
) -> tuple[list[Order], str | None]:
    """The user's orders, newest first, optionally of one status; returns the page and the next cursor."""
    owner = parse_user_id(user_id)
    errors: list[dict[str, Any]] = []
    wanted: OrderStatus | None = None
    if status:
        try:
            wanted = OrderStatus(status)
        except ValueError:
            errors.append(
                {"field": "status", "message": f"must be one of {', '.join(s.value for s in OrderStatus)}"}
            )
    page_size = limit or DEFAULT_LIMIT
    if not 1 <= page_size <= MAX_LIMIT:
        errors.append({"field": "limit", "message": f"must be between 1 and {MAX_LIMIT}"})
    if errors:
        raise InvalidArgument("list request is not valid", errors=errors)
    after = _parse_list_cursor(cursor) if cursor else None
    rows = await repo.list_user_orders(
        uow.session, user_id=owner, status=wanted, limit=page_size + 1, after=after
    )
    page = [repo.order_from_row(row) for row in rows[:page_size]]
    next_cursor = None
    if len(rows) > page_size:
        last = page[-1]
        next_cursor = encode_cursor([last.created_at.isoformat(), str(last.id)])
    return page, next_cursor


async def cancel_order(
    *, uow: UnitOfWork, order_id: str, user_id: str, reason: str = USER_CANCEL_REASON
) -> Order:
    """Cancel the user's order while it waits for payment or a runner (emits orders.order.cancelled)."""
    oid = parse_order_id(order_id)
    owner = parse_user_id(user_id)
    row = await repo.get_order_row(uow.session, oid, lock=True)
    if row is None or row.user_id != owner:
        raise NotFound("order not found")
    previous = OrderStatus(row.status)
    new_status = machine.cancel(previous)
    await repo.update_order(uow.session, oid, status=new_status.value, reason=reason)
    await repo.add_event(
        uow.session,
        order_id=oid,
        type="order.cancelled",
        payload={"previous_status": previous.value, "reason": reason},
    )
    # payments refunds when it had debited: always when previous_status is queued, and when pending_payment
    # if its debit won the race against this cancel.
    uow.emit(
        "orders.order.cancelled",
        events_pb2.OrderCancelled(
            order_id=str(oid),
            user_id=str(row.user_id),
            total_minor=int(row.total_minor),
            currency=row.currency,
            previous_status=previous.value,
            reason=reason,
        ),
    )
    await uow.commit()
    return await reload_order(uow, oid)


async def get_pending_counts(*, uow: UnitOfWork) -> tuple[int, int, float]:
    """Orders queued, orders claimed, and how long the oldest queued order has waited (seconds)."""
    return await repo.pending_counts(uow.session)


def order_to_json(order: Order) -> dict[str, Any]:
    """An order as a plain JSON document (export and logs of record)."""
    return {
        "id": str(order.id),
        "status": order.status.value,
        "retailer": order.retailer,
        "items": [{k: v for k, v in line.to_json().items() if k != "catalog_id"} for line in order.items],
        "total_minor": order.total_minor,
        "currency": order.currency,
        "notes": order.notes,
        "reason": order.reason,
        "retailer_reference": order.retailer_reference,
        "created_at": isoformat(order.created_at),
        "updated_at": isoformat(order.updated_at),
        "events": [
            {"type": e.type, "payload": e.payload, "created_at": isoformat(e.created_at)}
            for e in order.events
        ],
    }


async def export_user_data(*, uow: UnitOfWork, user_id: str) -> str:
    """Everything the orders context holds about the user, as one JSON document."""
    owner = parse_user_id(user_id)
    orders = await repo.all_user_orders(uow.session, owner)
    items = await repo.basket_items_of(uow.session, owner)
    document = {
        "user_id": str(owner),
        "orders": [order_to_json(order) for order in orders],
        "basket": {
            "items": [
                {
                    "product_id": item.product_id,
                    "retailer": item.retailer,
                    "title": item.title,
                    "quantity": item.quantity,
                    "added_unit_price_minor": item.added_unit_price_minor,
                    "added_at": isoformat(item.added_at),
                }
                for item in items
            ]
        },
    }
    return orjson.dumps(document).decode()
