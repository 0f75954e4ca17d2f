"""The runner queue under concurrency and faults, over the real OrdersService gRPC server and Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from yummi.orders.v1 import orders_pb2, orders_pb2_grpc
from yummi_common.grpc_server import bound_port, start_grpc_server
from yummi_common.messaging.events import decode_body
from yummi_common.service import Runtime
from yummi_common.timeutil import utcnow
from yummi_orders.adapters.catalog import GrpcCatalog
from yummi_orders.adapters.tables import order_events, orders
from yummi_orders.config import OrdersConfig
from yummi_orders.entrypoints import grpc_server
from yummi_orders.entrypoints.sweeper import run_lease_sweeper

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

QUEUED = 200
LEASE_SECONDS = 2  # short, yet long enough for a heartbeat on a busy shared machine
SWEEP_SECONDS = 0.2


async def event_counts(runtime: Runtime, order_ids: list[uuid.UUID]) -> dict[uuid.UUID, Counter[str]]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            select(order_events.c.order_id, order_events.c.type, func.count())
            .where(order_events.c.order_id.in_(order_ids))
            .group_by(order_events.c.order_id, order_events.c.type)
        )
        counts: dict[uuid.UUID, Counter[str]] = {oid: Counter() for oid in order_ids}
        for order_id, kind, n in rows:
            counts[order_id][kind] = n
    return counts


async def outbox_bodies(runtime: Runtime, event_type: str) -> list[Any]:
    outbox = runtime.tables.outbox
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.payload).where(outbox.c.event_type == event_type))
        return [decode_body(event_type, row.payload) for row in rows]


async def test_two_runners_over_200_queued_orders_claim_and_complete_each_exactly_once(
    orders_stub: orders_pb2_grpc.OrdersServiceStub, runtime: Runtime, harness
) -> None:
    retailer = harness.new_retailer()
    start = utcnow() - timedelta(hours=1)
    ids = await asyncio.gather(
        *(
            harness.make_order(retailer=retailer, created_at=start + timedelta(milliseconds=i))
            for i in range(QUEUED)
        )
    )

    async def runner(name: str) -> list[str]:
        """Claim, then ack, until the queue answers empty (the loop of a real runner, minus the retailer)."""
        done = []
        while True:
            reply = await orders_stub.ClaimNextOrder(
                orders_pb2.ClaimNextOrderRequest(runner_id=name, retailer=retailer)
            )
            if not reply.found:
                return done
            assert (reply.order.status, reply.order.runner_id) == ("claimed", name)
            acked = await orders_stub.AckOrder(
                orders_pb2.AckOrderRequest(
                    order_id=reply.order.id,
                    runner_id=name,
                    outcome="completed",
                    retailer_reference=f"{name}-ref",
                )
            )
            assert acked.status == "completed"
            done.append(reply.order.id)

    first, second = await asyncio.gather(runner("runner-1"), runner("runner-2"))

    assert len(first) + len(second) == QUEUED, "every order is claimed once: none lost, none twice"
    assert set(first).isdisjoint(second)
    assert {uuid.UUID(i) for i in first + second} == set(ids)
    assert first and second, "both runners took part"
    counts = await event_counts(runtime, list(ids))
    assert all(c == Counter({"order.claimed": 1, "order.completed": 1}) for c in counts.values()), counts
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(orders).where(orders.c.id.in_(ids)))).all()
    assert {r.status for r in rows} == {"completed"}
    assert all(r.retailer_reference == f"{r.runner_id}-ref" for r in rows)
    completed = Counter(body.order_id for body in await outbox_bodies(runtime, "orders.order.completed"))
    assert all(completed[str(order_id)] == 1 for order_id in ids)


@pytest_asyncio.fixture(loop_scope="session")
async def short_lease_stub(
    runtime: Runtime, catalog: GrpcCatalog
) -> AsyncIterator[orders_pb2_grpc.OrdersServiceStub]:
    """OrdersService granting 2-second leases, the lease sweeper running every 0.2 s (as `serve` runs it)."""
    config = OrdersConfig.from_settings(
        runtime.settings.model_copy(
            update={"order_lease_seconds": LEASE_SECONDS, "order_lease_sweep_seconds": SWEEP_SECONDS}
        )
    )
    assert (config.lease_seconds, config.sweep_interval_seconds) == (LEASE_SECONDS, SWEEP_SECONDS)
    servicer = grpc_server.OrdersServicer(runtime=runtime, catalog=catalog, config=config)
    server, _health = await start_grpc_server(
        addr="127.0.0.1:0", register=lambda s: grpc_server.register(s, servicer)
    )
    stop = asyncio.Event()
    sweeper = asyncio.create_task(
        run_lease_sweeper(
            uow_factory=runtime.uow,
            max_attempts=config.max_attempts,
            interval=config.sweep_interval_seconds,
            stop=stop,
        )
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{bound_port(server)}")
    try:
        yield orders_pb2_grpc.OrdersServiceStub(channel)
    finally:
        stop.set()
        await sweeper
        await channel.close()
        await server.stop(grace=None)


async def test_a_runner_killed_mid_lease_loses_the_order_to_the_next_runner_which_completes_it_once(
    short_lease_stub: orders_pb2_grpc.OrdersServiceStub, harness
) -> None:
    retailer = harness.new_retailer()
    order_id = await harness.make_order(retailer=retailer)
    stub = short_lease_stub

    claim = await stub.ClaimNextOrder(orders_pb2.ClaimNextOrderRequest(runner_id="doomed", retailer=retailer))
    assert claim.found and claim.order.id == str(order_id)

    async def heartbeats() -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            await stub.HeartbeatOrder(orders_pb2.HeartbeatRequest(order_id=str(order_id), runner_id="doomed"))

    alive = asyncio.create_task(heartbeats())
    await asyncio.sleep(LEASE_SECONDS * 2.5)  # heartbeats hold the order well past its first lease
    assert (await harness.order_row(order_id)).status == "claimed"
    assert not alive.done()
    alive.cancel()  # the runner dies: no more heartbeats, no ack
    with contextlib.suppress(asyncio.CancelledError):
        await alive

    async def requeued() -> bool:
        return (await harness.order_row(order_id)).status == "queued"

    for _ in range(50):
        if await requeued():
            break
        await asyncio.sleep(0.1)
    row = await harness.order_row(order_id)
    assert (row.status, row.attempts, row.runner_id) == ("queued", 1, None)

    again = await stub.ClaimNextOrder(
        orders_pb2.ClaimNextOrderRequest(runner_id="rescuer", retailer=retailer)
    )
    assert again.found and again.order.id == str(order_id)
    done = await stub.AckOrder(
        orders_pb2.AckOrderRequest(order_id=str(order_id), runner_id="rescuer", outcome="completed")
    )
    assert done.status == "completed"
    with pytest.raises(grpc.aio.AioRpcError) as late:  # the dead runner's ack, had it come back
        await stub.AckOrder(
            orders_pb2.AckOrderRequest(order_id=str(order_id), runner_id="doomed", outcome="completed")
        )
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await harness.event_types(order_id) == [
        "order.claimed",
        "order.requeued",
        "order.claimed",
        "order.completed",
    ]
    assert len(await harness.outbox_bodies("orders.order.completed", order_id)) == 1
