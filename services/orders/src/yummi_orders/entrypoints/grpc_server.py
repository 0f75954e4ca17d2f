"""The OrdersService gRPC servicer: maps requests to service-layer calls and domain objects to messages."""

from __future__ import annotations

from typing import Any

import grpc
import orjson

from yummi.catalog.v1 import catalog_pb2
from yummi.common.v1 import common_pb2
from yummi.orders.v1 import orders_pb2, orders_pb2_grpc
from yummi_common.service import Runtime
from yummi_common.timeutil import to_timestamp
from yummi_orders.adapters.catalog import Catalog
from yummi_orders.config import OrdersConfig
from yummi_orders.domain.basket import PricedBasket, PricedBasketLine
from yummi_orders.domain.orders import Order
from yummi_orders.service_layer import basket as basket_service
from yummi_orders.service_layer import orders as orders_service
from yummi_orders.service_layer import queue as queue_service

SERVICE_NAME = orders_pb2.DESCRIPTOR.services_by_name["OrdersService"].full_name


def _set_time(message: Any, name: str, value: Any) -> None:
    ts = to_timestamp(value)
    if ts is not None:
        getattr(message, name).CopyFrom(ts)


def order_to_proto(order: Order) -> orders_pb2.Order:
    message = orders_pb2.Order(
        id=str(order.id),
        user_id=str(order.user_id),
        status=order.status.value,
        retailer=order.retailer,
        items=[
            orders_pb2.OrderItem(
                product_id=line.product_id,
                title=line.title,
                quantity=line.quantity,
                unit_price_minor=line.unit_price_minor,
                line_total_minor=line.line_total_minor,
            )
            for line in order.items
        ],
        total_minor=order.total_minor,
        currency=order.currency,
        notes=order.notes,
        retailer_reference=order.retailer_reference or "",
        runner_id=order.runner_id or "",
        attempts=order.attempts,
        reason=order.reason or "",
    )
    _set_time(message, "created_at", order.created_at)
    _set_time(message, "updated_at", order.updated_at)
    _set_time(message, "lease_expires_at", order.lease_expires_at)
    for event in order.events:
        entry = message.events.add(type=event.type, payload_json=orjson.dumps(event.payload).decode())
        _set_time(entry, "created_at", event.created_at)
    return message


def _basket_line_to_proto(line: PricedBasketLine) -> orders_pb2.BasketLine:
    item = line.item
    if line.product is not None and line.product.source is not None:
        product = catalog_pb2.Product()
        product.CopyFrom(line.product.source)
    else:  # gone from the live catalog: show what the basket remembers
        product = catalog_pb2.Product(
            retailer=item.retailer,
            product_id=item.product_id,
            title=item.title,
            price_minor=line.unit_price_minor,
            currency="ZAR",
            available=False,
        )
    return orders_pb2.BasketLine(
        product=product,
        quantity=item.quantity,
        line_total_minor=line.line_total_minor,
        price_changed=line.price_changed,
        unavailable=line.unavailable,
        added_unit_price_minor=item.added_unit_price_minor,
    )


def basket_to_proto(basket: PricedBasket) -> orders_pb2.Basket:
    return orders_pb2.Basket(
        items=[_basket_line_to_proto(line) for line in basket.lines],
        total_minor=basket.total_minor,
        currency=basket.currency,
    )


class OrdersServicer(orders_pb2_grpc.OrdersServiceServicer):
    """Every RPC opens its own unit of work; domain errors become status codes in the server interceptor."""

    def __init__(self, *, runtime: Runtime, catalog: Catalog, config: OrdersConfig) -> None:
        self._runtime = runtime
        self._catalog = catalog
        self._config = config

    async def PlaceOrder(
        self, request: orders_pb2.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with self._runtime.uow() as uow:
            order = await orders_service.place_order(
                uow=uow,
                catalog=self._catalog,
                user_id=request.user_id,
                retailer=request.retailer,
                lines=[(line.product_id, line.quantity) for line in request.items],
                notes=request.notes,
                idempotency_key=request.idempotency_key,
            )
        return order_to_proto(order)

    async def GetOrder(self, request: orders_pb2.GetOrderRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._runtime.uow() as uow:
            order = await orders_service.get_order(
                uow=uow, order_id=request.order_id, user_id=request.user_id, privileged=request.privileged
            )
        return order_to_proto(order)

    async def ListOrders(
        self, request: orders_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with self._runtime.uow() as uow:
            page, next_cursor = await orders_service.list_orders(
                uow=uow,
                user_id=request.user_id,
                status=request.status,
                limit=request.limit,
                cursor=request.cursor,
            )
        return orders_pb2.ListOrdersResponse(
            items=[order_to_proto(o) for o in page], next_cursor=next_cursor or ""
        )

    async def CancelOrder(
        self, request: orders_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with self._runtime.uow() as uow:
            order = await orders_service.cancel_order(
                uow=uow, order_id=request.order_id, user_id=request.user_id
            )
        return order_to_proto(order)

    async def ClaimNextOrder(
        self, request: orders_pb2.ClaimNextOrderRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with self._runtime.uow() as uow:
            order = await queue_service.claim_next_order(
                uow=uow,
                runner_id=request.runner_id,
                retailer=request.retailer,
                lease_seconds=self._config.lease_seconds,
            )
        if order is None:
            return orders_pb2.ClaimNextOrderResponse(found=False)
        return orders_pb2.ClaimNextOrderResponse(found=True, order=order_to_proto(order))

    async def HeartbeatOrder(
        self, request: orders_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with self._runtime.uow() as uow:
            expires = await queue_service.heartbeat_order(
                uow=uow,
                order_id=request.order_id,
                runner_id=request.runner_id,
                lease_seconds=self._config.lease_seconds,
            )
        return orders_pb2.HeartbeatResponse(lease_expires_at=to_timestamp(expires))

    async def AckOrder(self, request: orders_pb2.AckOrderRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._runtime.uow() as uow:
            order = await queue_service.ack_order(
                uow=uow,
                order_id=request.order_id,
                runner_id=request.runner_id,
                outcome=request.outcome,
                notes=request.notes,
                retailer_reference=request.retailer_reference,
            )
        return order_to_proto(order)

    async def GetBasket(self, request: orders_pb2.BasketRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._runtime.uow() as uow:
            basket = await basket_service.get_basket(uow=uow, catalog=self._catalog, user_id=request.user_id)
        return basket_to_proto(basket)

    async def SetBasketItem(
        self, request: orders_pb2.SetBasketItemRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with self._runtime.uow() as uow:
            basket = await basket_service.set_basket_item(
                uow=uow,
                catalog=self._catalog,
                user_id=request.user_id,
                product_id=request.product_id,
                quantity=request.quantity,
            )
        return basket_to_proto(basket)

    async def RemoveBasketItem(
        self, request: orders_pb2.RemoveBasketItemRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with self._runtime.uow() as uow:
            basket = await basket_service.remove_basket_item(
                uow=uow, catalog=self._catalog, user_id=request.user_id, product_id=request.product_id
            )
        return basket_to_proto(basket)

    async def ClearBasket(self, request: orders_pb2.BasketRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._runtime.uow() as uow:
            basket = await basket_service.clear_basket(uow=uow, user_id=request.user_id)
        return basket_to_proto(basket)

    async def CheckoutBasket(
        self, request: orders_pb2.CheckoutBasketRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with self._runtime.uow() as uow:
            order = await basket_service.checkout_basket(
                uow=uow,
                catalog=self._catalog,
                user_id=request.user_id,
                notes=request.notes,
                idempotency_key=request.idempotency_key,
            )
        return order_to_proto(order)

    async def GetPendingCounts(
        self, request: orders_pb2.PendingCountsRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        async with self._runtime.uow() as uow:
            queued, claimed, oldest = await orders_service.get_pending_counts(uow=uow)
        return orders_pb2.PendingCounts(
            orders_queued=queued, orders_claimed=claimed, oldest_queued_age_seconds=oldest
        )

    async def ExportUserData(self, request: common_pb2.UserRef, context: grpc.aio.ServicerContext) -> Any:
        async with self._runtime.uow() as uow:
            document = await orders_service.export_user_data(uow=uow, user_id=request.user_id)
        return common_pb2.UserDataExport(context="orders", json=document)


def register(server: grpc.aio.Server, servicer: OrdersServicer) -> list[str]:
    """Add the servicer to the server; returns the full service names (for health and reflection)."""
    orders_pb2_grpc.add_OrdersServiceServicer_to_server(servicer, server)
    return [SERVICE_NAME]
