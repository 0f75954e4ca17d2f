"""The catalog as orders sees it: live products by UUID or retailer product_id, over gRPC."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

import grpc

from yummi.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from yummi_common.errors import InvalidArgument, Unavailable
from yummi_common.grpc_client import make_channel, problem_errors
from yummi_common.logging import get_logger
from yummi_orders.domain.lines import CatalogProduct

log = get_logger(__name__)
DATASET_ACTIVATED = "catalog.dataset.activated"  # after it, kept products may be stale (CachedCatalog)


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


class CachedCatalog:
    """The live products a reference named, kept for `ttl` seconds per process (0: every call asks).

    An order is priced from the live catalog; asking it once per order is a gRPC call and a catalog query
    for every order, mostly for the same popular products. `invalidate` (on `catalog.dataset.activated`,
    which every orders process hears over plain NATS) drops everything at once, and a fetch that started
    before an activation is not kept, so a new version's prices apply as soon as it is announced; the TTL
    bounds how long a missed announcement goes unnoticed, as `CATALOG_LIVE_REFRESH_SECONDS` does in the
    catalog. References the catalog does not know are never kept.
    """

    def __init__(
        self,
        inner: Catalog,
        *,
        ttl: float,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self.ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, tuple[CatalogProduct, ...]]] = {}
        self.generation = 0

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()

    async def batch_get_products(self, references: Sequence[str]) -> list[CatalogProduct]:
        """As the catalog answers: each live product any reference names, once."""
        if self.ttl <= 0:
            return await self._inner.batch_get_products(references)
        now = self._clock()
        found: dict[str, CatalogProduct] = {}
        missing: list[str] = []
        for reference in dict.fromkeys(references):
            entry = self._entries.get(reference)
            if entry is not None and now - entry[0] < self.ttl:
                found.update((p.id, p) for p in entry[1])
            else:
                missing.append(reference)
        if missing:
            generation = self.generation
            fetched = await self._inner.batch_get_products(missing)
            found.update((p.id, p) for p in fetched)
            if generation == self.generation:
                self._keep(missing, fetched)
        return list(found.values())

    def _keep(self, references: list[str], products: list[CatalogProduct]) -> None:
        if len(self._entries) + len(references) > self._max_entries:
            self._entries.clear()
        stored_at = self._clock()
        for reference in references:
            named = tuple(p for p in products if p.matches(reference))
            if named:
                self._entries[reference] = (stored_at, named)
