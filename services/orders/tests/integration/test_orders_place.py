"""Placing an order: priced by the catalog over gRPC, stored pending_payment with its event in the outbox."""

from __future__ import annotations

import uuid

import pytest

from yummi_common.errors import InvalidArgument, Unavailable
from yummi_common.service import Runtime
from yummi_orders.adapters.catalog import GrpcCatalog
from yummi_orders.service_layer.orders import place_order

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_placed_order_is_pending_payment_priced_by_the_catalog_with_its_event_in_the_outbox(
    runtime: Runtime, catalog: GrpcCatalog, harness
) -> None:
    user = uuid.uuid4()
    async with runtime.uow() as uow:
        order = await place_order(
            uow=uow,
            catalog=catalog,
            user_id=str(user),
            retailer="Woolworths",
            lines=[("W-MILK", 2), ("6f1d2a3b-0000-4000-8000-000000000002", 1), ("W-MILK", 1)],
            notes="leave at the gate",
        )
    assert order.status == "pending_payment"
    assert order.retailer == "woolworths"
    assert [(i.product_id, i.quantity, i.unit_price_minor, i.line_total_minor) for i in order.items] == [
        ("W-MILK", 3, 3499, 10497),
        ("W-BREAD", 1, 1899, 1899),
    ]
    assert order.total_minor == 10497 + 1899
    assert order.currency == "ZAR"
    assert [e.type for e in order.events] == ["order.placed"]

    [placed] = await harness.outbox_bodies("orders.order.placed", order.id)
    assert placed.user_id == str(user)
    assert placed.total_minor == order.total_minor
    assert placed.retailer == "woolworths"
    assert [(line.product_id, line.quantity, line.unit_price_minor) for line in placed.lines] == [
        ("W-MILK", 3, 3499),
        ("W-BREAD", 1, 1899),
    ]


@pytest.mark.parametrize(
    ("product_id", "message"),
    [
        ("W-NOPE", "unknown product W-NOPE"),
        ("W-GONE", "product W-GONE is unavailable"),
        ("C-EGGS", "product C-EGGS is sold by checkers, not woolworths"),
    ],
)
async def test_an_order_that_cannot_be_priced_is_invalid_and_stores_nothing(
    runtime: Runtime, catalog: GrpcCatalog, harness, product_id: str, message: str
) -> None:
    user = uuid.uuid4()
    with pytest.raises(InvalidArgument) as info:
        async with runtime.uow() as uow:
            await place_order(
                uow=uow,
                catalog=catalog,
                user_id=str(user),
                retailer="woolworths",
                lines=[("W-MILK", 1), (product_id, 1)],
            )
    assert info.value.errors == [{"field": "items[1].product_id", "message": message}]
    assert await harness.count_orders_of(user) == 0


async def test_catalog_down_is_unavailable_and_stores_nothing(runtime: Runtime, harness) -> None:
    user = uuid.uuid4()
    down = GrpcCatalog(addr=f"127.0.0.1:{harness.free_port()}", deadline=1.0)
    try:
        with pytest.raises(Unavailable):
            async with runtime.uow() as uow:
                await place_order(
                    uow=uow, catalog=down, user_id=str(user), retailer="woolworths", lines=[("W-MILK", 1)]
                )
    finally:
        await down.close()
    assert await harness.count_orders_of(user) == 0


async def test_bad_requests_are_refused_before_the_catalog_is_asked(
    runtime: Runtime, catalog: GrpcCatalog, fake_catalog, harness
) -> None:
    servicer, _addr = fake_catalog
    calls = servicer.calls
    for bad in (
        {"user_id": "not-a-uuid", "retailer": "woolworths", "lines": [("W-MILK", 1)]},
        {"user_id": str(uuid.uuid4()), "retailer": "woolworths", "lines": [("W-MILK", 0)]},
        {"user_id": str(uuid.uuid4()), "retailer": "woolworths", "lines": [("W-MILK", 1)] * 101},
        {"user_id": str(uuid.uuid4()), "retailer": "", "lines": [("W-MILK", 1)]},
    ):
        with pytest.raises(InvalidArgument):
            async with runtime.uow() as uow:
                await place_order(uow=uow, catalog=catalog, **bad)
    assert servicer.calls == calls
