"""The payment leg of the saga through the real consumer runtime: JetStream → inbox → one transition."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import event

from yummi.events.v1 import events_pb2
from yummi_common.messaging.consumer import ConsumerRuntime
from yummi_common.service import Runtime
from yummi_devstack.messages import FakeMsg, event_message
from yummi_orders.entrypoints import consumers
from yummi_orders.service_layer.orders import cancel_order

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def debited(order_id: uuid.UUID, user_id: uuid.UUID, amount: int = 3499) -> events_pb2.WalletDebited:
    return events_pb2.WalletDebited(
        order_id=str(order_id),
        user_id=str(user_id),
        amount_minor=amount,
        currency="ZAR",
        transaction_id=str(uuid.uuid4()),
        balance_minor=10_000,
    )


def rejected(order_id: uuid.UUID, user_id: uuid.UUID, reason: str) -> events_pb2.WalletDebitRejected:
    return events_pb2.WalletDebitRejected(
        order_id=str(order_id), user_id=str(user_id), amount_minor=3499, currency="ZAR", reason=reason
    )


async def test_debit_queues_the_order_once_even_when_delivered_twice_or_duplicated(harness) -> None:
    user = uuid.uuid4()
    order_id = await harness.make_order(status="pending_payment", user_id=user)
    first = uuid.uuid4()
    body = debited(order_id, user)
    await harness.publish("payments.wallet.debited", body, event_id=first)
    await harness.publish("payments.wallet.debited", body, event_id=first)  # same Nats-Msg-Id: a redelivery
    await harness.processed(first)
    second = uuid.uuid4()  # the same debit announced again under another event id
    await harness.publish("payments.wallet.debited", body, event_id=second)
    await harness.processed(second)

    row = await harness.order_row(order_id)
    assert row.status == "queued"
    assert await harness.event_types(order_id) == ["order.queued"]


async def test_debit_rejected_rejects_the_order_with_the_reason(harness) -> None:
    user = uuid.uuid4()
    order_id = await harness.make_order(status="pending_payment", user_id=user)
    event_id = uuid.uuid4()
    await harness.publish(
        "payments.wallet.debit_rejected", rejected(order_id, user, "insufficient_funds"), event_id=event_id
    )
    await harness.processed(event_id)

    row = await harness.order_row(order_id)
    assert (row.status, row.reason) == ("rejected", "insufficient_funds")
    assert await harness.event_types(order_id) == ["order.rejected"]


async def test_a_rejection_arriving_after_the_debit_changes_nothing(harness) -> None:
    user = uuid.uuid4()
    order_id = await harness.make_order(status="pending_payment", user_id=user)
    paid, late = uuid.uuid4(), uuid.uuid4()
    await harness.publish("payments.wallet.debited", debited(order_id, user), event_id=paid)
    await harness.processed(paid)
    await harness.publish(
        "payments.wallet.debit_rejected", rejected(order_id, user, "debits_blocked"), event_id=late
    )
    await harness.processed(late)

    row = await harness.order_row(order_id)
    assert (row.status, row.reason) == ("queued", None)
    assert await harness.event_types(order_id) == ["order.queued"]


async def test_a_debit_for_an_order_cancelled_while_pending_leaves_it_cancelled(
    runtime: Runtime, harness
) -> None:
    user = uuid.uuid4()
    order_id = await harness.make_order(status="pending_payment", user_id=user)
    async with runtime.uow() as uow:
        await cancel_order(uow=uow, order_id=str(order_id), user_id=str(user))
    event_id = uuid.uuid4()
    await harness.publish("payments.wallet.debited", debited(order_id, user), event_id=event_id)
    await harness.processed(event_id)

    assert (await harness.order_row(order_id)).status == "cancelled"
    assert await harness.event_types(order_id) == ["order.cancelled"]
    # payments refunds from this event when its debit won the race against the cancel
    [cancelled] = await harness.outbox_bodies("orders.order.cancelled", order_id)
    assert cancelled.previous_status == "pending_payment"


async def test_events_for_unknown_or_malformed_orders_are_absorbed(harness) -> None:
    unknown, malformed = uuid.uuid4(), uuid.uuid4()
    await harness.publish("payments.wallet.debited", debited(uuid.uuid4(), uuid.uuid4()), event_id=unknown)
    body = events_pb2.WalletDebitRejected(order_id="not-a-uuid", reason="insufficient_funds")
    await harness.publish("payments.wallet.debit_rejected", body, event_id=malformed)
    await harness.processed(unknown)
    await harness.processed(malformed)


def debit_message(event_id: uuid.UUID, body: events_pb2.WalletDebited) -> FakeMsg:
    return event_message(event_id, "payments.wallet.debited", body.SerializeToString())


async def test_a_fetched_batch_of_debits_is_applied_by_one_statement_once_each(harness) -> None:
    runtime: Runtime = harness.runtime
    subs = {sub.event_type: sub for sub in consumers.subscriptions()}
    debited_sub = subs["payments.wallet.debited"]
    assert debited_sub.batch is not None
    consumer = ConsumerRuntime(
        service="orders",
        engine=runtime.engine,
        uow_factory=runtime.uow,
        tables=runtime.tables,
        js=None,  # type: ignore[arg-type]  # handle_batch never touches JetStream
        settings=runtime.settings,
        subscriptions=[debited_sub],
    )
    user = uuid.uuid4()
    pending = [await harness.make_order(status="pending_payment", user_id=user) for _ in range(5)]
    already_queued = await harness.make_order(status="queued", user_id=user)
    bodies = [debited(order_id, user) for order_id in [*pending, already_queued, uuid.uuid4()]]
    bodies.append(
        debited(pending[0], user, amount=1)
    )  # a second debit for an order already paid in this batch
    bodies[-1].order_id = "not-a-uuid"  # and a malformed one
    event_ids = [uuid.uuid4() for _ in bodies]

    sent: list[str] = []
    placing = asyncio.current_task()

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if asyncio.current_task() is placing:
            sent.append(statement.split()[0])

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        messages = [debit_message(eid, body) for eid, body in zip(event_ids, bodies, strict=True)]
        await consumer.handle_batch(debited_sub, messages)  # type: ignore[arg-type]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert all(m.outcome == "ack" for m in messages)
    # One statement for the batch (then reads, to log why two debits moved nothing).
    assert sent[0] == "WITH"
    assert sent.count("WITH") == 1

    for order_id in pending:
        assert (await harness.order_row(order_id)).status == "queued"
        assert await harness.event_types(order_id) == ["order.queued"]
    assert await harness.event_types(already_queued) == []
    for eid in event_ids[:-1]:
        await harness.processed(eid, within=1)

    # The same events again (a redelivery after a lost ack): nothing moves twice.
    again = [debit_message(eid, body) for eid, body in zip(event_ids, bodies, strict=True)]
    await consumer.handle_batch(debited_sub, again)  # type: ignore[arg-type]
    assert all(m.outcome == "ack" for m in again)
    for order_id in pending:
        assert await harness.event_types(order_id) == ["order.queued"]
