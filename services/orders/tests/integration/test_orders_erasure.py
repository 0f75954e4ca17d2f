"""Erasure: identity.user.erased empties the user's basket, blanks their notes and reports orders done."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from yummi.events.v1 import events_pb2
from yummi_common.messaging.events import decode_body
from yummi_common.service import Runtime
from yummi_orders.adapters.catalog import GrpcCatalog
from yummi_orders.adapters.tables import orders
from yummi_orders.service_layer.basket import get_basket, set_basket_item

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_user_erased_clears_basket_and_notes_and_emits_erasure_completed(
    runtime: Runtime, catalog: GrpcCatalog, harness
) -> None:
    user = uuid.uuid4()
    order_id = await harness.make_order(user_id=user, status="completed")
    async with runtime.engine.begin() as conn:
        await conn.execute(orders.update().where(orders.c.id == order_id).values(notes="flat 4, Sea Point"))
    async with runtime.uow() as uow:
        await set_basket_item(uow=uow, catalog=catalog, user_id=str(user), product_id="W-MILK", quantity=1)

    event_id = uuid.uuid4()
    await harness.publish("identity.user.erased", events_pb2.UserErased(user_id=str(user)), event_id=event_id)
    await harness.processed(event_id)

    row = await harness.order_row(order_id)
    assert (row.notes, row.status, row.total_minor) == ("", "completed", 3499)
    async with runtime.uow() as uow:
        assert (await get_basket(uow=uow, catalog=catalog, user_id=str(user))).lines == []
    outbox = runtime.tables.outbox
    async with runtime.engine.connect() as conn:
        payloads = (
            await conn.execute(
                select(outbox.c.payload).where(outbox.c.event_type == "identity.user.erasure_completed")
            )
        ).scalars()
        done = [decode_body("identity.user.erasure_completed", p) for p in payloads]
    assert any(d.user_id == str(user) and d.context == "orders" for d in done)
