"""The CatalogService servicer: maps requests to the service layer and rows to protobuf messages."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from typing import Any

import grpc

from yummi.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from yummi_catalog.adapters.file_store import DatasetStore, store_from_settings
from yummi_catalog.adapters.products import Record
from yummi_catalog.adapters.tables import AnyRow
from yummi_catalog.service_layer import datasets, imports, products, uploads
from yummi_common.logging import get_logger
from yummi_common.service import Runtime
from yummi_common.timeutil import to_timestamp

SERVICE_NAME = catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name
log = get_logger(__name__)


def product_message(row: Record, dataset_version: str) -> catalog_pb2.Product:
    """A Product straight from a products row (attributes stay the JSON text Postgres returned)."""
    return catalog_pb2.Product(
        id=str(row["id"]),
        retailer=row["retailer"],
        product_id=row["product_id"],
        catalog_ref_id=row["catalog_ref_id"],
        title=row["title"],
        url=row["url"],
        image_url=row["image_url"],
        price_minor=row["price_minor"],
        currency=row["currency"],
        category=row["category"],
        available=row["available"],
        attributes_json=row["attributes_json"],
        dataset_version=dataset_version,
    )


def list_response(page: products.ProductPage) -> catalog_pb2.ListProductsResponse:
    version = page.dataset.version
    return catalog_pb2.ListProductsResponse(
        items=[product_message(row, version) for row in page.rows],
        next_cursor=page.next_cursor,
        dataset_version=version,
        checksum_sha256=page.dataset.checksum_sha256,
    )


def dataset_message(row: AnyRow, *, upload: catalog_pb2.UploadTarget | None = None) -> catalog_pb2.Dataset:
    return catalog_pb2.Dataset(
        id=str(row.id),
        name=row.name,
        version=row.version,
        status=row.status,
        source=row.source,
        notes=row.notes,
        item_count=row.item_count,
        checksum_sha256=row.checksum_sha256 or "",
        size_bytes=row.size_bytes,
        created_by=row.created_by,
        created_at=to_timestamp(row.created_at),
        activated_at=to_timestamp(row.activated_at),
        progress=catalog_pb2.Progress(done=row.progress_done, total=row.progress_total),
        upload=upload,
        error=row.error or "",
    )


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    """Every RPC opens its own unit of work; writes commit inside the service layer."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        store: DatasetStore | None = None,
        reader: products.CatalogReader | None = None,
    ) -> None:
        self._runtime = runtime
        self._store = store or store_from_settings(runtime.settings)
        self._max_upload_bytes = runtime.settings.dataset_upload_max_bytes
        self._pages = products.PageCache()
        # The response of each cached page, built once (dropped with the page when the cache evicts it).
        self._responses: weakref.WeakKeyDictionary[products.ProductPage, catalog_pb2.ListProductsResponse] = (
            weakref.WeakKeyDictionary()
        )
        self.reader = reader or products.CatalogReader(
            runtime.engine, refresh_seconds=runtime.settings.catalog_live_refresh_seconds
        )

    async def ImportCatalog(
        self, request: catalog_pb2.ImportCatalogRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> catalog_pb2.ImportCatalogResponse:
        async with self._runtime.uow() as uow:
            result = await imports.import_catalog(
                uow=uow,
                store=self._store,
                content=request.content,
                skip_invalid=request.skip_invalid,
                created_by=request.created_by,
                name=request.name,
                source=request.source,
            )
        return catalog_pb2.ImportCatalogResponse(
            dataset_id=str(result.dataset_id),
            version=result.version,
            item_count=result.item_count,
            checksum_sha256=result.checksum_sha256,
            active=result.active,
            already_imported=result.already_imported,
            skipped=[
                catalog_pb2.ItemError(index=p.index, reason=p.reason, product_id=p.product_id)
                for p in result.skipped
            ],
        )

    async def ListProducts(
        self, request: catalog_pb2.ListProductsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> catalog_pb2.ListProductsResponse:
        page = await products.list_products(
            reader=self.reader,
            limit=request.limit,
            retailer=request.retailer,
            category=request.category,
            available=request.available if request.HasField("available") else None,
            q=request.q,
            random=request.random,
            dataset_version=request.dataset_version,
            cursor=request.cursor,
            cache=self._pages,
        )
        if request.random:
            return list_response(page)
        response = self._responses.get(page)
        if response is None:
            response = self._responses[page] = list_response(page)
        return response

    async def GetProduct(
        self, request: catalog_pb2.GetProductRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> catalog_pb2.Product:
        row, dataset = await products.get_product(
            reader=self.reader, product_id=request.id, dataset_version=request.dataset_version
        )
        return product_message(row, dataset.version)

    async def BatchGetProducts(
        self, request: catalog_pb2.BatchGetProductsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> catalog_pb2.BatchGetProductsResponse:
        rows, missing, dataset = await products.batch_get_products(
            reader=self.reader, ids=list(request.ids), retailer=request.retailer
        )
        return catalog_pb2.BatchGetProductsResponse(
            products=[product_message(row, dataset.version) for row in rows],
            missing=missing,
            dataset_version=dataset.version,
        )

    async def GetCatalogSource(
        self, request: catalog_pb2.GetCatalogSourceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> catalog_pb2.CatalogSource:
        async with self._runtime.uow() as uow:
            row = await datasets.catalog_source(uow=uow)
        if row is None:
            return catalog_pb2.CatalogSource(source="postgres")
        return catalog_pb2.CatalogSource(
            source="postgres",
            dataset_version=row.version,
            item_count=row.item_count,
            activated_at=to_timestamp(row.activated_at),
            dataset_id=str(row.id),
            checksum_sha256=row.checksum_sha256 or "",
        )

    async def CreateDataset(
        self, request: catalog_pb2.CreateDatasetRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> catalog_pb2.Dataset:
        async with self._runtime.uow() as uow:
            row, target = await uploads.create_dataset(
                uow=uow,
                store=self._store,
                name=request.name,
                version=request.version,
                notes=request.notes,
                created_by=request.created_by,
                upload_base_url=request.upload_base_url,
            )
        return dataset_message(
            row, upload=catalog_pb2.UploadTarget(method=target.method, url=target.url, headers=target.headers)
        )

    async def UploadDatasetFile(
        self,
        request_iterator: AsyncIterator[catalog_pb2.UploadDatasetFileChunk],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> catalog_pb2.UploadDatasetFileResponse:
        stored = await uploads.upload_dataset_file(
            uow_factory=self._runtime.uow,
            store=self._store,
            chunks=request_iterator,
            max_bytes=self._max_upload_bytes,
        )
        return catalog_pb2.UploadDatasetFileResponse(
            size_bytes=stored.size_bytes, checksum_sha256=stored.checksum_sha256
        )

    async def CompleteDataset(
        self, request: catalog_pb2.CompleteDatasetRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> catalog_pb2.Dataset:
        async with self._runtime.uow() as uow:
            row = await uploads.complete_dataset(
                uow=uow,
                store=self._store,
                dataset_id=request.id,
                checksum=request.checksum_sha256,
                max_bytes=self._max_upload_bytes,
            )
        return dataset_message(row)

    async def GetDataset(
        self, request: catalog_pb2.DatasetRef, context: grpc.aio.ServicerContext[Any, Any]
    ) -> catalog_pb2.Dataset:
        async with self._runtime.uow() as uow:
            row = await datasets.get_dataset(uow=uow, dataset_id=request.id)
        return dataset_message(row)

    async def ListDatasets(
        self, request: catalog_pb2.ListDatasetsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> catalog_pb2.ListDatasetsResponse:
        async with self._runtime.uow() as uow:
            rows, next_cursor = await datasets.list_datasets(
                uow=uow, limit=request.limit, cursor=request.cursor
            )
        return catalog_pb2.ListDatasetsResponse(
            items=[dataset_message(row) for row in rows], next_cursor=next_cursor
        )

    async def ActivateDataset(
        self, request: catalog_pb2.DatasetRef, context: grpc.aio.ServicerContext[Any, Any]
    ) -> catalog_pb2.Dataset:
        async with self._runtime.uow() as uow:
            row = await datasets.activate_dataset(uow=uow, dataset_id=request.id)
        return dataset_message(row)


def register(server: grpc.aio.Server, runtime: Runtime, *, store: DatasetStore | None = None) -> list[str]:
    """Add the catalog servicer to `server`; return the service names for health and reflection.

    Its reader re-reads the live version after an activation commits in this process, and when any replica
    announces one (`catalog.dataset.activated`).
    """
    servicer = CatalogServicer(runtime, store=store)
    runtime.after_commit.append(servicer.reader.invalidate)
    # every replica's copy (runtime.watch): the reader's refresh interval covers one missed while disconnected
    runtime.watch(
        datasets.DATASET_ACTIVATED, lambda _body: servicer.reader.invalidate(), name="catalog-activations"
    )
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server)
    return [SERVICE_NAME]
