"""Admin: catalog imports and datasets (upload, index, activate/rollback), and chargebacks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import Response

from yummi.catalog.v1 import catalog_pb2
from yummi.payments.v1 import payments_pb2
from yummi_gateway.entrypoints import serializers
from yummi_gateway.entrypoints.deps import JSON_BODY, AdminUser, GatewayDep, is_json_media_type, parse_uuid
from yummi_gateway.entrypoints.schemas import (
    AUTH_PROBLEMS,
    BODY_PROBLEMS,
    PROBLEM,
    CatalogSource,
    Chargeback,
    ChargebackIn,
    CompleteDatasetIn,
    Dataset,
    DatasetIn,
    DatasetPage,
    ImportOut,
    UploadOut,
)
from yummi_gateway.responses import JSONBytes, dump_json

router = APIRouter(tags=["admin"])
ADMIN_PROBLEMS = {**AUTH_PROBLEMS, **BODY_PROBLEMS, 404: PROBLEM, 409: PROBLEM, 422: PROBLEM}
IMPORT_DEADLINE_SECONDS = 120.0
UPLOAD_DEADLINE_SECONDS = 3600.0
# Completing a presigned upload reads the whole object back from the bucket to hash it (up to
# DATASET_UPLOAD_MAX_BYTES, 512 MiB by default): far longer than the default deadline of a call.
COMPLETE_DEADLINE_SECONDS = 600.0
UPLOAD_CHUNK_BYTES = 1024 * 1024


@router.post(
    "/v1/admin/catalog/import",
    status_code=201,
    response_model=ImportOut,
    responses={
        **ADMIN_PROBLEMS,
        200: {"model": ImportOut, "description": "Already imported: nothing changed"},
    },
    summary="Import a catalog.json (≤ 25 MB) as a new active dataset version",
    description="201 when a new version was imported and activated; 200 with the same body when a dataset "
    "with the same checksum was imported before. Bad items → 422 listing each index and reason, unless "
    "`skip_invalid=true`.",
)
async def import_catalog(
    request: Request,
    user: AdminUser,
    gateway: GatewayDep,
    skip_invalid: bool = False,
    name: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    content_type = request.headers.get("content-type")
    if content_type and not (
        is_json_media_type(content_type) or content_type.startswith("application/octet-stream")
    ):
        raise HTTPException(415, "Send the catalog as application/json.")
    content = await request.body()
    if not content.strip():
        raise HTTPException(400, "The catalog body is empty.")
    reply = await gateway.clients.catalog.ImportCatalog(
        catalog_pb2.ImportCatalogRequest(
            content=content,
            skip_invalid=skip_invalid,
            created_by=str(user.id),
            name=name or "",
            source="upload",
        ),
        timeout=IMPORT_DEADLINE_SECONDS,
    )
    if reply.active and not reply.already_imported:
        gateway.pages.invalidate(reply.checksum_sha256)  # this gateway's pages; the others hear it over NATS
    body = {
        "dataset_id": reply.dataset_id,
        "version": reply.version,
        "item_count": reply.item_count,
        "checksum_sha256": reply.checksum_sha256,
        "active": reply.active,
        "already_imported": reply.already_imported,
        "skipped": [
            {"index": s.index, "reason": s.reason, "product_id": s.product_id or None} for s in reply.skipped
        ],
    }
    return JSONBytes(dump_json(body), status_code=200 if reply.already_imported else 201)


@router.get(
    "/v1/admin/catalog/source",
    response_model=CatalogSource,
    responses=ADMIN_PROBLEMS,
    summary="The live catalog",
)
async def catalog_source(user: AdminUser, gateway: GatewayDep) -> Response:
    reply = await gateway.clients.catalog.GetCatalogSource(catalog_pb2.GetCatalogSourceRequest())
    body = {
        "source": reply.source or "postgres",
        "dataset_version": reply.dataset_version or None,
        "item_count": reply.item_count,
        "activated_at": serializers.timestamp(reply, "activated_at"),
    }
    return JSONBytes(dump_json(body))


def _dataset(reply: catalog_pb2.Dataset, status_code: int = 200) -> Response:
    return JSONBytes(dump_json(serializers.dataset(reply)), status_code=status_code)


@router.post(
    "/v1/admin/datasets",
    status_code=201,
    response_model=Dataset,
    responses=ADMIN_PROBLEMS,
    dependencies=JSON_BODY,
    summary="Create a dataset version and get where to upload its file",
)
async def create_dataset(body: DatasetIn, request: Request, user: AdminUser, gateway: GatewayDep) -> Response:
    reply = await gateway.clients.catalog.CreateDataset(
        catalog_pb2.CreateDatasetRequest(
            name=body.name,
            version=body.version or "",
            notes=body.notes or "",
            created_by=str(user.id),
            upload_base_url=str(request.base_url).rstrip("/"),
        )
    )
    return _dataset(reply, 201)


@router.put(
    "/v1/admin/datasets/{dataset_id}/file",
    response_model=UploadOut,
    responses=ADMIN_PROBLEMS,
    summary="Upload a dataset's file (local store), streamed to the catalog service",
)
async def upload_dataset_file(
    dataset_id: str, request: Request, user: AdminUser, gateway: GatewayDep
) -> Response:
    did = str(parse_uuid(dataset_id, what="dataset"))

    async def chunks() -> AsyncIterator[catalog_pb2.UploadDatasetFileChunk]:
        first = True
        buffer = bytearray()
        async for part in request.stream():
            buffer += part
            while len(buffer) >= UPLOAD_CHUNK_BYTES:
                yield catalog_pb2.UploadDatasetFileChunk(
                    dataset_id=did if first else "", data=bytes(buffer[:UPLOAD_CHUNK_BYTES])
                )
                del buffer[:UPLOAD_CHUNK_BYTES]
                first = False
        if buffer or first:
            yield catalog_pb2.UploadDatasetFileChunk(dataset_id=did if first else "", data=bytes(buffer))

    reply = await gateway.clients.catalog.UploadDatasetFile(chunks(), timeout=UPLOAD_DEADLINE_SECONDS)
    return JSONBytes({"size_bytes": reply.size_bytes, "checksum_sha256": reply.checksum_sha256})


@router.post(
    "/v1/admin/datasets/{dataset_id}/complete",
    status_code=202,
    response_model=Dataset,
    responses=ADMIN_PROBLEMS,
    dependencies=JSON_BODY,
    summary="Finish an upload: the catalog checks the checksum and indexes in the background",
)
async def complete_dataset(
    dataset_id: str, body: CompleteDatasetIn, user: AdminUser, gateway: GatewayDep
) -> Response:
    did = str(parse_uuid(dataset_id, what="dataset"))
    reply = await gateway.clients.catalog.CompleteDataset(
        catalog_pb2.CompleteDatasetRequest(id=did, checksum_sha256=body.checksum_sha256.lower()),
        timeout=COMPLETE_DEADLINE_SECONDS,
    )
    return _dataset(reply, 202)


@router.get(
    "/v1/admin/datasets", response_model=DatasetPage, responses=ADMIN_PROBLEMS, summary="Dataset versions"
)
async def list_datasets(
    user: AdminUser,
    gateway: GatewayDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    reply = await gateway.clients.catalog.ListDatasets(
        catalog_pb2.ListDatasetsRequest(limit=limit, cursor=cursor or "")
    )
    body = {"items": [serializers.dataset(d) for d in reply.items], "next_cursor": reply.next_cursor or None}
    return JSONBytes(dump_json(body))


@router.get(
    "/v1/admin/datasets/{dataset_id}", response_model=Dataset, responses=ADMIN_PROBLEMS, summary="One dataset"
)
async def get_dataset(dataset_id: str, user: AdminUser, gateway: GatewayDep) -> Response:
    did = str(parse_uuid(dataset_id, what="dataset"))
    return _dataset(await gateway.clients.catalog.GetDataset(catalog_pb2.DatasetRef(id=did)))


@router.post(
    "/v1/admin/datasets/{dataset_id}/activate",
    response_model=Dataset,
    responses=ADMIN_PROBLEMS,
    summary="Make this version live (also a rollback)",
)
async def activate_dataset(dataset_id: str, user: AdminUser, gateway: GatewayDep) -> Response:
    did = str(parse_uuid(dataset_id, what="dataset"))
    reply = await gateway.clients.catalog.ActivateDataset(catalog_pb2.DatasetRef(id=did))
    gateway.pages.invalidate(reply.checksum_sha256 or None)  # the others hear it over NATS
    return _dataset(reply)


@router.post(
    "/v1/admin/payments/{reference}/chargeback",
    response_model=Chargeback,
    responses=ADMIN_PROBLEMS,
    dependencies=JSON_BODY,
    summary="Record a chargeback: debit the wallet (even below zero) and block new debits",
)
async def chargeback(
    reference: str, user: AdminUser, gateway: GatewayDep, body: ChargebackIn | None = None
) -> Response:
    if not reference or len(reference) > 64:
        raise HTTPException(404, "payment not found")
    reply = await gateway.clients.payments.Chargeback(
        payments_pb2.ChargebackRequest(
            reference=reference, admin_id=str(user.id), reason=(body.reason if body else None) or ""
        )
    )
    return JSONBytes(dump_json({"reference": reply.reference, "wallet": serializers.wallet(reply.wallet)}))
