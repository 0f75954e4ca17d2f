"""Money is conserved under a storm: thousands of concurrent, duplicated and out-of-order wallet events.

A seeded plan of top-ups, orders, cancellations, failures and chargebacks over 20 wallets is delivered through
the real consumer path (inbox row + handler + commit) with bounded concurrency; about one delivery in six is
repeated, under the same event id (a redelivery) or a new one (a re-publication). Cancellations may overtake
the order they cancel. Afterwards every wallet must add up, and no cause may have moved money twice.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from yummi.events.v1 import events_pb2 as ev
from yummi_common.errors import Conflict
from yummi_common.messaging.events import decode_body
from yummi_common.service import Runtime
from yummi_payments.adapters.tables import (
    chargebacks,
    messaging,
    order_charges,
    payments,
    wallet_transactions,
    wallets,
)
from yummi_payments.service_layer import wallet as wallet_service

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SEED = 20_251_126
WALLETS = 20
OPERATIONS = 2_000
CONCURRENCY = 16
REPEAT_SHARE = 0.15


@dataclass
class Plan:
    """What the storm does, and what it knows afterwards (which chargebacks went through)."""

    users: list[uuid.UUID]
    topups: dict[uuid.UUID, tuple[uuid.UUID, int]] = field(default_factory=dict)  # payment -> (user, amount)
    orders: dict[uuid.UUID, tuple[uuid.UUID, int]] = field(default_factory=dict)  # order -> (user, amount)
    closed: set[uuid.UUID] = field(default_factory=set)  # orders that were cancelled or failed
    charged_back: set[uuid.UUID] = field(default_factory=set)
    refused_chargebacks: int = 0
    steps: list[tuple[str, uuid.UUID, uuid.UUID]] = field(default_factory=list)  # (kind, subject, event id)


def make_plan(rng: random.Random) -> Plan:
    plan = Plan(users=[uuid.uuid4() for _ in range(WALLETS)])
    by_user: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    topups_by_user: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    while len(plan.steps) < OPERATIONS:
        user = rng.choice(plan.users)
        roll = rng.random()
        if roll < 0.28:
            payment_id, amount = uuid.uuid4(), rng.randrange(500, 20_000)
            plan.topups[payment_id] = (user, amount)
            topups_by_user[user].append(payment_id)
            step: tuple[str, Any] = ("credit", payment_id)
        elif roll < 0.72 or not by_user[user]:
            order_id, amount = uuid.uuid4(), rng.randrange(100, 8_000)
            plan.orders[order_id] = (user, amount)
            by_user[user].append(order_id)
            step = ("place", order_id)
        elif roll < 0.97:
            order_id = rng.choice(by_user[user])
            plan.closed.add(order_id)
            step = (rng.choice(["cancel", "fail"]), order_id)
        else:
            if not topups_by_user[user]:
                continue
            step = ("chargeback", rng.choice(topups_by_user[user]))  # sometimes the same payment again
        event_id = uuid.UUID(int=rng.getrandbits(128))
        plan.steps.append((step[0], step[1], event_id))
        if step[0] != "chargeback" and rng.random() < REPEAT_SHARE:
            # a redelivery (same event id: the inbox stops it) or a re-publication (new id: the ledger does)
            again = event_id if rng.random() < 0.5 else uuid.UUID(int=rng.getrandbits(128))
            plan.steps.append((step[0], step[1], again))
    rng.shuffle(plan.steps)  # out of order: a cancellation may come before the order it cancels
    return plan


async def run_step(
    plan: Plan, kind: str, key: uuid.UUID, event_id: uuid.UUID, deliver: Any, runtime: Runtime
) -> None:
    if kind == "credit":
        user, amount = plan.topups[key]
        body: Any = ev.PaymentCredited(
            payment_id=str(key), user_id=str(user), amount_minor=amount, currency="ZAR"
        )
        await deliver("payments.payment.credited", body, event_id=event_id)
    elif kind == "place":
        user, amount = plan.orders[key]
        body = ev.OrderPlaced(order_id=str(key), user_id=str(user), total_minor=amount, currency="ZAR")
        await deliver("orders.order.placed", body, event_id=event_id)
    elif kind in ("cancel", "fail"):
        user, amount = plan.orders[key]
        if kind == "cancel":
            body = ev.OrderCancelled(order_id=str(key), user_id=str(user), total_minor=amount, currency="ZAR")
            await deliver("orders.order.cancelled", body, event_id=event_id)
        else:
            body = ev.OrderFailed(order_id=str(key), user_id=str(user), total_minor=amount, currency="ZAR")
            await deliver("orders.order.failed", body, event_id=event_id)
    else:
        async with runtime.engine.connect() as conn:
            reference = (
                await conn.execute(select(payments.c.reference).where(payments.c.id == key))
            ).scalar_one()
        try:
            async with runtime.uow() as uow:
                await wallet_service.charge_back(
                    uow=uow, reference=str(reference), admin_id="admin-storm", reason="disputed at the bank"
                )
                await uow.commit()
        except Conflict:
            plan.refused_chargebacks += 1  # this payment was charged back already
        else:
            plan.charged_back.add(key)


async def fetch(runtime: Runtime, query: Any) -> list[Any]:
    async with runtime.engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def test_a_storm_of_concurrent_duplicated_wallet_events_moves_every_cent_exactly_once(
    runtime: Runtime, deliver
) -> None:
    plan = make_plan(random.Random(SEED))
    await _insert_complete_payments(runtime, plan)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def bounded(kind: str, key: uuid.UUID, event_id: uuid.UUID) -> None:
        async with gate:
            await run_step(plan, kind, key, event_id, deliver, runtime)

    await asyncio.gather(*(bounded(*step) for step in plan.steps))

    users = plan.users
    entries = await fetch(
        runtime,
        select(wallet_transactions)
        .where(wallet_transactions.c.user_id.in_(users))
        .order_by(wallet_transactions.c.created_at, wallet_transactions.c.id),
    )
    held = {r.user_id: r for r in await fetch(runtime, select(wallets).where(wallets.c.user_id.in_(users)))}
    charges = {
        r.order_id: r
        for r in await fetch(
            runtime, select(order_charges).where(order_charges.c.order_id.in_(list(plan.orders)))
        )
    }

    # Each wallet's cached balance is the sum of its ledger, and each entry's running balance follows on.
    by_user: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for entry in entries:
        by_user[entry.user_id].append(entry)
    for user in users:
        running = 0
        for entry in by_user[user]:
            running += entry.amount_minor
            assert entry.balance_after_minor == running, (
                f"lost update in {user}'s ledger at {entry.cause_key}"
            )
            if entry.entry_type == "debit":
                assert entry.balance_after_minor >= 0, "a debit overdrew a wallet"
        assert held[user].balance_minor == running
        assert held[user].balance_minor >= 0 or held[user].debits_blocked, "negative only after a chargeback"

    # Every top-up credited exactly once; chargebacks at most once, as the chargebacks table says.
    per_payment = Counter((e.payment_id, e.entry_type) for e in entries if e.payment_id is not None)
    assert all(per_payment[(p, "credit")] == 1 for p in plan.topups), "a top-up credited twice or never"
    assert {p for (p, kind), n in per_payment.items() if kind == "chargeback" and n == 1} == plan.charged_back
    assert all(n == 1 for (_, kind), n in per_payment.items() if kind == "chargeback")
    recorded = await fetch(runtime, select(chargebacks.c.payment_id).where(chargebacks.c.user_id.in_(users)))
    assert sorted(r.payment_id for r in recorded) == sorted(plan.charged_back)
    credited_flags = await fetch(
        runtime, select(payments.c.wallet_credited).where(payments.c.id.in_(list(plan.topups)))
    )
    assert all(r.wallet_credited for r in credited_flags)

    # Every order debited at most once, refunded only after a debit and at most once, as its charge row says.
    per_order = Counter((e.order_id, e.entry_type) for e in entries if e.order_id is not None)
    amounts = {(e.order_id, e.entry_type): -e.amount_minor for e in entries if e.order_id is not None}
    for order_id, (_user, amount) in plan.orders.items():
        debits, refunds = per_order[(order_id, "debit")], per_order[(order_id, "refund")]
        status = charges[order_id].status
        expected = {"debited": (1, 0), "refunded": (1, 1), "rejected": (0, 0), "closed_before_debit": (0, 0)}
        assert (debits, refunds) == expected[status], f"order {order_id} is {status} with {debits}/{refunds}"
        if debits:
            assert amounts[(order_id, "debit")] == amount
        if refunds:
            assert amounts[(order_id, "refund")] == -amount
        if order_id in plan.closed:
            assert status != "debited", "a cancelled or failed order kept its debit"

    # Conservation: what is in the wallets is what came in, less what was charged back and what orders hold.
    came_in = sum(amount for _, amount in plan.topups.values())
    taken_back = sum(plan.topups[p][1] for p in plan.charged_back)
    spent = sum(plan.orders[o][1] for o, charge in charges.items() if charge.status == "debited")
    assert sum(w.balance_minor for w in held.values()) == came_in - taken_back - spent

    # The saga heard one answer per order: debited or rejected, once; and one refund per refunded order.
    announced = await _outbox_counts(runtime, set(plan.orders))
    for order_id, charge in charges.items():
        answer = (
            announced[("payments.wallet.debited", order_id)],
            announced[("payments.wallet.debit_rejected", order_id)],
        )
        debited_once = charge.status in ("debited", "refunded")
        if charge.status == "closed_before_debit":
            assert answer == (0, 0)
        else:
            assert answer == ((1, 0) if debited_once else (0, 1)), f"order {order_id}: {answer}"
        assert announced[("payments.wallet.refunded", order_id)] == (1 if charge.status == "refunded" else 0)

    statuses = Counter(charge.status for charge in charges.values())
    assert statuses["debited"] and statuses["refunded"] and statuses["rejected"], (
        statuses
    )  # the storm covered them
    assert plan.charged_back and len(plan.steps) >= OPERATIONS


async def _insert_complete_payments(runtime: Runtime, plan: Plan) -> None:
    """The top-ups as PayFast's verified ITNs leave them: complete, not yet credited."""
    rows = [
        {
            "id": payment_id,
            "reference": uuid.uuid4(),
            "user_id": user,
            "amount_minor": amount,
            "currency": "ZAR",
            "status": "complete",
            "payfast_status": "COMPLETE",
        }
        for payment_id, (user, amount) in plan.topups.items()
    ]
    async with runtime.engine.begin() as conn:
        await conn.execute(payments.insert(), rows)


async def _outbox_counts(runtime: Runtime, order_ids: set[uuid.UUID]) -> Counter[tuple[str, uuid.UUID]]:
    kinds = ("payments.wallet.debited", "payments.wallet.debit_rejected", "payments.wallet.refunded")
    rows = await fetch(
        runtime,
        select(messaging.outbox.c.event_type, messaging.outbox.c.payload).where(
            messaging.outbox.c.event_type.in_(kinds)
        ),
    )
    counts: Counter[tuple[str, uuid.UUID]] = Counter()
    wanted = {str(o) for o in order_ids}
    for row in rows:
        body = decode_body(row.event_type, row.payload)
        if body.order_id in wanted:
            counts[(row.event_type, uuid.UUID(body.order_id))] += 1
    return counts
