"""The live catalog as the assistant sees it: text search over available products and a batch look-up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc

from yummi.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from yummi_common.errors import Unavailable
from yummi_common.grpc_client import make_channel
from yummi_common.logging import get_logger

log = get_logger(__name__)


class Catalog(Protocol):
    async def search(self, *, query: str, limit: int) -> list[catalog_pb2.Product]:
        """Available products of the active dataset matching `query`."""
        ...

    async def batch_get(self, references: Sequence[str]) -> list[catalog_pb2.Product]:
        """The products the references name (UUIDs or retailer product_ids); unknown ones left out."""
        ...


class GrpcCatalog:
    """`CatalogService.ListProducts` / `BatchGetProducts` at CATALOG_GRPC_ADDR; an outage is `Unavailable`."""

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

    async def search(self, *, query: str, limit: int) -> list[catalog_pb2.Product]:
        request = catalog_pb2.ListProductsRequest(q=query, available=True, limit=limit)
        try:
            response = await self._client().ListProducts(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as exc:
            raise _unavailable(exc, "ListProducts") from exc
        return list(response.items)

    async def batch_get(self, references: Sequence[str]) -> list[catalog_pb2.Product]:
        ids = list(dict.fromkeys(references))
        if not ids:
            return []
        try:
            response = await self._client().BatchGetProducts(
                catalog_pb2.BatchGetProductsRequest(ids=ids), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                log.info("catalog refused proposed ids", details=exc.details())
                return []  # ids the model made up; none of them can be offered
            raise _unavailable(exc, "BatchGetProducts") from exc
        return list(response.products)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None


def _unavailable(exc: grpc.aio.AioRpcError, method: str) -> Unavailable:
    log.warning("catalog call failed", method=method, code=exc.code().name)
    return Unavailable("the catalog is unavailable; try again shortly")
