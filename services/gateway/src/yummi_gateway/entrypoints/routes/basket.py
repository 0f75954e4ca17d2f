"""The caller's server-side basket, priced from the live catalog, and its checkout."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from yummi.orders.v1 import orders_pb2
from yummi_gateway.entrypoints import serializers
from yummi_gateway.entrypoints.deps import JSON_BODY, CurrentUser, GatewayDep, idempotency_key
from yummi_gateway.entrypoints.schemas import (
    AUTH_PROBLEMS,
    BODY_PROBLEMS,
    PROBLEM,
    Basket,
    BasketItemIn,
    CheckoutIn,
    Order,
)
from yummi_gateway.responses import JSONBytes, dump_json

router = APIRouter(tags=["basket"])
BASKET_PROBLEMS = {**AUTH_PROBLEMS, **BODY_PROBLEMS, 404: PROBLEM, 409: PROBLEM, 422: PROBLEM}


def _product_ref(product_id: str) -> str:
    if not product_id or len(product_id) > 128:
        raise HTTPException(404, "product not found")
    return product_id


def _basket(basket: orders_pb2.Basket) -> Response:
    return JSONBytes(dump_json(serializers.basket(basket)))


@router.get("/v1/basket", response_model=Basket, responses=BASKET_PROBLEMS, summary="The caller's basket")
async def get_basket(user: CurrentUser, gateway: GatewayDep) -> Response:
    return _basket(await gateway.clients.orders.GetBasket(orders_pb2.BasketRequest(user_id=str(user.id))))


@router.put(
    "/v1/basket/items/{product_id}",
    response_model=Basket,
    responses=BASKET_PROBLEMS,
    dependencies=JSON_BODY,
    summary="Set the quantity of a basket line",
)
async def set_basket_item(
    product_id: str, body: BasketItemIn, user: CurrentUser, gateway: GatewayDep
) -> Response:
    basket = await gateway.clients.orders.SetBasketItem(
        orders_pb2.SetBasketItemRequest(
            user_id=str(user.id), product_id=_product_ref(product_id), quantity=body.quantity
        )
    )
    return _basket(basket)


@router.delete(
    "/v1/basket/items/{product_id}",
    response_model=Basket,
    responses=BASKET_PROBLEMS,
    summary="Remove a basket line",
)
async def remove_basket_item(product_id: str, user: CurrentUser, gateway: GatewayDep) -> Response:
    basket = await gateway.clients.orders.RemoveBasketItem(
        orders_pb2.RemoveBasketItemRequest(user_id=str(user.id), product_id=_product_ref(product_id))
    )
    return _basket(basket)


@router.delete("/v1/basket", response_model=Basket, responses=BASKET_PROBLEMS, summary="Empty the basket")
async def clear_basket(user: CurrentUser, gateway: GatewayDep) -> Response:
    return _basket(await gateway.clients.orders.ClearBasket(orders_pb2.BasketRequest(user_id=str(user.id))))


@router.post(
    "/v1/basket/checkout",
    status_code=201,
    response_model=Order,
    responses=BASKET_PROBLEMS,
    dependencies=JSON_BODY,
    summary="Turn the basket into an order and empty it",
)
async def checkout_basket(
    user: CurrentUser, gateway: GatewayDep, request: Request, body: CheckoutIn | None = None
) -> Response:
    order = await gateway.clients.orders.CheckoutBasket(
        orders_pb2.CheckoutBasketRequest(
            user_id=str(user.id),
            notes=(body.notes if body else None) or "",
            idempotency_key=idempotency_key(request),  # kept on the order, as for POST /v1/orders
        )
    )
    return JSONBytes(dump_json(serializers.order(order)), status_code=201)
