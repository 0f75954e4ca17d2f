"""Wires the orders service: tables, migrations, servicer, consumers, lease sweeper and the catalog client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

import grpc

from yummi_common.messaging.consumer import Subscription
from yummi_common.service import Runtime, ServiceSpec
from yummi_orders.adapters.catalog import DATASET_ACTIVATED, CachedCatalog, GrpcCatalog
from yummi_orders.adapters.tables import messaging, metadata
from yummi_orders.config import OrdersConfig
from yummi_orders.entrypoints import consumers, grpc_server
from yummi_orders.entrypoints.queue_metrics import run_queue_gauges
from yummi_orders.entrypoints.sweeper import run_lease_sweeper

SERVICE = "orders"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class OrdersApp:
    """What one orders process shares between its servicer and background jobs (the catalog channel)."""

    def __init__(self) -> None:
        self._catalog: GrpcCatalog | None = None
        self._cached: CachedCatalog | None = None

    def catalog(self, runtime: Runtime) -> CachedCatalog:
        if self._cached is None:
            self._catalog = GrpcCatalog(
                addr=runtime.settings.catalog_grpc_addr, deadline=runtime.settings.grpc_deadline_seconds
            )
            self._cached = CachedCatalog(self._catalog, ttl=runtime.settings.orders_catalog_cache_seconds)
        return self._cached

    def register(self, server: grpc.aio.Server, runtime: Runtime) -> list[str]:
        servicer = grpc_server.OrdersServicer(
            runtime=runtime,
            catalog=self.catalog(runtime),
            config=OrdersConfig.from_settings(runtime.settings),
        )
        return grpc_server.register(server, servicer)

    def subscriptions(self, runtime: Runtime) -> list[Subscription]:
        return consumers.subscriptions()

    def background(self, runtime: Runtime) -> list[Awaitable[None]]:
        config = OrdersConfig.from_settings(runtime.settings)
        catalog = self.catalog(runtime)
        if catalog.ttl > 0:  # kept prices are dropped whenever any catalog replica activates a version
            runtime.watch(DATASET_ACTIVATED, lambda _body: catalog.invalidate(), name="orders-activations")
        return [
            run_lease_sweeper(
                uow_factory=runtime.uow,
                max_attempts=config.max_attempts,
                interval=config.sweep_interval_seconds,
                stop=runtime.stop_event,
            ),
            self._close_catalog_on_stop(runtime),
            run_queue_gauges(runtime),
        ]

    async def _close_catalog_on_stop(self, runtime: Runtime) -> None:
        try:
            await runtime.stop_event.wait()
        finally:
            if self._catalog is not None:
                await asyncio.shield(self._catalog.close())


app = OrdersApp()
SPEC = ServiceSpec(
    name=SERVICE,
    metadata=metadata,
    tables=messaging,
    migrations_dir=MIGRATIONS_DIR,
    register=app.register,
    subscriptions=app.subscriptions,
    background=app.background,
)
