"""The runner queue: claims under a lease, heartbeats and acks by the holder only, and the lease sweeper."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from yummi_common.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from yummi_common.service import Runtime
from yummi_common.timeutil import utcnow
from yummi_orders.entrypoints.sweeper import sweep_once
from yummi_orders.service_layer.queue import ack_order, claim_next_order, heartbeat_order

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
LEASE = 300


async def claim(runtime: Runtime, runner: str, retailer: str):
    async with runtime.uow() as uow:
        return await claim_next_order(uow=uow, runner_id=runner, retailer=retailer, lease_seconds=LEASE)


async def ack(runtime: Runtime, order_id: uuid.UUID, runner: str, outcome: str, **extra: str):
    async with runtime.uow() as uow:
        return await ack_order(uow=uow, order_id=str(order_id), runner_id=runner, outcome=outcome, **extra)


async def test_claim_takes_the_oldest_queued_order_and_leases_it(runtime: Runtime, harness) -> None:
    retailer = harness.new_retailer()
    now = utcnow()
    newer = await harness.make_order(retailer=retailer, created_at=now - timedelta(minutes=1))
    older = await harness.make_order(retailer=retailer, created_at=now - timedelta(minutes=5))
    await harness.make_order(retailer=retailer, status="pending_payment", created_at=now - timedelta(hours=1))

    order = await claim(runtime, "runner-a", retailer)
    assert order is not None and order.id == older
    assert (order.status, order.runner_id) == ("claimed", "runner-a")
    assert timedelta(seconds=LEASE - 30) < order.lease_expires_at - utcnow() <= timedelta(seconds=LEASE + 1)
    assert [e.type for e in order.events] == ["order.claimed"]
    assert (await claim(runtime, "runner-a", retailer)).id == newer
    assert await claim(runtime, "runner-a", retailer) is None


async def test_two_concurrent_claimers_over_50_orders_claim_each_exactly_once(
    runtime: Runtime, harness
) -> None:
    retailer = harness.new_retailer()
    start = utcnow() - timedelta(hours=1)
    ids = {
        await harness.make_order(retailer=retailer, created_at=start + timedelta(seconds=i))
        for i in range(50)
    }

    async def claimer(runner: str) -> list[uuid.UUID]:
        got = []
        while (order := await claim(runtime, runner, retailer)) is not None:
            got.append(order.id)
        return got

    first, second = await asyncio.gather(claimer("runner-1"), claimer("runner-2"))
    assert len(first) + len(second) == 50
    assert set(first).isdisjoint(second)
    assert set(first) | set(second) == ids
    for runner, claimed in (("runner-1", first), ("runner-2", second)):
        for order_id in claimed:
            row = await harness.order_row(order_id)
            assert (row.status, row.runner_id) == ("claimed", runner)


async def test_claim_validates_the_runner_and_retailer(runtime: Runtime) -> None:
    with pytest.raises(InvalidArgument):
        await claim(runtime, "", "woolworths")
    with pytest.raises(InvalidArgument):
        await claim(runtime, "runner", "r" * 65)


async def test_heartbeat_extends_the_lease_of_the_holder_only(runtime: Runtime, harness) -> None:
    soon = utcnow() + timedelta(seconds=10)
    order_id = await harness.make_order(status="claimed", runner_id="runner-a", lease_expires_at=soon)
    async with runtime.uow() as uow:
        expires = await heartbeat_order(
            uow=uow, order_id=str(order_id), runner_id="runner-a", lease_seconds=LEASE
        )
    assert expires > soon + timedelta(seconds=LEASE - 60)
    with pytest.raises(PermissionDenied):
        async with runtime.uow() as uow:
            await heartbeat_order(uow=uow, order_id=str(order_id), runner_id="runner-b", lease_seconds=LEASE)
    queued = await harness.make_order(status="queued")
    with pytest.raises(Conflict):
        async with runtime.uow() as uow:
            await heartbeat_order(uow=uow, order_id=str(queued), runner_id="runner-a", lease_seconds=LEASE)
    with pytest.raises(NotFound):
        async with runtime.uow() as uow:
            await heartbeat_order(
                uow=uow, order_id=str(uuid.uuid4()), runner_id="runner-a", lease_seconds=LEASE
            )


async def test_ack_completed_by_the_holder_completes_and_emits_completed(runtime: Runtime, harness) -> None:
    lease = utcnow() + timedelta(minutes=5)
    order_id = await harness.make_order(status="claimed", runner_id="runner-a", lease_expires_at=lease)
    order = await ack(runtime, order_id, "runner-a", "completed", retailer_reference="WW-123")
    assert (order.status, order.retailer_reference, order.lease_expires_at) == ("completed", "WW-123", None)
    [completed] = await harness.outbox_bodies("orders.order.completed", order_id)
    assert (completed.retailer_reference, completed.total_minor) == ("WW-123", 3499)

    again = await ack(runtime, order_id, "runner-a", "completed", retailer_reference="WW-123")
    assert again.status == "completed"
    assert await harness.event_types(order_id) == ["order.completed"]
    assert len(await harness.outbox_bodies("orders.order.completed", order_id)) == 1
    with pytest.raises(Conflict):
        await ack(runtime, order_id, "runner-a", "failed")


async def test_ack_failed_fails_the_order_and_emits_failed_so_payments_refunds(
    runtime: Runtime, harness
) -> None:
    lease = utcnow() + timedelta(minutes=5)
    order_id = await harness.make_order(status="claimed", runner_id="runner-a", lease_expires_at=lease)
    order = await ack(runtime, order_id, "runner-a", "failed", notes="store out of stock")
    assert (order.status, order.reason) == ("failed", "store out of stock")
    [failed] = await harness.outbox_bodies("orders.order.failed", order_id)
    assert (failed.reason, failed.total_minor) == ("store out of stock", 3499)


async def test_ack_by_a_runner_not_holding_the_lease_is_permission_denied(runtime: Runtime, harness) -> None:
    lease = utcnow() + timedelta(minutes=5)
    order_id = await harness.make_order(status="claimed", runner_id="runner-a", lease_expires_at=lease)
    with pytest.raises(PermissionDenied):
        await ack(runtime, order_id, "runner-b", "completed")
    row = await harness.order_row(order_id)
    assert (row.status, row.runner_id) == ("claimed", "runner-a")
    assert await harness.event_types(order_id) == []


@pytest.mark.parametrize("status", ["pending_payment", "queued", "cancelled", "rejected"])
async def test_ack_of_an_order_that_is_not_claimed_is_a_conflict(
    runtime: Runtime, harness, status: str
) -> None:
    order_id = await harness.make_order(status=status, runner_id="runner-a")
    with pytest.raises(Conflict):
        await ack(runtime, order_id, "runner-a", "completed")
    assert (await harness.order_row(order_id)).status == status


async def test_ack_validates_its_input(runtime: Runtime, harness) -> None:
    order_id = await harness.make_order(status="claimed", runner_id="runner-a", lease_expires_at=utcnow())
    with pytest.raises(InvalidArgument):
        await ack(runtime, order_id, "runner-a", "done")
    with pytest.raises(InvalidArgument):
        await ack(runtime, order_id, "runner-a", "completed", notes="x" * 1001)
    with pytest.raises(NotFound):
        await ack(runtime, "not-an-id", "runner-a", "completed")  # type: ignore[arg-type]


async def test_expired_lease_returns_the_order_to_the_queue_with_an_attempt_counted(
    runtime: Runtime, harness
) -> None:
    retailer = harness.new_retailer()
    past = utcnow() - timedelta(seconds=1)
    order_id = await harness.make_order(
        status="claimed", retailer=retailer, runner_id="runner-a", lease_expires_at=past
    )
    live = await harness.make_order(
        status="claimed",
        retailer=retailer,
        runner_id="runner-b",
        lease_expires_at=utcnow() + timedelta(minutes=5),
    )
    assert await sweep_once(uow_factory=runtime.uow, max_attempts=5) >= 1

    row = await harness.order_row(order_id)
    assert (row.status, row.attempts, row.runner_id, row.lease_expires_at) == ("queued", 1, None, None)
    assert await harness.event_types(order_id) == ["order.requeued"]
    assert (await harness.order_row(live)).status == "claimed"
    with pytest.raises(Conflict):
        await ack(runtime, order_id, "runner-a", "completed")  # the old holder lost it
    assert (await claim(runtime, "runner-c", retailer)).id == order_id


async def test_an_order_whose_lease_expires_max_attempts_times_fails_and_is_refunded(
    runtime: Runtime, harness
) -> None:
    past = utcnow() - timedelta(seconds=1)
    order_id = await harness.make_order(
        status="claimed", runner_id="runner-a", lease_expires_at=past, attempts=4
    )
    await sweep_once(uow_factory=runtime.uow, max_attempts=5)

    row = await harness.order_row(order_id)
    assert (row.status, row.attempts, row.reason) == ("failed", 5, "lease_expired")
    assert await harness.event_types(order_id) == ["order.failed"]
    [failed] = await harness.outbox_bodies("orders.order.failed", order_id)
    assert failed.reason == "lease_expired"
