"""The public catalog: product pages, the thin slice's bare list, and one product."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from starlette.responses import Response

from yummi.catalog.v1 import catalog_pb2
from yummi_gateway.entrypoints import serializers
from yummi_gateway.entrypoints.deps import GatewayDep
from yummi_gateway.entrypoints.schemas import PROBLEM, Product, ProductPage
from yummi_gateway.responses import JSONBytes, dump_json

router = APIRouter(tags=["catalog"])
CATALOG_PROBLEMS: dict[int | str, dict[str, Any]] = {422: PROBLEM, 503: PROBLEM}

Retailer = Annotated[str | None, Query(max_length=64)]
Limit = Annotated[int, Query(ge=1, le=500)]
DatasetVersion = Annotated[str | None, Query(max_length=64)]
Category = Annotated[str | None, Query(max_length=200)]
Search = Annotated[str | None, Query(max_length=200)]
Cursor = Annotated[str | None, Query(max_length=512)]


async def _list_products(
    gateway: GatewayDep,
    *,
    retailer: str | None,
    limit: int,
    random: bool,
    dataset_version: str | None,
    category: str | None,
    available: bool | None,
    q: str | None,
    cursor: str | None,
) -> catalog_pb2.ListProductsResponse:
    request = catalog_pb2.ListProductsRequest(
        retailer=retailer or "",
        limit=limit,
        random=random,
        dataset_version=dataset_version or "",
        category=category or "",
        q=(q or "").strip(),
        cursor=cursor or "",
    )
    if available is not None:
        request.available = available
    return await gateway.clients.catalog.ListProducts(request)  # type: ignore[no-any-return]


@router.get(
    "/v1/catalog",
    response_model=ProductPage,
    responses=CATALOG_PROBLEMS,
    summary="A page of the live catalog",
)
async def list_catalog(
    gateway: GatewayDep,
    retailer: Retailer = None,
    limit: Limit = 50,
    random: bool = False,
    dataset_version: DatasetVersion = None,
    category: Category = None,
    available: bool | None = None,
    q: Search = None,
    cursor: Cursor = None,
) -> Response:
    page = await _list_products(
        gateway,
        retailer=retailer,
        limit=limit,
        random=random,
        dataset_version=dataset_version,
        category=category,
        available=available,
        q=q,
        cursor=cursor,
    )
    body = {
        "items": [serializers.product(p) for p in page.items],
        "next_cursor": page.next_cursor or None,
        "dataset_version": page.dataset_version or None,
    }
    return JSONBytes(dump_json(body))


def thin_router() -> APIRouter:
    thin = APIRouter(tags=["thin slice"])

    @thin.get(
        "/v1/thin/catalog",
        response_model=list[Product],
        responses=CATALOG_PROBLEMS,
        summary="The live catalog as a bare list (thin-slice app)",
    )
    async def list_thin_catalog(
        gateway: GatewayDep,
        retailer: Retailer = None,
        limit: Limit = 50,
        random: bool = False,
        dataset_version: DatasetVersion = None,
        category: Category = None,
        available: bool | None = None,
        q: Search = None,
        cursor: Cursor = None,
    ) -> Response:
        page = await _list_products(
            gateway,
            retailer=retailer,
            limit=limit,
            random=random,
            dataset_version=dataset_version,
            category=category,
            available=available,
            q=q,
            cursor=cursor,
        )
        return JSONBytes(dump_json([serializers.product(p) for p in page.items]))

    return thin


@router.get(
    "/v1/products/{product_id}",
    response_model=Product,
    responses={404: PROBLEM, 503: PROBLEM},
    summary="One product, by its id (UUID) or its retailer product_id",
)
async def get_product(gateway: GatewayDep, product_id: str) -> Response:
    if not product_id or len(product_id) > 128:
        raise HTTPException(404, "product not found")
    product = await gateway.clients.catalog.GetProduct(catalog_pb2.GetProductRequest(id=product_id))
    return JSONBytes(dump_json(serializers.product(product)))
