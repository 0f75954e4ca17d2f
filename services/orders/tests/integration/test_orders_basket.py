"""The server-side basket: live pricing with flags, one retailer, and checkout into an order."""

from __future__ import annotations

import uuid

import pytest

from yummi.catalog.v1 import catalog_pb2
from yummi_common.errors import Conflict, InvalidArgument
from yummi_common.service import Runtime
from yummi_orders.adapters.catalog import GrpcCatalog
from yummi_orders.service_layer import basket as svc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
CHEESE_ID = "6f1d2a3b-0000-4000-8000-000000000005"


async def set_item(runtime: Runtime, catalog: GrpcCatalog, user: uuid.UUID, product_id: str, quantity: int):
    async with runtime.uow() as uow:
        return await svc.set_basket_item(
            uow=uow, catalog=catalog, user_id=str(user), product_id=product_id, quantity=quantity
        )


async def get(runtime: Runtime, catalog: GrpcCatalog, user: uuid.UUID):
    async with runtime.uow() as uow:
        return await svc.get_basket(uow=uow, catalog=catalog, user_id=str(user))


async def test_basket_lines_are_priced_live_and_flag_price_changes_and_unavailability(
    runtime: Runtime, catalog: GrpcCatalog, fake_catalog
) -> None:
    servicer, _ = fake_catalog
    user = uuid.uuid4()
    await set_item(runtime, catalog, user, "W-MILK", 2)
    basket = await set_item(runtime, catalog, user, CHEESE_ID, 1)  # by UUID: stored as its product_id
    assert [(line.item.product_id, line.item.quantity) for line in basket.lines] == [
        ("W-MILK", 2),
        ("W-CHEESE", 1),
    ]
    assert basket.total_minor == 2 * 3499 + 8999

    original = servicer.products[CHEESE_ID]
    changed = catalog_pb2.Product()
    changed.CopyFrom(original)
    changed.price_minor = 9499
    servicer.products[CHEESE_ID] = changed
    try:
        basket = await get(runtime, catalog, user)
        cheese = basket.lines[1]
        assert (cheese.price_changed, cheese.unavailable, cheese.line_total_minor) == (True, False, 9499)
        assert cheese.item.added_unit_price_minor == 8999
        changed.available = False
        basket = await get(runtime, catalog, user)
        assert (basket.lines[1].unavailable, basket.lines[1].line_total_minor) == (True, 0)
        assert basket.total_minor == 2 * 3499
    finally:
        servicer.products[CHEESE_ID] = original


async def test_setting_a_quantity_replaces_it_and_removing_and_clearing_work(
    runtime: Runtime, catalog: GrpcCatalog
) -> None:
    user = uuid.uuid4()
    await set_item(runtime, catalog, user, "W-MILK", 2)
    basket = await set_item(runtime, catalog, user, "W-MILK", 5)
    assert [(line.item.product_id, line.item.quantity) for line in basket.lines] == [("W-MILK", 5)]
    await set_item(runtime, catalog, user, "W-BREAD", 1)
    async with runtime.uow() as uow:
        basket = await svc.remove_basket_item(
            uow=uow, catalog=catalog, user_id=str(user), product_id="W-MILK"
        )
    assert [line.item.product_id for line in basket.lines] == ["W-BREAD"]
    async with runtime.uow() as uow:
        basket = await svc.remove_basket_item(
            uow=uow, catalog=catalog, user_id=str(user), product_id="6f1d2a3b-0000-4000-8000-000000000002"
        )
    assert basket.lines == []
    await set_item(runtime, catalog, user, "W-BREAD", 1)
    async with runtime.uow() as uow:
        assert (await svc.clear_basket(uow=uow, user_id=str(user))).lines == []
    assert (await get(runtime, catalog, user)).lines == []


@pytest.mark.parametrize(
    ("product_id", "quantity", "error"),
    [
        ("W-MILK", 0, InvalidArgument),
        ("W-MILK", 100, InvalidArgument),
        ("", 1, InvalidArgument),
        ("W-NOPE", 1, InvalidArgument),
        ("W-GONE", 1, InvalidArgument),
        ("C-EGGS", 1, Conflict),
    ],
)
async def test_bad_basket_lines_are_refused(
    runtime: Runtime, catalog: GrpcCatalog, product_id: str, quantity: int, error: type[Exception]
) -> None:
    user = uuid.uuid4()
    await set_item(runtime, catalog, user, "W-MILK", 1)
    with pytest.raises(error):
        await set_item(runtime, catalog, user, product_id, quantity)
    assert [line.item.product_id for line in (await get(runtime, catalog, user)).lines] == ["W-MILK"]


async def test_checkout_places_an_order_and_empties_the_basket(
    runtime: Runtime, catalog: GrpcCatalog, harness
) -> None:
    user = uuid.uuid4()
    await set_item(runtime, catalog, user, "W-MILK", 2)
    await set_item(runtime, catalog, user, "W-BREAD", 1)
    async with runtime.uow() as uow:
        order = await svc.checkout_basket(uow=uow, catalog=catalog, user_id=str(user), notes="no substitutes")
    assert (order.status, order.retailer, order.notes) == ("pending_payment", "woolworths", "no substitutes")
    assert [(i.product_id, i.quantity) for i in order.items] == [("W-MILK", 2), ("W-BREAD", 1)]
    assert order.total_minor == 2 * 3499 + 1899
    assert len(await harness.outbox_bodies("orders.order.placed", order.id)) == 1
    assert (await get(runtime, catalog, user)).lines == []
    with pytest.raises(InvalidArgument):
        async with runtime.uow() as uow:
            await svc.checkout_basket(uow=uow, catalog=catalog, user_id=str(user))


async def test_checkout_with_an_unavailable_line_is_refused_and_keeps_the_basket(
    runtime: Runtime, catalog: GrpcCatalog, fake_catalog, harness
) -> None:
    servicer, _ = fake_catalog
    user = uuid.uuid4()
    await set_item(runtime, catalog, user, "W-CHEESE", 1)
    original = servicer.products[CHEESE_ID]
    gone = catalog_pb2.Product()
    gone.CopyFrom(original)
    gone.available = False
    servicer.products[CHEESE_ID] = gone
    try:
        with pytest.raises(InvalidArgument) as info:
            async with runtime.uow() as uow:
                await svc.checkout_basket(uow=uow, catalog=catalog, user_id=str(user))
    finally:
        servicer.products[CHEESE_ID] = original
    assert info.value.errors[0]["field"] == "items[0].product_id"
    assert await harness.count_orders_of(user) == 0
    assert len((await get(runtime, catalog, user)).lines) == 1
