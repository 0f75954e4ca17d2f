"""One gRPC channel per service and its stubs (deadlines, retries, request id: see make_channel)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2_grpc

from yummi.ai.v1 import ai_pb2_grpc
from yummi.catalog.v1 import catalog_pb2_grpc
from yummi.orders.v1 import orders_pb2_grpc
from yummi.payments.v1 import payments_pb2_grpc
from yummi_common.grpc_client import make_channel
from yummi_common.settings import Settings

SERVICES = ("catalog", "orders", "payments", "ai")


@dataclass
class ServiceClients:
    catalog: catalog_pb2_grpc.CatalogServiceStub
    orders: orders_pb2_grpc.OrdersServiceStub
    payments: payments_pb2_grpc.PaymentsServiceStub
    ai: ai_pb2_grpc.AiServiceStub
    health: dict[str, health_pb2_grpc.HealthStub]
    channels: dict[str, grpc.aio.Channel]

    @classmethod
    def connect(cls, settings: Settings) -> ServiceClients:
        """Channels connect lazily: a service that is down fails its calls, not the gateway's start."""
        channels = {
            name: make_channel(settings.grpc_addr_for(name), deadline=settings.grpc_deadline_seconds)
            for name in SERVICES
        }
        return cls(
            catalog=catalog_pb2_grpc.CatalogServiceStub(channels["catalog"]),
            orders=orders_pb2_grpc.OrdersServiceStub(channels["orders"]),
            payments=payments_pb2_grpc.PaymentsServiceStub(channels["payments"]),
            ai=ai_pb2_grpc.AiServiceStub(channels["ai"]),
            health={name: health_pb2_grpc.HealthStub(channel) for name, channel in channels.items()},
            channels=channels,
        )

    async def close(self) -> None:
        await asyncio.gather(*(channel.close(grace=1.0) for channel in self.channels.values()))
