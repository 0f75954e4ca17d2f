"""Health (dependencies checked concurrently with a short deadline) and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from fastapi import APIRouter
from grpc_health.v1 import health_pb2
from starlette.responses import Response

from yummi.orders.v1 import orders_pb2
from yummi.payments.v1 import payments_pb2
from yummi_gateway.adapters.grpc_clients import SERVICES
from yummi_gateway.bootstrap import Gateway
from yummi_gateway.entrypoints.deps import GatewayDep
from yummi_gateway.entrypoints.schemas import Health
from yummi_gateway.responses import JSONBytes

router = APIRouter(tags=["health"])
HEALTH_DEADLINE_SECONDS = 0.5


async def _service_up(gateway: Gateway, name: str) -> bool:
    try:
        reply = await gateway.clients.health[name].Check(
            health_pb2.HealthCheckRequest(service=""), timeout=HEALTH_DEADLINE_SECONDS
        )
    except grpc.aio.AioRpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def _pending(call: Any, request: Any, field: str) -> int | None:
    try:
        reply = await call(request, timeout=HEALTH_DEADLINE_SECONDS)
    except grpc.aio.AioRpcError:
        return None
    return int(getattr(reply, field))


async def health_body(gateway: Gateway) -> dict[str, Any]:
    """Every service's health and the queue depths, fetched at once; a down service makes it `degraded`."""
    results = await asyncio.gather(
        *(_service_up(gateway, name) for name in SERVICES),
        _pending(gateway.clients.orders.GetPendingCounts, orders_pb2.PendingCountsRequest(), "orders_queued"),
        _pending(
            gateway.clients.payments.GetPendingCounts, payments_pb2.PendingCountsRequest(), "payments_pending"
        ),
    )
    services = {
        name: "ok" if up else "down" for name, up in zip(SERVICES, results[: len(SERVICES)], strict=True)
    }
    orders_queued, payments_pending = results[len(SERVICES) :]
    return {
        "status": "ok" if all(v == "ok" for v in services.values()) else "degraded",
        "version": gateway.settings.version,
        "services": services,
        "pending_counts": {"orders_queued": orders_queued, "payments_pending": payments_pending},
    }


@router.get(
    "/v1/health", response_model=Health, summary="Health of the gateway and every service (always 200)"
)
async def get_health(gateway: GatewayDep) -> Response:
    return JSONBytes(await health_body(gateway))


def thin_router() -> APIRouter:
    thin = APIRouter(tags=["thin slice"])

    @thin.get("/v1/thin/health", response_model=Health, summary="Health, for the thin-slice app")
    async def get_thin_health(gateway: GatewayDep) -> Response:
        return JSONBytes(await health_body(gateway))

    return thin


@router.get("/metrics", include_in_schema=False)
async def get_metrics(gateway: GatewayDep) -> Response:
    return Response(gateway.metrics.render(), media_type=gateway.metrics.content_type)
