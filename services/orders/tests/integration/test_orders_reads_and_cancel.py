"""Reading, listing and cancelling orders, pending counts and the user's data export."""

from __future__ import annotations

import uuid
from datetime import timedelta

import orjson
import pytest

from yummi_common.errors import Conflict, InvalidArgument, NotFound
from yummi_common.messaging.consumer import InboxClaim
from yummi_common.service import Runtime
from yummi_common.timeutil import utcnow
from yummi_orders.adapters.catalog import GrpcCatalog
from yummi_orders.service_layer.orders import (
    cancel_order,
    export_user_data,
    get_order,
    get_pending_counts,
    list_orders,
    place_order,
)
from yummi_orders.service_layer.saga import record_wallets_debited

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def place(runtime: Runtime, catalog: GrpcCatalog, user: uuid.UUID):
    async with runtime.uow() as uow:
        return await place_order(
            uow=uow, catalog=catalog, user_id=str(user), retailer="woolworths", lines=[("W-MILK", 1)]
        )


async def cancel(runtime: Runtime, order_id: uuid.UUID, user: uuid.UUID):
    async with runtime.uow() as uow:
        return await cancel_order(uow=uow, order_id=str(order_id), user_id=str(user))


async def test_get_order_shows_the_history_in_time_order(runtime: Runtime, catalog: GrpcCatalog) -> None:
    user = uuid.uuid4()
    placed = await place(runtime, catalog, user)
    claim = InboxClaim(event_id=uuid.uuid4(), consumer="test", event_type="payments.wallet.debited")
    async with runtime.uow() as uow:  # the statement commits on its own
        assert await record_wallets_debited(uow=uow, debits=[(claim, str(placed.id), "t1", 3499)]) == [True]
    async with runtime.uow() as uow:
        order = await get_order(uow=uow, order_id=str(placed.id), user_id=str(user))
    assert order.status == "queued"
    assert [e.type for e in order.events] == ["order.placed", "order.queued"]
    assert order.events[0].created_at <= order.events[1].created_at
    assert order.events[1].payload == {"transaction_id": "t1", "amount_minor": 3499}


async def test_another_users_order_is_not_found_unless_privileged(
    runtime: Runtime, catalog: GrpcCatalog
) -> None:
    placed = await place(runtime, catalog, uuid.uuid4())
    with pytest.raises(NotFound):
        async with runtime.uow() as uow:
            await get_order(uow=uow, order_id=str(placed.id), user_id=str(uuid.uuid4()))
    async with runtime.uow() as uow:
        assert (
            await get_order(uow=uow, order_id=str(placed.id), user_id="", privileged=True)
        ).id == placed.id
    for bad in ("nope", str(uuid.uuid4())):
        with pytest.raises(NotFound):
            async with runtime.uow() as uow:
                await get_order(uow=uow, order_id=bad, user_id=str(uuid.uuid4()))


async def test_list_orders_pages_newest_first_and_filters_by_status(runtime: Runtime, harness) -> None:
    user = uuid.uuid4()
    start = utcnow() - timedelta(days=1)
    statuses = ["queued", "completed", "queued", "cancelled", "queued"]
    ids = [
        await harness.make_order(user_id=user, status=status, created_at=start + timedelta(minutes=i))
        for i, status in enumerate(statuses)
    ]
    await harness.make_order(status="queued")  # someone else's

    seen, cursor = [], ""
    while True:
        async with runtime.uow() as uow:
            page, cursor = await list_orders(uow=uow, user_id=str(user), limit=2, cursor=cursor or "")
        assert len(page) <= 2
        seen += [o.id for o in page]
        if cursor is None:
            break
    assert seen == list(reversed(ids))

    async with runtime.uow() as uow:
        queued, more = await list_orders(uow=uow, user_id=str(user), status="queued")
    assert [o.id for o in queued] == [ids[4], ids[2], ids[0]]
    assert more is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": -1}, "limit"),
        ({"status": "shipped"}, "status"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"cursor": "WyJ4IiwieSJd"}, "cursor"),  # a well-formed cursor holding nonsense
    ],
)
async def test_list_orders_refuses_bad_parameters(runtime: Runtime, kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        async with runtime.uow() as uow:
            await list_orders(uow=uow, user_id=str(uuid.uuid4()), **kwargs)
    assert {e["field"] for e in info.value.errors} == {field}


async def test_cancel_while_pending_emits_cancelled_with_the_previous_status(
    runtime: Runtime, catalog: GrpcCatalog, harness
) -> None:
    user = uuid.uuid4()
    placed = await place(runtime, catalog, user)
    order = await cancel(runtime, placed.id, user)
    assert (order.status, order.reason) == ("cancelled", "cancelled_by_user")
    assert [e.type for e in order.events] == ["order.placed", "order.cancelled"]
    [event] = await harness.outbox_bodies("orders.order.cancelled", placed.id)
    assert (event.previous_status, event.total_minor, event.user_id) == ("pending_payment", 3499, str(user))
    with pytest.raises(Conflict):
        await cancel(runtime, placed.id, user)


async def test_cancel_while_queued_is_allowed_and_tells_payments_to_refund(runtime: Runtime, harness) -> None:
    user = uuid.uuid4()
    order_id = await harness.make_order(user_id=user, status="queued")
    assert (await cancel(runtime, order_id, user)).status == "cancelled"
    [event] = await harness.outbox_bodies("orders.order.cancelled", order_id)
    assert event.previous_status == "queued"


@pytest.mark.parametrize("status", ["claimed", "completed", "failed", "rejected"])
async def test_cancel_is_refused_once_claimed_or_finished(runtime: Runtime, harness, status: str) -> None:
    user = uuid.uuid4()
    order_id = await harness.make_order(user_id=user, status=status)
    with pytest.raises(Conflict):
        await cancel(runtime, order_id, user)
    assert (await harness.order_row(order_id)).status == status
    assert await harness.outbox_bodies("orders.order.cancelled", order_id) == []


async def test_cancel_of_another_users_order_is_not_found(runtime: Runtime, harness) -> None:
    order_id = await harness.make_order(status="queued")
    with pytest.raises(NotFound):
        await cancel(runtime, order_id, uuid.uuid4())
    assert (await harness.order_row(order_id)).status == "queued"


async def test_pending_counts_report_the_queue_and_its_oldest_wait(runtime: Runtime, harness) -> None:
    await harness.make_order(status="queued", created_at=utcnow() - timedelta(hours=2))
    await harness.make_order(status="claimed", lease_expires_at=utcnow() + timedelta(minutes=5))
    async with runtime.uow() as uow:
        queued, claimed, oldest = await get_pending_counts(uow=uow)
    assert queued >= 1 and claimed >= 1
    assert oldest >= 2 * 3600 - 5


async def test_export_holds_the_users_orders_and_basket(runtime: Runtime, catalog: GrpcCatalog) -> None:
    user = uuid.uuid4()
    placed = await place(runtime, catalog, user)
    await place(runtime, catalog, uuid.uuid4())
    async with runtime.uow() as uow:
        document = orjson.loads(await export_user_data(uow=uow, user_id=str(user)))
    assert [o["id"] for o in document["orders"]] == [str(placed.id)]
    assert document["orders"][0]["items"][0]["product_id"] == "W-MILK"
    assert document["orders"][0]["events"][0]["type"] == "order.placed"
    assert document["basket"] == {"items": []}
