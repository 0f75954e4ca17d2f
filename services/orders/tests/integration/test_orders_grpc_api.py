"""OrdersService over real gRPC: status codes, validation errors in metadata, no INTERNAL on bad input."""

from __future__ import annotations

import uuid
from datetime import timedelta

import grpc
import orjson
import pytest

from yummi.common.v1 import common_pb2
from yummi.orders.v1 import orders_pb2
from yummi_common.grpc_client import problem_errors
from yummi_common.timeutil import utcnow

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def line(product_id: str, quantity: int = 1) -> orders_pb2.OrderLineRequest:
    return orders_pb2.OrderLineRequest(product_id=product_id, quantity=quantity)


async def test_place_and_get_order_over_grpc(orders_stub) -> None:
    user = str(uuid.uuid4())
    placed = await orders_stub.PlaceOrder(
        orders_pb2.PlaceOrderRequest(
            user_id=user, retailer="woolworths", items=[line("W-MILK", 2)], notes="hi"
        )
    )
    assert (placed.status, placed.total_minor, placed.currency) == ("pending_payment", 6998, "ZAR")
    assert placed.items[0].line_total_minor == 6998
    assert placed.created_at.seconds > 0 and not placed.HasField("lease_expires_at")

    got = await orders_stub.GetOrder(orders_pb2.GetOrderRequest(order_id=placed.id, user_id=user))
    assert got.id == placed.id
    assert [(e.type, orjson.loads(e.payload_json)["total_minor"]) for e in got.events] == [
        ("order.placed", 6998)
    ]

    listed = await orders_stub.ListOrders(orders_pb2.ListOrdersRequest(user_id=user))
    assert [o.id for o in listed.items] == [placed.id] and listed.next_cursor == ""


async def test_unknown_product_is_invalid_argument_naming_the_field(orders_stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await orders_stub.PlaceOrder(
            orders_pb2.PlaceOrderRequest(
                user_id=str(uuid.uuid4()), retailer="woolworths", items=[line("W-NOPE")]
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem_errors(info.value) == [
        {"field": "items[0].product_id", "message": "unknown product W-NOPE"}
    ]


async def test_another_users_order_is_not_found(orders_stub) -> None:
    placed = await orders_stub.PlaceOrder(
        orders_pb2.PlaceOrderRequest(
            user_id=str(uuid.uuid4()), retailer="woolworths", items=[line("W-BREAD")]
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await orders_stub.GetOrder(orders_pb2.GetOrderRequest(order_id=placed.id, user_id=str(uuid.uuid4())))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_runner_flow_and_ack_by_another_runner_is_permission_denied(orders_stub, harness) -> None:
    retailer = harness.new_retailer()
    order_id = await harness.make_order(status="queued", retailer=retailer)
    empty = await orders_stub.ClaimNextOrder(
        orders_pb2.ClaimNextOrderRequest(runner_id="runner-a", retailer=harness.new_retailer())
    )
    assert not empty.found

    claimed = await orders_stub.ClaimNextOrder(
        orders_pb2.ClaimNextOrderRequest(runner_id="runner-a", retailer=retailer)
    )
    assert claimed.found and claimed.order.id == str(order_id) and claimed.order.HasField("lease_expires_at")
    beat = await orders_stub.HeartbeatOrder(
        orders_pb2.HeartbeatRequest(order_id=str(order_id), runner_id="runner-a")
    )
    assert beat.lease_expires_at.ToDatetime().timestamp() > (utcnow() + timedelta(seconds=200)).timestamp()

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await orders_stub.AckOrder(
            orders_pb2.AckOrderRequest(order_id=str(order_id), runner_id="runner-b", outcome="completed")
        )
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    done = await orders_stub.AckOrder(
        orders_pb2.AckOrderRequest(
            order_id=str(order_id), runner_id="runner-a", outcome="completed", retailer_reference="WW-9"
        )
    )
    assert (done.status, done.retailer_reference) == ("completed", "WW-9")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await orders_stub.CancelOrder(
            orders_pb2.CancelOrderRequest(order_id=str(order_id), user_id=done.user_id)
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_basket_counts_and_export_over_grpc(orders_stub) -> None:
    user = str(uuid.uuid4())
    basket = await orders_stub.SetBasketItem(
        orders_pb2.SetBasketItemRequest(user_id=user, product_id="W-MILK", quantity=3)
    )
    assert (basket.total_minor, basket.items[0].product.title) == (3 * 3499, "Full Cream Milk 2L")
    order = await orders_stub.CheckoutBasket(orders_pb2.CheckoutBasketRequest(user_id=user))
    assert order.total_minor == 3 * 3499
    assert len((await orders_stub.GetBasket(orders_pb2.BasketRequest(user_id=user))).items) == 0
    counts = await orders_stub.GetPendingCounts(orders_pb2.PendingCountsRequest())
    assert counts.orders_queued >= 0 and counts.oldest_queued_age_seconds >= 0
    export = await orders_stub.ExportUserData(common_pb2.UserRef(user_id=user))
    assert export.context == "orders"
    assert [o["id"] for o in orjson.loads(export.json)["orders"]] == [order.id]


BAD_CALLS = [
    ("PlaceOrder", orders_pb2.PlaceOrderRequest(user_id="x", retailer="woolworths", items=[line("W-MILK")])),
    (
        "PlaceOrder",
        orders_pb2.PlaceOrderRequest(user_id=str(uuid.uuid4()), retailer="w\x00w", items=[line("W")]),
    ),
    (
        "PlaceOrder",
        orders_pb2.PlaceOrderRequest(
            user_id=str(uuid.uuid4()), retailer="woolworths", items=[line("x\x00y")], notes="\x00"
        ),
    ),
    (
        "PlaceOrder",
        orders_pb2.PlaceOrderRequest(
            user_id=str(uuid.uuid4()), retailer="woolworths", items=[line("W-MILK", -5)]
        ),
    ),
    ("GetOrder", orders_pb2.GetOrderRequest(order_id="../../etc", user_id="")),
    ("GetOrder", orders_pb2.GetOrderRequest(order_id=str(uuid.uuid4()), user_id="nope")),
    ("ListOrders", orders_pb2.ListOrdersRequest(user_id=str(uuid.uuid4()), cursor="%%%" * 300)),
    ("CancelOrder", orders_pb2.CancelOrderRequest(order_id="", user_id="")),
    ("ClaimNextOrder", orders_pb2.ClaimNextOrderRequest(runner_id="r\x00")),
    ("HeartbeatOrder", orders_pb2.HeartbeatRequest(order_id=str(uuid.uuid4()), runner_id="")),
    (
        "AckOrder",
        orders_pb2.AckOrderRequest(
            order_id=str(uuid.uuid4()), runner_id="r", outcome="completed", retailer_reference="\x00"
        ),
    ),
    (
        "SetBasketItem",
        orders_pb2.SetBasketItemRequest(user_id=str(uuid.uuid4()), product_id="p" * 65, quantity=1),
    ),
    ("RemoveBasketItem", orders_pb2.RemoveBasketItemRequest(user_id=str(uuid.uuid4()), product_id="")),
    ("ClearBasket", orders_pb2.BasketRequest(user_id="")),
    ("CheckoutBasket", orders_pb2.CheckoutBasketRequest(user_id=str(uuid.uuid4()), notes="n" * 1001)),
    ("ExportUserData", common_pb2.UserRef(user_id="robert'); drop table orders;--")),
]


@pytest.mark.parametrize(("method", "request_message"), BAD_CALLS)
async def test_bad_input_is_a_clear_client_error_never_internal(
    orders_stub, method: str, request_message
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(orders_stub, method)(request_message)
    assert info.value.code() in {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
    }
