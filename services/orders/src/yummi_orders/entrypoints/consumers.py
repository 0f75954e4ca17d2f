"""Event handlers of the orders context: the payment leg of the order saga, and erasure."""

from __future__ import annotations

from typing import cast

from yummi.events.v1 import events_pb2
from yummi_common.db import UnitOfWork
from yummi_common.messaging.consumer import InboxClaim, Subscription
from yummi_common.messaging.events import Event
from yummi_orders.service_layer import erasure, saga


async def on_wallet_debited(uow: UnitOfWork, event: Event, claim: InboxClaim) -> bool:
    return (await on_wallets_debited(uow, [(event, claim)]))[0]


async def on_wallets_debited(uow: UnitOfWork, batch: list[tuple[Event, InboxClaim]]) -> list[bool]:
    debits = []
    for event, claim in batch:
        body = cast(events_pb2.WalletDebited, event.body)
        debits.append((claim, body.order_id, body.transaction_id, body.amount_minor))
    return await saga.record_wallets_debited(uow=uow, debits=debits)


async def on_wallet_debit_rejected(uow: UnitOfWork, event: Event) -> None:
    body = cast(events_pb2.WalletDebitRejected, event.body)
    await saga.record_wallet_debit_rejected(
        uow=uow, order_id=body.order_id, reason=body.reason, balance_minor=body.balance_minor
    )


async def on_user_erased(uow: UnitOfWork, event: Event) -> None:
    body = cast(events_pb2.UserErased, event.body)
    await erasure.erase_user_data(uow=uow, user_id=body.user_id)


def subscriptions() -> list[Subscription]:
    """What the orders service listens to (the consumer runtime commits each handler's unit of work)."""
    return [
        Subscription(
            event_type="payments.wallet.debited",
            handler=on_wallet_debited,
            name="wallet-debited",
            claims_inbox=True,  # one statement claims the event and queues the order
            batch=on_wallets_debited,  # a fetched batch: one statement for all of it
        ),
        Subscription(
            event_type="payments.wallet.debit_rejected",
            handler=on_wallet_debit_rejected,
            name="wallet-debit-rejected",
        ),
        Subscription(event_type="identity.user.erased", handler=on_user_erased, name="user-erased"),
    ]
