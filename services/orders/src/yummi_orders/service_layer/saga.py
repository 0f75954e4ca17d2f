"""The payment leg of the order saga: a debit queues the order, a refused debit rejects it.

Each handler runs inside the consumer runtime's unit of work (which also records the event id in the inbox
and commits); it moves the order at most once. A redelivered, duplicated or out-of-order event finds the order
already past `pending_payment` and changes nothing. A debit that arrives for an order cancelled while it was
pending emits nothing here: the cancel already emitted `orders.order.cancelled` with
`previous_status=pending_payment`, and payments refunds any debit it made for that order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from yummi_common.db import UnitOfWork
from yummi_common.logging import get_logger
from yummi_common.messaging.consumer import InboxClaim
from yummi_orders.adapters import repository as repo
from yummi_orders.domain import orders as machine
from yummi_orders.domain.orders import OrderStatus

log = get_logger(__name__)
DEFAULT_REJECT_REASON = "payment_rejected"
DEBITED = "payments.wallet.debited"


async def _pending_order(uow: UnitOfWork, order_id: str, *, event_type: str) -> Any | None:
    """The order locked for a payment transition, or None (logged) when this event must change nothing."""
    try:
        oid = uuid.UUID(order_id)
    except ValueError:
        log.error("payment event names no valid order", event_type=event_type, order_id=order_id[:64])
        return None
    row = await repo.get_order_row(uow.session, oid, lock=True)
    if row is None:
        log.error("payment event for an unknown order", event_type=event_type, order_id=order_id)
        return None
    if row.status != OrderStatus.PENDING_PAYMENT.value:
        log.info(
            "payment event ignored: order is past pending_payment",
            event_type=event_type,
            order_id=order_id,
            status=row.status,
        )
        return None
    return row


async def record_wallets_debited(
    *, uow: UnitOfWork, debits: Sequence[tuple[InboxClaim, str, str, int]]
) -> list[bool]:
    """Apply `payments.wallet.debited` events (claim, order id, transaction id, amount) once each: queue every
    pending order whose total was debited.

    One statement, committed on its own, claims the events in the inbox and, for those new to the consumer,
    moves each order while it is pending payment and appends `order.queued`; an order it does not move is
    read (rare) to log why. Returns, per event, whether it was new to the consumer (a malformed order id
    counts as applied: there is nothing to do with it, ever).
    """
    valid: list[tuple[InboxClaim, uuid.UUID, dict[str, Any]]] = []
    amounts: dict[uuid.UUID, tuple[str, int]] = {}
    for claim, order_id, transaction_id, amount_minor in debits:
        try:
            oid = uuid.UUID(order_id)
        except ValueError:
            log.error("payment event names no valid order", event_type=DEBITED, order_id=order_id[:64])
            continue  # nothing to apply, ever
        valid.append((claim, oid, {"transaction_id": transaction_id, "amount_minor": amount_minor}))
        amounts[claim.event_id] = (order_id, amount_minor)
    machine.transition(OrderStatus.PENDING_PAYMENT, OrderStatus.QUEUED)  # the move the statement makes
    claimed = await repo.queue_paid_orders(uow, valid)
    for event_id, row in claimed.items():
        order_id, amount_minor = amounts[event_id]
        if row.id is None:
            await _pending_order(uow, order_id, event_type=DEBITED)  # logs why nothing moved
        elif amount_minor != row.total_minor:
            log.error(
                "debit amount differs from the order total",
                order_id=order_id,
                amount_minor=amount_minor,
                total_minor=row.total_minor,
            )
    return [claim.event_id in claimed or claim.event_id not in amounts for claim, *_ in debits]


async def record_wallet_debit_rejected(
    *, uow: UnitOfWork, order_id: str, reason: str = "", balance_minor: int | None = None
) -> bool:
    """Reject a pending order whose debit payments refused, keeping why; False when nothing changed."""
    row = await _pending_order(uow, order_id, event_type="payments.wallet.debit_rejected")
    if row is None:
        return False
    why = "".join(ch for ch in reason if ch.isprintable())[:200] or DEFAULT_REJECT_REASON
    status = machine.transition(row.status, OrderStatus.REJECTED)
    await repo.update_order(uow.session, row.id, status=status.value, reason=why)
    await repo.add_event(uow.session, order_id=row.id, type="order.rejected", payload={"reason": why})
    return True
