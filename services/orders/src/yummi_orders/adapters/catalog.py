"""The catalog as orders sees it: live products by UUID or retailer product_id, over gRPC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc

from yummi.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from yummi_common.errors import InvalidArgument, Unavailable
from yummi_common.grpc_client import make_channel, problem_errors
from yummi_common.logging import get_logger
from yummi_orders.domain.lines import CatalogProduct

log = get_logger(__name__)


class Catalog(Protocol):
    async def batch_get_products(self, references: Sequence[str]) -> list[CatalogProduct]:
        """The live products the references name (UUIDs or retailer product_ids); unknown ones left out."""
        ...


def product_from_proto(product: catalog_pb2.Product) -> CatalogProduct:
    return CatalogProduct(
        id=product.id,
        retailer=product.retailer,
        product_id=product.product_id,
        title=product.title,
        price_minor=product.price_minor,
        currency=product.currency,
        available=product.available,
        source=product,
    )


class GrpcCatalog:
    """Calls `CatalogService.BatchGetProducts` with the settings' deadline; an outage is `Unavailable`."""

    def __init__(self, *, addr: str, deadline: float) -> None:
        self._addr = addr
        self._deadline = deadline
        self._channel: grpc.aio.Channel | None = None
        self._stub: catalog_pb2_grpc.CatalogServiceStub | None = None

    def _client(self) -> catalog_pb2_grpc.CatalogServiceStub:
        if self._stub is None:
            self._channel = make_channel(self._addr, deadline=self._deadline)
            self._stub = catalog_pb2_grpc.CatalogServiceStub(self._channel)
        return self._stub

    async def batch_get_products(self, references: Sequence[str]) -> list[CatalogProduct]:
        """The live products the references name (UUIDs or retailer product_ids); unknown ones left out."""
        ids = list(dict.fromkeys(references))
        if not ids:
            return []
        # No retailer filter: a product of another retailer must be told apart from an unknown one.
        request = catalog_pb2.BatchGetProductsRequest(ids=ids)
        try:
            response = await self._client().BatchGetProducts(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(
                    exc.details() or "invalid product ids", errors=problem_errors(exc)
                ) from exc
            log.warning("catalog call failed", code=exc.code().name, details=exc.details())
            raise Unavailable("the catalog is unavailable; try again shortly") from exc
        return [product_from_proto(p) for p in response.products]

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None
