"""Idempotency-Key kept on the order: one order per user and key, whatever the gateway still remembers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import grpc
import pytest
from sqlalchemy import event, update

from yummi.catalog.v1 import catalog_pb2
from yummi.orders.v1 import orders_pb2
from yummi_common.errors import InvalidArgument
from yummi_common.grpc_client import problem_errors
from yummi_common.service import Runtime
from yummi_orders.adapters.catalog import GrpcCatalog
from yummi_orders.adapters.tables import orders
from yummi_orders.domain.orders import Order
from yummi_orders.service_layer import basket as basket_svc
from yummi_orders.service_layer.orders import place_order

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
CHEESE_ID = "6f1d2a3b-0000-4000-8000-000000000005"
LINES = [("W-MILK", 2), ("W-BREAD", 1)]
KEY_REUSED = [{"field": "Idempotency-Key", "message": "already used with another request"}]


def new_key() -> str:
    return f"order-{uuid.uuid4()}"


async def place(
    runtime: Runtime,
    catalog: GrpcCatalog,
    user: uuid.UUID,
    key: str = "",
    *,
    lines: Sequence[tuple[str, int]] = LINES,
    notes: str = "gate",
) -> Order:
    async with runtime.uow() as uow:
        return await place_order(
            uow=uow,
            catalog=catalog,
            user_id=str(user),
            retailer="woolworths",
            lines=lines,
            notes=notes,
            idempotency_key=key,
        )


async def checkout(
    runtime: Runtime, catalog: GrpcCatalog, user: uuid.UUID, key: str, notes: str = ""
) -> Order:
    async with runtime.uow() as uow:
        return await basket_svc.checkout_basket(
            uow=uow, catalog=catalog, user_id=str(user), notes=notes, idempotency_key=key
        )


async def set_item(
    runtime: Runtime, catalog: GrpcCatalog, user: uuid.UUID, product_id: str, quantity: int
) -> None:
    async with runtime.uow() as uow:
        await basket_svc.set_basket_item(
            uow=uow, catalog=catalog, user_id=str(user), product_id=product_id, quantity=quantity
        )


async def basket_lines(runtime: Runtime, catalog: GrpcCatalog, user: uuid.UUID) -> list[tuple[str, int]]:
    async with runtime.uow() as uow:
        priced = await basket_svc.get_basket(uow=uow, catalog=catalog, user_id=str(user))
    return [(line.item.product_id, line.item.quantity) for line in priced.lines]


async def set_status(runtime: Runtime, order_id: uuid.UUID, status: str) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(update(orders).where(orders.c.id == order_id).values(status=status))


async def test_the_same_key_twice_places_one_order_and_answers_it_as_it_is_now(
    runtime: Runtime, catalog: GrpcCatalog, harness
) -> None:
    user = uuid.uuid4()
    key = new_key()
    first = await place(runtime, catalog, user, key)
    await set_status(runtime, first.id, "queued")  # paid meanwhile
    # Duplicate lines, spacing and the retailer's case do not make it another request.
    again = await place(runtime, catalog, user, key, lines=[(" W-MILK", 2), ("W-BREAD ", 1)], notes=" gate ")
    assert again.id == first.id
    assert again.status == "queued"
    assert (again.total_minor, again.items) == (first.total_minor, first.items)
    assert [e.type for e in again.events] == ["order.placed"]
    assert await harness.count_orders_of(user) == 1
    assert len(await harness.outbox_bodies("orders.order.placed", first.id)) == 1
    assert await harness.event_types(first.id) == ["order.placed"]
    row = await harness.order_row(first.id)
    assert row.idempotency_key == key and row.idempotency_fingerprint


async def test_concurrent_requests_with_one_key_place_exactly_one_order(
    runtime: Runtime, catalog: GrpcCatalog, harness
) -> None:
    user = uuid.uuid4()
    key = new_key()
    placed = await asyncio.gather(*(place(runtime, catalog, user, key) for _ in range(6)))
    assert len({order.id for order in placed}) == 1
    assert await harness.count_orders_of(user) == 1
    assert len(await harness.outbox_bodies("orders.order.placed", placed[0].id)) == 1
    assert await harness.event_types(placed[0].id) == ["order.placed"]


async def test_the_same_key_with_another_request_is_refused_and_stores_nothing(
    runtime: Runtime, catalog: GrpcCatalog, harness
) -> None:
    user = uuid.uuid4()
    key = new_key()
    await place(runtime, catalog, user, key)
    for lines, notes in ((LINES, "another note"), ([("W-MILK", 3)], "gate")):
        with pytest.raises(InvalidArgument) as info:
            await place(runtime, catalog, user, key, lines=lines, notes=notes)
        assert info.value.errors == KEY_REUSED
    assert await harness.count_orders_of(user) == 1


async def test_without_a_key_every_request_places_an_order(
    runtime: Runtime, catalog: GrpcCatalog, harness
) -> None:
    user = uuid.uuid4()
    first = await place(runtime, catalog, user)
    second = await place(runtime, catalog, user)
    assert first.id != second.id
    assert await harness.count_orders_of(user) == 2
    assert (await harness.order_row(first.id)).idempotency_key is None


async def test_keys_are_per_user(runtime: Runtime, catalog: GrpcCatalog) -> None:
    key = new_key()
    mine = await place(runtime, catalog, uuid.uuid4(), key)
    theirs = await place(runtime, catalog, uuid.uuid4(), key)
    assert mine.id != theirs.id


async def test_a_retry_gets_the_placed_order_even_when_it_could_not_be_priced_now(
    runtime: Runtime, catalog: GrpcCatalog, fake_catalog, harness
) -> None:
    servicer, _ = fake_catalog
    user = uuid.uuid4()
    key = new_key()
    first = await place(runtime, catalog, user, key, lines=[("W-CHEESE", 1)])
    original = servicer.products[CHEESE_ID]
    gone = catalog_pb2.Product()
    gone.CopyFrom(original)
    gone.available = False
    servicer.products[CHEESE_ID] = gone
    try:
        again = await place(runtime, catalog, user, key, lines=[("W-CHEESE", 1)])
        with pytest.raises(InvalidArgument):  # a new key still gets the pricing rules
            await place(runtime, catalog, user, new_key(), lines=[("W-CHEESE", 1)])
    finally:
        servicer.products[CHEESE_ID] = original
    assert again.id == first.id
    assert await harness.count_orders_of(user) == 1


async def test_a_malformed_key_is_invalid(runtime: Runtime, catalog: GrpcCatalog, harness) -> None:
    user = uuid.uuid4()
    for key in ("x" * 256, "tab\there", "   "):
        with pytest.raises(InvalidArgument) as info:
            await place(runtime, catalog, user, key)
        assert [e["field"] for e in info.value.errors] == ["Idempotency-Key"]
    assert await harness.count_orders_of(user) == 0


async def test_checkout_with_one_key_twice_places_one_order_and_empties_the_basket_once(
    runtime: Runtime, catalog: GrpcCatalog, harness
) -> None:
    user = uuid.uuid4()
    key = new_key()
    await set_item(runtime, catalog, user, "W-MILK", 2)
    first = await checkout(runtime, catalog, user, key, notes="no substitutes")
    assert await basket_lines(runtime, catalog, user) == []
    # The retry finds the basket empty: it gets the order, not "the basket is empty".
    again = await checkout(runtime, catalog, user, key, notes="no substitutes")
    assert again.id == first.id
    # The shopper fills the basket again; a late retry neither orders it nor empties it.
    await set_item(runtime, catalog, user, "W-BREAD", 1)
    late = await checkout(runtime, catalog, user, key, notes="no substitutes")
    assert late.id == first.id
    assert await basket_lines(runtime, catalog, user) == [("W-BREAD", 1)]
    assert await harness.count_orders_of(user) == 1
    assert len(await harness.outbox_bodies("orders.order.placed", first.id)) == 1
    # The same key with other notes, or on placing an order, is another request.
    with pytest.raises(InvalidArgument) as info:
        await checkout(runtime, catalog, user, key, notes="leave at the door")
    assert info.value.errors == KEY_REUSED
    with pytest.raises(InvalidArgument) as info:
        await place(runtime, catalog, user, key)
    assert info.value.errors == KEY_REUSED
    assert await harness.count_orders_of(user) == 1


async def test_concurrent_checkouts_with_one_key_place_one_order(
    runtime: Runtime, catalog: GrpcCatalog, harness
) -> None:
    user = uuid.uuid4()
    key = new_key()
    await set_item(runtime, catalog, user, "W-MILK", 1)
    placed = await asyncio.gather(*(checkout(runtime, catalog, user, key) for _ in range(4)))
    assert len({order.id for order in placed}) == 1
    assert await harness.count_orders_of(user) == 1
    assert await basket_lines(runtime, catalog, user) == []


async def test_over_grpc_the_key_is_honoured_and_reuse_is_invalid_argument(orders_stub, harness) -> None:
    user = str(uuid.uuid4())
    request = orders_pb2.PlaceOrderRequest(
        user_id=user,
        retailer="woolworths",
        items=[orders_pb2.OrderLineRequest(product_id="W-MILK", quantity=1)],
        idempotency_key=new_key(),
    )
    first = await orders_stub.PlaceOrder(request)
    again = await orders_stub.PlaceOrder(request)
    assert again.id == first.id
    assert await harness.count_orders_of(uuid.UUID(user)) == 1
    other = orders_pb2.PlaceOrderRequest()
    other.CopyFrom(request)
    other.notes = "another note"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await orders_stub.PlaceOrder(other)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem_errors(info.value) == KEY_REUSED


async def statements_to_place(runtime: Runtime, catalog: GrpcCatalog, key: str) -> list[str]:
    """The statements placing one order sends to Postgres, each with the isolation it ran in."""
    sent: list[str] = []
    placing = asyncio.current_task()  # not the relay's or the gauges' statements on the same engine

    def record(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if asyncio.current_task() is not placing:
            return
        isolation = conn.get_execution_options().get("isolation_level", "transaction")
        sent.append(f"{statement.split()[0]} ({isolation})")

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        async with runtime.uow() as uow:
            await place_order(
                uow=uow,
                catalog=catalog,
                user_id=str(uuid.uuid4()),
                retailer="woolworths",
                lines=LINES,
                idempotency_key=key,
            )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent


async def test_a_keyed_order_costs_no_more_statements_than_one_without_a_key(
    runtime: Runtime, catalog: GrpcCatalog
) -> None:
    plain = await statements_to_place(runtime, catalog, "")
    keyed = await statements_to_place(runtime, catalog, new_key())
    # The order, its history entry and its outbox row in one statement that is its own transaction.
    assert keyed == plain == ["WITH (AUTOCOMMIT)"]
