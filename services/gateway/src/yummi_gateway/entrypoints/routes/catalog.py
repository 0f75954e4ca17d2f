"""The public catalog: product pages (cacheable per dataset and query), the thin slice's list, one product."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.responses import Response

from yummi.catalog.v1 import catalog_pb2
from yummi_gateway.bootstrap import Gateway
from yummi_gateway.domain.http_caching import weak_etag
from yummi_gateway.entrypoints import serializers
from yummi_gateway.entrypoints.deps import GatewayDep
from yummi_gateway.entrypoints.schemas import PROBLEM, Product, ProductPage
from yummi_gateway.page_cache import CachedPage, cached_response, page_key
from yummi_gateway.responses import JSONBytes, dump_json

router = APIRouter(tags=["catalog"])
NOT_MODIFIED: dict[str, Any] = {"description": "Not modified: If-None-Match named the current ETag"}
CATALOG_PROBLEMS: dict[int | str, dict[str, Any]] = {
    304: NOT_MODIFIED,
    404: PROBLEM,  # an unknown dataset_version
    422: PROBLEM,
    503: PROBLEM,
}
NOT_CACHEABLE = "no-store"

Retailer = Annotated[str | None, Query(max_length=64)]
Limit = Annotated[int, Query(ge=1, le=500)]
DatasetVersion = Annotated[str | None, Query(max_length=64)]
Category = Annotated[str | None, Query(max_length=200)]
Search = Annotated[str | None, Query(max_length=200)]
Cursor = Annotated[str | None, Query(max_length=512)]


@dataclasses.dataclass(frozen=True)
class CatalogQuery:
    retailer: str | None
    limit: int
    random: bool
    dataset_version: str | None
    category: str | None
    available: bool | None
    q: str | None
    cursor: str | None

    def request(self) -> catalog_pb2.ListProductsRequest:
        message = catalog_pb2.ListProductsRequest(
            retailer=self.retailer or "",
            limit=self.limit,
            random=self.random,
            dataset_version=self.dataset_version or "",
            category=self.category or "",
            q=(self.q or "").strip(),
            cursor=self.cursor or "",
        )
        if self.available is not None:
            message.available = self.available
        return message

    def canonical(self) -> str:
        # vars(): the fields are scalars, so this is dataclasses.asdict's JSON without its deep copy.
        return orjson.dumps(vars(self), option=orjson.OPT_SORT_KEYS).decode()


async def catalog_query(
    retailer: Retailer = None,
    limit: Limit = 50,
    random: bool = False,
    dataset_version: DatasetVersion = None,
    category: Category = None,
    available: bool | None = None,
    q: Search = None,
    cursor: Cursor = None,
) -> CatalogQuery:
    return CatalogQuery(retailer, limit, random, dataset_version, category, available, q, cursor)


CatalogQueryDep = Annotated[CatalogQuery, Depends(catalog_query)]


async def _page(
    request: Request, gateway: Gateway, query: CatalogQuery, *, shape: str, render: Callable[[Any], Any]
) -> Response:
    """Pages of a dataset are cacheable (weak ETag of its checksum and the query); random picks are not.

    Cacheable pages are also kept at the edge for a moment (`Gateway.pages`, see yummi_gateway.page_cache),
    named by path and raw query string: the shape (catalog page or thin list) is in the path.
    """
    if query.random:
        page = await gateway.clients.catalog.ListProducts(query.request())
        return JSONBytes(dump_json(render(page)), headers={"Cache-Control": NOT_CACHEABLE})
    canonical = query.canonical()

    async def load() -> CachedPage:
        page = await gateway.clients.catalog.ListProducts(query.request())
        dataset = page.checksum_sha256 or page.dataset_version
        etag = weak_etag(shape, gateway.settings.version, dataset, canonical) if dataset else None
        return CachedPage(
            dump_json(render(page)), etag, checksum=dataset or None, live=not query.dataset_version
        )

    cached = await gateway.pages.fetch(page_key(request.scope), load)
    return cached_response(cached, request.headers.get("if-none-match"))


def _product_page(page: catalog_pb2.ListProductsResponse) -> dict[str, Any]:
    return {
        "items": [serializers.product(p) for p in page.items],
        "next_cursor": page.next_cursor or None,
        "dataset_version": page.dataset_version or None,
    }


def _bare_list(page: catalog_pb2.ListProductsResponse) -> list[dict[str, Any]]:
    return [serializers.product(p) for p in page.items]


@router.get(
    "/v1/catalog",
    response_model=ProductPage,
    responses=CATALOG_PROBLEMS,
    summary="A page of the live catalog",
    description="Cacheable: `ETag` (weak) and `Cache-Control: public, max-age=60`; `If-None-Match` → 304. "
    "`random=true` answers are `no-store`.",
)
async def list_catalog(request: Request, gateway: GatewayDep, query: CatalogQueryDep) -> Response:
    return await _page(request, gateway, query, shape="catalog", render=_product_page)


def thin_router() -> APIRouter:
    thin = APIRouter(tags=["thin slice"])

    @thin.get(
        "/v1/thin/catalog",
        response_model=list[Product],
        responses=CATALOG_PROBLEMS,
        summary="The live catalog as a bare list (thin-slice app)",
    )
    async def list_thin_catalog(request: Request, gateway: GatewayDep, query: CatalogQueryDep) -> Response:
        return await _page(request, gateway, query, shape="thin", render=_bare_list)

    return thin


@router.get(
    "/v1/products/{product_id}",
    response_model=Product,
    responses={304: NOT_MODIFIED, 404: PROBLEM, 503: PROBLEM},
    summary="One product, by its id (UUID) or its retailer product_id",
)
async def get_product(request: Request, gateway: GatewayDep, product_id: str) -> Response:
    if not product_id or len(product_id) > 128:
        raise HTTPException(404, "product not found")

    async def load() -> CachedPage:
        product = await gateway.clients.catalog.GetProduct(catalog_pb2.GetProductRequest(id=product_id))
        body = dump_json(serializers.product(product))
        return CachedPage(body, weak_etag("product", body.decode()))

    cached = await gateway.pages.fetch(page_key(request.scope), load)
    return cached_response(cached, request.headers.get("if-none-match"))
