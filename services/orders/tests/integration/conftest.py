"""Integration fixtures: migrated Postgres, NATS consumers, an in-process catalog gRPC server."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import grpc
import pytest
import pytest_asyncio
from sqlalchemy import func, insert, select, text

from yummi.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from yummi.orders.v1 import orders_pb2_grpc
from yummi_common import migrations
from yummi_common.grpc_server import start_grpc_server
from yummi_common.service import Runtime
from yummi_common.settings import Settings
from yummi_orders.adapters.catalog import GrpcCatalog
from yummi_orders.adapters.tables import messaging, metadata, order_events, orders
from yummi_orders.bootstrap import MIGRATIONS_DIR
from yummi_orders.config import OrdersConfig
from yummi_orders.entrypoints import consumers, grpc_server

# The repo-level conftest sets these for a whole-suite run; alone, this service uses its own database/stream.
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/yummi_orders_dev")
os.environ.setdefault("NATS_URL", "nats://127.0.0.1:4222")
os.environ.setdefault("NATS_STREAM", "DEV_ORDERS")
os.environ.setdefault("NATS_SUBJECT_PREFIX", "devorders.events")

WOOLWORTHS = "woolworths"
PRODUCTS = [
    catalog_pb2.Product(
        id="6f1d2a3b-0000-4000-8000-000000000001",
        retailer=WOOLWORTHS,
        product_id="W-MILK",
        title="Full Cream Milk 2L",
        price_minor=3499,
        currency="ZAR",
        available=True,
        dataset_version="test-1",
    ),
    catalog_pb2.Product(
        id="6f1d2a3b-0000-4000-8000-000000000002",
        retailer=WOOLWORTHS,
        product_id="W-BREAD",
        title="Sourdough Loaf",
        price_minor=1899,
        currency="ZAR",
        available=True,
        dataset_version="test-1",
    ),
    catalog_pb2.Product(
        id="6f1d2a3b-0000-4000-8000-000000000003",
        retailer=WOOLWORTHS,
        product_id="W-GONE",
        title="Seasonal Figs",
        price_minor=5999,
        currency="ZAR",
        available=False,
        dataset_version="test-1",
    ),
    catalog_pb2.Product(
        id="6f1d2a3b-0000-4000-8000-000000000004",
        retailer="checkers",
        product_id="C-EGGS",
        title="Eggs 18",
        price_minor=6499,
        currency="ZAR",
        available=True,
        dataset_version="test-1",
    ),
    catalog_pb2.Product(
        id="6f1d2a3b-0000-4000-8000-000000000005",
        retailer=WOOLWORTHS,
        product_id="W-CHEESE",
        title="Cheddar 400g",
        price_minor=8999,
        currency="ZAR",
        available=True,
        dataset_version="test-1",
    ),
]


class FakeCatalog(catalog_pb2_grpc.CatalogServiceServicer):
    """The catalog's real protocol over a fixed product set (tests may change a product and put it back)."""

    def __init__(self) -> None:
        self.products = {p.id: p for p in PRODUCTS}
        self.calls = 0

    async def BatchGetProducts(
        self, request: catalog_pb2.BatchGetProductsRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.BatchGetProductsResponse:
        self.calls += 1
        found: dict[str, catalog_pb2.Product] = {}
        missing = []
        for ref in request.ids:
            hits = [
                p
                for p in self.products.values()
                if (p.id == ref.lower() or p.product_id == ref) and request.retailer in ("", p.retailer)
            ]
            if not hits:
                missing.append(ref)
            found.update((p.id, p) for p in hits)
        return catalog_pb2.BatchGetProductsResponse(
            products=list(found.values()), missing=missing, dataset_version="test-1"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fake_catalog() -> AsyncIterator[tuple[FakeCatalog, str]]:
    servicer = FakeCatalog()
    server = grpc.aio.server()
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(grace=None)


@pytest.fixture(scope="session")
def settings(fake_catalog: tuple[FakeCatalog, str]) -> Settings:
    return Settings().model_copy(
        update={
            "catalog_grpc_addr": fake_catalog[1],
            "grpc_deadline_seconds": 2.0,
            "order_lease_seconds": 300,
        }
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    await asyncio.to_thread(
        migrations.upgrade, settings=settings, service="orders", script_location=MIGRATIONS_DIR
    )
    rt = await Runtime.start(service="orders", settings=settings, metadata=metadata, tables=messaging)
    rt.start_consumers(consumers.subscriptions())
    yield rt
    await rt.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def catalog(settings: Settings) -> AsyncIterator[GrpcCatalog]:
    client = GrpcCatalog(addr=settings.catalog_grpc_addr, deadline=settings.grpc_deadline_seconds)
    yield client
    await client.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def orders_stub(
    runtime: Runtime, catalog: GrpcCatalog
) -> AsyncIterator[orders_pb2_grpc.OrdersServiceStub]:
    """The real OrdersService (interceptor, health, reflection) on a local port, and a stub to call it."""
    addr = f"127.0.0.1:{free_port()}"
    servicer = grpc_server.OrdersServicer(
        runtime=runtime, catalog=catalog, config=OrdersConfig.from_settings(runtime.settings)
    )
    server, _health = await start_grpc_server(addr=addr, register=lambda s: grpc_server.register(s, servicer))
    channel = grpc.aio.insecure_channel(addr)
    yield orders_pb2_grpc.OrdersServiceStub(channel)
    await channel.close()
    await server.stop(grace=None)


class OrdersHarness:
    """Set up states directly in the orders schema, check what was stored, and publish events to JetStream."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @staticmethod
    def free_port() -> int:
        """A local port nothing listens on (for a catalog that is down)."""
        return free_port()

    @staticmethod
    def new_retailer() -> str:
        """A retailer name no other test uses, so queue tests only see their own orders."""
        return f"test-{uuid.uuid4().hex[:12]}"

    async def make_order(
        self,
        *,
        status: str = "queued",
        retailer: str = WOOLWORTHS,
        user_id: uuid.UUID | None = None,
        runner_id: str | None = None,
        lease_expires_at: Any = None,
        attempts: int = 0,
        created_at: datetime | None = None,
        total_minor: int = 3499,
    ) -> uuid.UUID:
        """Insert an order row in any status (for queue and listing tests)."""
        order_id = uuid.uuid4()
        values: dict[str, Any] = {
            "id": order_id,
            "user_id": user_id or uuid.uuid4(),
            "status": status,
            "retailer": retailer,
            "items": [
                {
                    "product_id": "W-MILK",
                    "title": "Milk",
                    "quantity": 1,
                    "unit_price_minor": total_minor,
                    "line_total_minor": total_minor,
                }
            ],
            "total_minor": total_minor,
            "currency": "ZAR",
            "runner_id": runner_id,
            "lease_expires_at": lease_expires_at,
            "attempts": attempts,
        }
        if created_at is not None:
            values["created_at"] = values["updated_at"] = created_at
        async with self.runtime.engine.begin() as conn:
            await conn.execute(insert(orders).values(**values))
        return order_id

    async def order_row(self, order_id: uuid.UUID) -> Any:
        async with self.runtime.engine.connect() as conn:
            return (await conn.execute(select(orders).where(orders.c.id == order_id))).one()

    async def event_types(self, order_id: uuid.UUID) -> list[str]:
        async with self.runtime.engine.connect() as conn:
            rows = await conn.execute(
                select(order_events.c.type)
                .where(order_events.c.order_id == order_id)
                .order_by(order_events.c.created_at, order_events.c.id)
            )
            return [r.type for r in rows]

    async def outbox_bodies(self, event_type: str, order_id: uuid.UUID) -> list[Any]:
        """Decoded outbox bodies of `event_type` that name `order_id`."""
        from yummi_common.messaging.events import decode_body

        outbox = self.runtime.tables.outbox
        async with self.runtime.engine.connect() as conn:
            rows = await conn.execute(
                select(outbox.c.payload)
                .where(
                    outbox.c.event_type == event_type,
                    outbox.c.created_at > func.now() - text("interval '10 minutes'"),
                )
                .order_by(outbox.c.created_at)
            )
            bodies = [decode_body(event_type, r.payload) for r in rows]
        return [b for b in bodies if b.order_id == str(order_id)]

    async def count_orders_of(self, user_id: uuid.UUID) -> int:
        async with self.runtime.engine.connect() as conn:
            return int(
                (
                    await conn.execute(
                        select(func.count()).select_from(orders).where(orders.c.user_id == user_id)
                    )
                ).scalar()
                or 0
            )

    async def publish(self, event_type: str, body: Any, *, event_id: uuid.UUID) -> None:
        """Publish an event as a producer's relay would (CloudEvents headers, Nats-Msg-Id = event id)."""
        settings = self.runtime.settings
        assert self.runtime.js is not None
        await self.runtime.js.publish(
            f"{settings.nats_subject_prefix}.{event_type}",
            body.SerializeToString(),
            stream=settings.nats_stream,
            headers={
                "Nats-Msg-Id": str(event_id),
                "ce-id": str(event_id),
                "ce-type": event_type,
                "ce-source": "yummi.payments",
                "ce-specversion": "1.0",
            },
        )

    async def processed(self, event_id: uuid.UUID, *, within: float = 10.0) -> None:
        """Wait until the orders consumers have handled the event (its id is in the inbox)."""
        inbox = self.runtime.tables.inbox
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            async with self.runtime.engine.connect() as conn:
                hit = (
                    await conn.execute(select(inbox.c.event_id).where(inbox.c.event_id == event_id))
                ).first()
            if hit is not None:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"event {event_id} was not processed within {within}s")


@pytest.fixture
def harness(runtime: Runtime) -> OrdersHarness:
    return OrdersHarness(runtime)
