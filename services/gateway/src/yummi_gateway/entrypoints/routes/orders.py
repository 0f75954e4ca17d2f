"""The caller's orders, and the runner's queue (claim, heartbeat, ack)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from yummi.orders.v1 import orders_pb2
from yummi_gateway.entrypoints import serializers
from yummi_gateway.entrypoints.deps import (
    JSON_BODY,
    CurrentUser,
    GatewayDep,
    RunnerUser,
    idempotency_key,
    parse_uuid,
)
from yummi_gateway.entrypoints.schemas import (
    AUTH_PROBLEMS,
    BODY_PROBLEMS,
    PROBLEM,
    AckIn,
    Lease,
    Order,
    OrderPage,
    PlaceOrderIn,
)
from yummi_gateway.responses import JSONBytes, dump_json

router = APIRouter(tags=["orders"])
OrderStatus = Literal["pending_payment", "queued", "claimed", "completed", "failed", "rejected", "cancelled"]
ORDER_PROBLEMS = {**AUTH_PROBLEMS, **BODY_PROBLEMS, 404: PROBLEM, 409: PROBLEM, 422: PROBLEM}


def _order_response(
    order: orders_pb2.Order, *, status_code: int = 200, with_events: bool = False
) -> Response:
    return JSONBytes(dump_json(serializers.order(order, with_events=with_events)), status_code=status_code)


@router.post(
    "/v1/orders",
    status_code=201,
    response_model=Order,
    responses=ORDER_PROBLEMS,
    dependencies=JSON_BODY,
    summary="Place an order (priced from the live catalog)",
)
async def place_order(
    body: PlaceOrderIn, user: CurrentUser, gateway: GatewayDep, request: Request
) -> Response:
    order = await gateway.clients.orders.PlaceOrder(
        orders_pb2.PlaceOrderRequest(
            user_id=str(user.id),
            retailer=body.retailer,
            items=[
                orders_pb2.OrderLineRequest(product_id=i.product_id, quantity=i.quantity) for i in body.items
            ],
            notes=body.notes or "",
            # Orders keeps the key too: a retry after this gateway's record is gone still places nothing new.
            idempotency_key=idempotency_key(request),
        )
    )
    return _order_response(order, status_code=201)


@router.get("/v1/orders", response_model=OrderPage, responses=ORDER_PROBLEMS, summary="The caller's orders")
async def list_orders(
    user: CurrentUser,
    gateway: GatewayDep,
    status: OrderStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    page = await gateway.clients.orders.ListOrders(
        orders_pb2.ListOrdersRequest(
            user_id=str(user.id), status=status or "", limit=limit, cursor=cursor or ""
        )
    )
    body = {"items": [serializers.order(o) for o in page.items], "next_cursor": page.next_cursor or None}
    return JSONBytes(dump_json(body))


@router.post(
    "/v1/orders/next",
    response_model=Order,
    responses={**ORDER_PROBLEMS, 204: {"description": "No order is queued"}},
    summary="Runner: claim the next queued order (a lease)",
)
async def claim_next_order(
    user: RunnerUser,
    gateway: GatewayDep,
    retailer: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    reply = await gateway.clients.orders.ClaimNextOrder(
        orders_pb2.ClaimNextOrderRequest(runner_id=str(user.id), retailer=retailer or "")
    )
    if not reply.found:
        return Response(status_code=204)
    return _order_response(reply.order)


@router.get(
    "/v1/orders/{order_id}",
    response_model=Order,
    responses=ORDER_PROBLEMS,
    summary="One of the caller's orders",
)
async def get_order(order_id: str, user: CurrentUser, gateway: GatewayDep) -> Response:
    oid = parse_uuid(order_id, what="order")
    order = await gateway.clients.orders.GetOrder(
        orders_pb2.GetOrderRequest(
            order_id=str(oid), user_id=str(user.id), privileged=user.is_admin or user.is_runner
        )
    )
    return _order_response(order, with_events=True)


@router.post(
    "/v1/orders/{order_id}/cancel",
    response_model=Order,
    responses=ORDER_PROBLEMS,
    summary="Cancel an order while pending_payment or queued",
)
async def cancel_order(order_id: str, user: CurrentUser, gateway: GatewayDep) -> Response:
    oid = parse_uuid(order_id, what="order")
    order = await gateway.clients.orders.CancelOrder(
        orders_pb2.CancelOrderRequest(order_id=str(oid), user_id=str(user.id))
    )
    return _order_response(order)


@router.post(
    "/v1/orders/{order_id}/heartbeat",
    response_model=Lease,
    responses=ORDER_PROBLEMS,
    summary="Runner: extend the lease on a claimed order",
)
async def heartbeat_order(order_id: str, user: RunnerUser, gateway: GatewayDep) -> Response:
    oid = parse_uuid(order_id, what="order")
    reply = await gateway.clients.orders.HeartbeatOrder(
        orders_pb2.HeartbeatRequest(order_id=str(oid), runner_id=str(user.id))
    )
    return JSONBytes({"lease_expires_at": serializers.timestamp(reply, "lease_expires_at")})


@router.post(
    "/v1/orders/{order_id}/ack",
    response_model=Order,
    responses=ORDER_PROBLEMS,
    dependencies=JSON_BODY,
    summary="Runner: report the outcome of a claimed order",
)
async def ack_order(order_id: str, body: AckIn, user: RunnerUser, gateway: GatewayDep) -> Response:
    oid = parse_uuid(order_id, what="order")
    order = await gateway.clients.orders.AckOrder(
        orders_pb2.AckOrderRequest(
            order_id=str(oid),
            runner_id=str(user.id),
            outcome=body.outcome,
            notes=body.notes or "",
            retailer_reference=body.retailer_reference or "",
        )
    )
    return _order_response(order)
