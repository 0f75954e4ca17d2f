"""The wallet side of the order saga against real Postgres: debits, rejections, refunds, credits, races."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from yummi.events.v1 import events_pb2 as ev
from yummi_common.service import Runtime
from yummi_payments.adapters.tables import payments, wallet_transactions, wallets
from yummi_payments.service_layer import wallet as wallet_service

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def placed(order_id: uuid.UUID, user_id: uuid.UUID, total: int, currency: str = "ZAR") -> ev.OrderPlaced:
    return ev.OrderPlaced(order_id=str(order_id), user_id=str(user_id), total_minor=total, currency=currency)


def cancelled(order_id: uuid.UUID, user_id: uuid.UUID, total: int) -> ev.OrderCancelled:
    return ev.OrderCancelled(order_id=str(order_id), user_id=str(user_id), total_minor=total, currency="ZAR")


async def entries(runtime: Runtime, user_id: uuid.UUID) -> list[tuple[str, int]]:
    async with runtime.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(wallet_transactions.c.entry_type, wallet_transactions.c.amount_minor)
                .where(wallet_transactions.c.user_id == user_id)
                .order_by(wallet_transactions.c.created_at, wallet_transactions.c.id)
            )
        ).all()
    return [(r.entry_type, r.amount_minor) for r in rows]


async def balance(runtime: Runtime, user_id: uuid.UUID) -> tuple[int, bool]:
    async with runtime.engine.connect() as conn:
        row = (
            await conn.execute(
                select(wallets.c.balance_minor, wallets.c.debits_blocked).where(wallets.c.user_id == user_id)
            )
        ).one()
    return row.balance_minor, row.debits_blocked


async def ledger_sum(runtime: Runtime, user_id: uuid.UUID) -> int:
    async with runtime.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(func.coalesce(func.sum(wallet_transactions.c.amount_minor), 0)).where(
                        wallet_transactions.c.user_id == user_id
                    )
                )
            ).scalar_one()
        )


async def test_order_placed_with_enough_balance_debits_once_and_emits_debited(
    runtime, deliver, fund, emitted
):
    user, order = uuid.uuid4(), uuid.uuid4()
    await fund(user, 10_000)

    await deliver("orders.order.placed", placed(order, user, 2_500))

    assert await entries(runtime, user) == [("credit", 10_000), ("debit", -2_500)]
    assert await balance(runtime, user) == (7_500, False)
    [debited] = await emitted("payments.wallet.debited", order_id=str(order))
    assert debited.user_id == str(user)
    assert debited.amount_minor == 2_500
    assert debited.balance_minor == 7_500
    assert debited.transaction_id
    assert await emitted("payments.wallet.debit_rejected", order_id=str(order)) == []


async def test_order_placed_delivered_twice_debits_once(runtime, deliver, fund, emitted):
    user, order = uuid.uuid4(), uuid.uuid4()
    await fund(user, 10_000)
    event_id = await deliver("orders.order.placed", placed(order, user, 1_000))

    await deliver("orders.order.placed", placed(order, user, 1_000), event_id=event_id)  # redelivery: inbox
    await deliver("orders.order.placed", placed(order, user, 1_000))  # re-published under a new id

    assert await entries(runtime, user) == [("credit", 10_000), ("debit", -1_000)]
    assert await balance(runtime, user) == (9_000, False)
    assert len(await emitted("payments.wallet.debited", order_id=str(order))) == 1


async def test_order_placed_without_enough_balance_is_rejected_for_insufficient_funds(
    runtime, deliver, fund, emitted
):
    user, order = uuid.uuid4(), uuid.uuid4()
    await fund(user, 999)

    await deliver("orders.order.placed", placed(order, user, 1_000))

    assert await entries(runtime, user) == [("credit", 999)]
    [rejected] = await emitted("payments.wallet.debit_rejected", order_id=str(order))
    assert rejected.reason == "insufficient_funds"
    assert rejected.balance_minor == 999
    assert await emitted("payments.wallet.debited", order_id=str(order)) == []


async def test_order_from_a_user_without_a_wallet_gets_an_empty_wallet_and_is_rejected(
    runtime, deliver, emitted
):
    user, order = uuid.uuid4(), uuid.uuid4()

    await deliver("orders.order.placed", placed(order, user, 100))

    assert await balance(runtime, user) == (0, False)
    [rejected] = await emitted("payments.wallet.debit_rejected", order_id=str(order))
    assert rejected.reason == "insufficient_funds"


async def test_rejected_order_is_not_debited_later_when_redelivered_after_a_top_up(runtime, deliver, fund):
    user, order = uuid.uuid4(), uuid.uuid4()
    await deliver("orders.order.placed", placed(order, user, 500))
    await fund(user, 5_000)

    await deliver("orders.order.placed", placed(order, user, 500))

    assert await entries(runtime, user) == [("credit", 5_000)]


async def test_order_cancelled_after_the_debit_is_refunded_exactly_once(runtime, deliver, fund, emitted):
    user, order = uuid.uuid4(), uuid.uuid4()
    await fund(user, 3_000)
    await deliver("orders.order.placed", placed(order, user, 1_200))

    await deliver("orders.order.cancelled", cancelled(order, user, 1_200))
    await deliver("orders.order.cancelled", cancelled(order, user, 1_200))
    await deliver(
        "orders.order.failed",
        ev.OrderFailed(order_id=str(order), user_id=str(user), total_minor=1_200, currency="ZAR"),
    )

    assert await entries(runtime, user) == [("credit", 3_000), ("debit", -1_200), ("refund", 1_200)]
    assert await balance(runtime, user) == (3_000, False)
    [refunded] = await emitted("payments.wallet.refunded", order_id=str(order))
    assert refunded.amount_minor == 1_200
    assert refunded.user_id == str(user)


async def test_order_failed_after_the_debit_is_refunded(runtime, deliver, fund, emitted):
    user, order = uuid.uuid4(), uuid.uuid4()
    await fund(user, 3_000)
    await deliver("orders.order.placed", placed(order, user, 700))

    await deliver(
        "orders.order.failed",
        ev.OrderFailed(order_id=str(order), user_id=str(user), total_minor=700, currency="ZAR", reason="oos"),
    )

    assert await balance(runtime, user) == (3_000, False)
    assert len(await emitted("payments.wallet.refunded", order_id=str(order))) == 1


async def test_order_placed_arriving_after_its_cancellation_is_never_debited(runtime, deliver, fund, emitted):
    user, order = uuid.uuid4(), uuid.uuid4()
    await fund(user, 3_000)

    await deliver("orders.order.cancelled", cancelled(order, user, 1_000))
    await deliver("orders.order.placed", placed(order, user, 1_000))

    assert await entries(runtime, user) == [("credit", 3_000)]
    assert await emitted("payments.wallet.debited", order_id=str(order)) == []
    assert await emitted("payments.wallet.refunded", order_id=str(order)) == []


async def test_cancelling_a_rejected_order_refunds_nothing(runtime, deliver, emitted):
    user, order = uuid.uuid4(), uuid.uuid4()
    await deliver("orders.order.placed", placed(order, user, 1_000))

    await deliver("orders.order.cancelled", cancelled(order, user, 1_000))

    assert await entries(runtime, user) == []
    assert await emitted("payments.wallet.refunded", order_id=str(order)) == []


async def test_order_in_another_currency_is_rejected(runtime, deliver, fund, emitted):
    user, order = uuid.uuid4(), uuid.uuid4()
    await fund(user, 3_000)

    await deliver("orders.order.placed", placed(order, user, 100, currency="USD"))

    [rejected] = await emitted("payments.wallet.debit_rejected", order_id=str(order))
    assert rejected.reason == "unsupported_currency"
    assert await balance(runtime, user) == (3_000, False)


async def test_payment_credited_twice_credits_the_wallet_once(runtime, deliver, fund):
    user = uuid.uuid4()
    payment_id = await fund(user, 4_000)

    body = ev.PaymentCredited(payment_id=str(payment_id), user_id=str(user), amount_minor=4_000)
    await deliver("payments.payment.credited", body)

    assert await entries(runtime, user) == [("credit", 4_000)]
    assert await balance(runtime, user) == (4_000, False)
    async with runtime.engine.connect() as conn:
        credited = (
            await conn.execute(select(payments.c.wallet_credited).where(payments.c.id == payment_id))
        ).scalar_one()
    assert credited is True


async def test_concurrent_burst_of_orders_debits_exactly_what_the_balance_covers(
    runtime, deliver, fund, emitted
):
    user = uuid.uuid4()
    await fund(user, 20 * 150)
    orders = [uuid.uuid4() for _ in range(50)]

    await asyncio.gather(*(deliver("orders.order.placed", placed(o, user, 150)) for o in orders))

    kinds = [kind for kind, _ in await entries(runtime, user)]
    assert kinds.count("debit") == 20
    assert await balance(runtime, user) == (0, False)
    assert await ledger_sum(runtime, user) == 0
    debited = [await emitted("payments.wallet.debited", order_id=str(o)) for o in orders]
    rejected = [await emitted("payments.wallet.debit_rejected", order_id=str(o)) for o in orders]
    assert sum(len(d) for d in debited) == 20
    assert sum(len(r) for r in rejected) == 30
    assert all(len(d) + len(r) == 1 for d, r in zip(debited, rejected, strict=True))


async def test_cached_balance_always_equals_the_sum_of_the_ledger(runtime, deliver, fund):
    user = uuid.uuid4()
    await fund(user, 5_000)
    first, second = uuid.uuid4(), uuid.uuid4()
    await asyncio.gather(
        deliver("orders.order.placed", placed(first, user, 1_500)),
        deliver("orders.order.placed", placed(second, user, 2_000)),
        fund(user, 700),
    )
    await asyncio.gather(
        deliver("orders.order.cancelled", cancelled(first, user, 1_500)),
        deliver("orders.order.placed", placed(uuid.uuid4(), user, 4_000)),
    )

    cached, _ = await balance(runtime, user)
    assert cached == await ledger_sum(runtime, user)
    assert cached >= 0


async def test_chargeback_goes_below_zero_blocks_debits_until_money_comes_back(
    runtime, deliver, fund, emitted
):
    user = uuid.uuid4()
    payment_id = await fund(user, 2_000)
    await deliver("orders.order.placed", placed(uuid.uuid4(), user, 1_500))
    async with runtime.engine.connect() as conn:
        reference = (
            await conn.execute(select(payments.c.reference).where(payments.c.id == payment_id))
        ).scalar_one()

    async with runtime.uow() as uow:
        await wallet_service.charge_back(
            uow=uow, reference=str(reference), admin_id="admin-1", reason="bank dispute"
        )
        await uow.commit()

    assert await balance(runtime, user) == (-1_500, True)
    blocked_order = uuid.uuid4()
    await deliver("orders.order.placed", placed(blocked_order, user, 1))
    [rejected] = await emitted("payments.wallet.debit_rejected", order_id=str(blocked_order))
    assert rejected.reason == "debits_blocked"

    await fund(user, 1_000)
    assert await balance(runtime, user) == (-500, True)
    await fund(user, 600)
    assert await balance(runtime, user) == (100, False)
    assert await ledger_sum(runtime, user) == 100


async def test_ledger_entries_cannot_be_edited_or_deleted(runtime, fund):
    user = uuid.uuid4()
    await fund(user, 100)
    for statement in (
        "UPDATE payments.wallet_transactions SET amount_minor = 1 WHERE user_id = :u",
        "DELETE FROM payments.wallet_transactions WHERE user_id = :u",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with runtime.engine.begin() as conn:
                await conn.execute(text(statement), {"u": user})


async def test_wallet_lists_entries_newest_first_in_cursor_pages(runtime, deliver, fund):
    user = uuid.uuid4()
    await fund(user, 10_000)
    for total in (100, 200, 300, 400):
        await deliver("orders.order.placed", placed(uuid.uuid4(), user, total))

    async with runtime.uow() as uow:
        first = await wallet_service.get_wallet(session=uow.session, user_id=str(user), limit=3)
        assert first.next_cursor
        second = await wallet_service.get_wallet(
            session=uow.session, user_id=str(user), limit=3, cursor=first.next_cursor
        )

    assert first.balance_minor == 9_000
    assert [t.amount_minor for t in first.transactions] == [-400, -300, -200]
    assert [t.amount_minor for t in second.transactions] == [-100, 10_000]
    assert second.next_cursor is None


async def test_wallet_of_a_user_who_never_paid_is_zero(runtime):
    async with runtime.uow() as uow:
        view = await wallet_service.get_wallet(session=uow.session, user_id=str(uuid.uuid4()))
    assert (view.balance_minor, view.currency, view.debits_blocked, view.transactions) == (
        0,
        "ZAR",
        False,
        [],
    )


async def test_a_fetched_batch_of_placed_orders_debits_in_order_and_once(
    runtime, deliver, deliver_batch, fund, emitted
) -> None:
    rich, poor, closed_user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await fund(rich, 10_000)
    await fund(closed_user, 5_000)
    closed_order = uuid.uuid4()
    await deliver("orders.order.cancelled", cancelled(closed_order, closed_user, 1_000))  # before its debit
    orders = [uuid.uuid4() for _ in range(3)]
    poor_order = uuid.uuid4()
    batch = [
        (uuid.uuid4(), placed(orders[0], rich, 3_000)),
        (uuid.uuid4(), placed(poor_order, poor, 100)),  # a user with no wallet yet
        (uuid.uuid4(), placed(orders[1], rich, 4_000)),
        (uuid.uuid4(), placed(closed_order, closed_user, 1_000)),
        (uuid.uuid4(), placed(orders[2], rich, 5_000)),  # 3,000 left by then: refused
    ]
    messages = await deliver_batch(batch)
    assert [m.outcome for m in messages] == ["ack"] * len(batch)

    assert await entries(runtime, rich) == [("credit", 10_000), ("debit", -3_000), ("debit", -4_000)]
    assert await balance(runtime, rich) == (3_000, False)
    assert await ledger_sum(runtime, rich) == 3_000
    assert await balance(runtime, poor) == (0, False)
    assert await entries(runtime, closed_user) == [("credit", 5_000)]
    debited = [b.order_id for b in await emitted("payments.wallet.debited", user_id=str(rich))]
    assert sorted(debited) == sorted([str(orders[0]), str(orders[1])])  # one statement: one created_at
    rejected = await emitted("payments.wallet.debit_rejected", order_id=str(orders[2]))
    assert [(r.reason, r.balance_minor) for r in rejected] == [("insufficient_funds", 3_000)]
    poor_rejected = await emitted("payments.wallet.debit_rejected", order_id=str(poor_order))
    assert [r.reason for r in poor_rejected] == ["insufficient_funds"]
    assert await emitted("payments.wallet.debited", order_id=str(closed_order)) == []

    # The same batch again (acks lost): every event is a duplicate, nothing moves.
    again = await deliver_batch(batch)
    assert [m.outcome for m in again] == ["ack"] * len(batch)
    assert await balance(runtime, rich) == (3_000, False)
    assert len(await emitted("payments.wallet.debited", user_id=str(rich))) == 2
    # And one of them under a new event id (the order placed twice): the charge row stops it.
    await deliver_batch(
        [(uuid.uuid4(), placed(orders[0], rich, 3_000)), (uuid.uuid4(), placed(orders[1], rich, 4_000))]
    )
    assert await balance(runtime, rich) == (3_000, False)
    assert await ledger_sum(runtime, rich) == 3_000
