"""Event handlers of the payments context: the wallet side of the order saga, top-up credits and erasure."""

from __future__ import annotations

import uuid
from typing import TypeVar

from google.protobuf.message import Message

from yummi.events.v1 import events_pb2 as ev
from yummi_common.db import UnitOfWork
from yummi_common.messaging.consumer import InboxClaim, Subscription
from yummi_common.messaging.events import Event
from yummi_common.service import Runtime
from yummi_payments.service_layer import debits, privacy, wallet

Body = TypeVar("Body", bound=Message)


def event_body(event: Event, kind: type[Body]) -> Body:
    """The event's body as the message type its event type carries."""
    if not isinstance(event.body, kind):
        raise TypeError(f"{event.type} carries {type(event.body).__name__}, expected {kind.__name__}")
    return event.body


def _id(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ValueError(f"event carries a malformed {what}: {value!r}") from exc


async def on_order_placed(uow: UnitOfWork, event: Event, claim: InboxClaim) -> bool:
    """Debit the wallet for a placed order (or refuse it): a batch of one."""
    return (await on_orders_placed(uow, [(event, claim)]))[0]


async def on_orders_placed(uow: UnitOfWork, batch: list[tuple[Event, InboxClaim]]) -> list[bool]:
    """A fetched batch of placed orders: debited (or refused) together, claiming their events themselves."""
    debits_ = []
    for event, claim in batch:
        body = event_body(event, ev.OrderPlaced)
        debits_.append(
            debits.OrderDebit(
                claim=claim,
                order_id=_id(body.order_id, "order_id"),
                user_id=_id(body.user_id, "user_id"),
                amount_minor=body.total_minor,
                currency=body.currency,
            )
        )
    return await debits.debit_for_orders(uow=uow, debits=debits_)


async def on_order_cancelled(uow: UnitOfWork, event: Event) -> None:
    """Refund a cancelled order's debit, or make sure a late debit never happens."""
    body = event_body(event, ev.OrderCancelled)
    await wallet.refund_for_order(
        uow=uow,
        order_id=_id(body.order_id, "order_id"),
        user_id=_id(body.user_id, "user_id"),
        amount_minor=body.total_minor,
        currency=body.currency,
        why="cancelled",
    )


async def on_order_failed(uow: UnitOfWork, event: Event) -> None:
    """Refund a failed order's debit."""
    body = event_body(event, ev.OrderFailed)
    await wallet.refund_for_order(
        uow=uow,
        order_id=_id(body.order_id, "order_id"),
        user_id=_id(body.user_id, "user_id"),
        amount_minor=body.total_minor,
        currency=body.currency,
        why="failed",
    )


async def on_payment_credited(uow: UnitOfWork, event: Event, claim: InboxClaim) -> bool:
    """Credit a completed PayFast top-up to the wallet once (the claim and the payment's read are one
    statement)."""
    body = event_body(event, ev.PaymentCredited)
    return await wallet.credit_payment_once(
        uow=uow, payment_id=_id(body.payment_id, "payment_id"), claim=claim
    )


async def on_user_erased(uow: UnitOfWork, event: Event) -> None:
    """Remove the user's personal data from this context and say so."""
    body = event_body(event, ev.UserErased)
    await privacy.erase_user(uow=uow, user_id=_id(body.user_id, "user_id"))


def subscriptions(_runtime: Runtime) -> list[Subscription]:
    return [
        Subscription(
            event_type="orders.order.placed",
            handler=on_order_placed,
            name="wallet-debit",
            claims_inbox=True,  # the claim and the wallet's lock are one statement
            batch=on_orders_placed,  # a fetched batch: shared statements, one transaction
        ),
        Subscription(
            event_type="orders.order.cancelled", handler=on_order_cancelled, name="wallet-refund-cancelled"
        ),
        Subscription(event_type="orders.order.failed", handler=on_order_failed, name="wallet-refund-failed"),
        Subscription(
            event_type="payments.payment.credited",
            handler=on_payment_credited,
            name="wallet-credit",
            claims_inbox=True,
        ),
        Subscription(event_type="identity.user.erased", handler=on_user_erased, name="user-erasure"),
    ]
