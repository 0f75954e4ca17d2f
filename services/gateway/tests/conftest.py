"""Gateway test fixtures: in-process gRPC fakes of the services (real protocol, canned data) and the app."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import orjson
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from yummi.ai.v1 import ai_pb2, ai_pb2_grpc
from yummi.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from yummi.common.v1 import common_pb2
from yummi.orders.v1 import orders_pb2, orders_pb2_grpc
from yummi.payments.v1 import payments_pb2, payments_pb2_grpc
from yummi_common.errors import Conflict, InvalidArgument, NotFound, Unavailable, Unimplemented
from yummi_common.grpc_server import ServerContextInterceptor
from yummi_common.settings import Settings
from yummi_common.timeutil import to_timestamp, utcnow

# Standalone runs (without the repo's session plugin) get their own database and stream.
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/yummi_gateway_dev")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("REDIS_KEY_PREFIX", f"devgateway{uuid.uuid4().hex[:8]}:")
os.environ.setdefault("NATS_STREAM", "DEV_GATEWAY")
os.environ.setdefault("NATS_SUBJECT_PREFIX", "devgateway.events")
os.environ.setdefault("ENVIRONMENT", "test")

ADMIN_EMAIL = "admin@example.com"
RUNNER_EMAIL = "runner@example.com"
PAYFAST_IP = "197.97.145.144"


def product_message(n: int, *, available: bool = True) -> catalog_pb2.Product:
    return catalog_pb2.Product(
        id=str(uuid.UUID(int=n)),
        retailer="woolworths",
        product_id=f"WW{n:04d}",
        catalog_ref_id=f"ref-{n}",
        title=f"Product {n}",
        url=f"https://example.com/p/{n}",
        image_url="",
        price_minor=1000 + n,
        currency="ZAR",
        category="pantry",
        available=available,
        attributes_json=orjson.dumps({"brand": "Yummi", "size": f"{n}00g", "nested": {"a": [1, 2]}}).decode(),
        dataset_version="v1",
    )


@dataclass
class FakeState:
    products: dict[str, catalog_pb2.Product] = field(default_factory=dict)
    orders: dict[str, orders_pb2.Order] = field(default_factory=dict)
    checksums: set[str] = field(default_factory=set)
    itn_calls: list[payments_pb2.HandleItnRequest] = field(default_factory=list)
    last_list_request: catalog_pb2.ListProductsRequest | None = None
    list_calls: int = 0
    checksum: str = "c0ffee" * 10 + "beef"
    place_order_calls: int = 0
    place_order_keys: list[str] = field(default_factory=list)  # each call's idempotency_key
    place_order_delay: float = 0.0
    place_order_failures: int = 0

    def find_product(self, ref: str) -> catalog_pb2.Product | None:
        return self.products.get(ref) or next(
            (p for p in self.products.values() if p.product_id == ref), None
        )


class FakeCatalog(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def ListProducts(self, request: Any, context: Any) -> catalog_pb2.ListProductsResponse:
        self.state.last_list_request = request
        self.state.list_calls += 1
        if request.cursor and request.cursor != "page2":
            raise InvalidArgument("cursor is not valid", errors=[{"field": "cursor", "message": "malformed"}])
        items = [p for p in self.state.products.values() if not request.HasField("available") or p.available]
        items = items[: request.limit]
        next_cursor = "page2" if not request.cursor and len(items) == request.limit else ""
        return catalog_pb2.ListProductsResponse(
            items=items, next_cursor=next_cursor, dataset_version="v1", checksum_sha256=self.state.checksum
        )

    async def GetProduct(self, request: Any, context: Any) -> catalog_pb2.Product:
        product = self.state.find_product(request.id)
        if product is None:
            raise NotFound("product not found")
        return product

    async def ImportCatalog(self, request: Any, context: Any) -> catalog_pb2.ImportCatalogResponse:
        try:
            document = orjson.loads(request.content)
        except orjson.JSONDecodeError:
            raise InvalidArgument(
                "catalog is not JSON", errors=[{"field": "content", "message": "not JSON"}]
            ) from None
        items = document["items"] if isinstance(document, dict) else document
        errors = [
            {"index": i, "reason": "price is missing"}
            for i, item in enumerate(items)
            if not isinstance(item, dict) or "price" not in item
        ]
        if errors and not request.skip_invalid:
            raise InvalidArgument(f"{len(errors)} invalid items", errors=errors)
        checksum = hashlib.sha256(request.content).hexdigest()
        already = checksum in self.state.checksums
        self.state.checksums.add(checksum)
        return catalog_pb2.ImportCatalogResponse(
            dataset_id=str(uuid.UUID(checksum[:32])),
            version="v2",
            item_count=len(items) - len(errors),
            checksum_sha256=checksum,
            active=True,
            already_imported=already,
            skipped=[catalog_pb2.ItemError(index=e["index"], reason=e["reason"]) for e in errors],
        )

    async def GetCatalogSource(self, request: Any, context: Any) -> catalog_pb2.CatalogSource:
        return catalog_pb2.CatalogSource(
            source="postgres",
            dataset_version="v1",
            item_count=len(self.state.products),
            activated_at=to_timestamp(utcnow()),
        )


class FakeOrders(orders_pb2_grpc.OrdersServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def PlaceOrder(self, request: Any, context: Any) -> orders_pb2.Order:
        self.state.place_order_calls += 1
        self.state.place_order_keys.append(request.idempotency_key)
        if self.state.place_order_delay:
            await asyncio.sleep(self.state.place_order_delay)
        if self.state.place_order_failures:
            self.state.place_order_failures -= 1
            raise Unavailable("orders database is restarting")
        items = []
        for index, line in enumerate(request.items):
            product = self.state.find_product(line.product_id)
            if product is None:
                raise InvalidArgument(
                    "unknown product",
                    errors=[{"field": f"items[{index}].product_id", "message": "unknown product"}],
                )
            items.append(
                orders_pb2.OrderItem(
                    product_id=product.product_id,
                    title=product.title,
                    quantity=line.quantity,
                    unit_price_minor=product.price_minor,
                    line_total_minor=product.price_minor * line.quantity,
                )
            )
        now = to_timestamp(utcnow())
        order = orders_pb2.Order(
            id=str(uuid.uuid4()),
            user_id=request.user_id,
            status="queued",
            retailer=request.retailer,
            items=items,
            total_minor=sum(i.line_total_minor for i in items),
            currency="ZAR",
            notes=request.notes,
            created_at=now,
            updated_at=now,
            events=[orders_pb2.OrderEvent(type="placed", payload_json='{"by":"user"}', created_at=now)],
        )
        self.state.orders[order.id] = order
        return order

    def _owned(self, order_id: str, user_id: str, privileged: bool = False) -> orders_pb2.Order:
        order = self.state.orders.get(order_id)
        if order is None or (order.user_id != user_id and not privileged):
            raise NotFound("order not found")
        return order

    async def GetOrder(self, request: Any, context: Any) -> orders_pb2.Order:
        return self._owned(request.order_id, request.user_id, request.privileged)

    async def ListOrders(self, request: Any, context: Any) -> orders_pb2.ListOrdersResponse:
        items = [
            o
            for o in self.state.orders.values()
            if o.user_id == request.user_id and (not request.status or o.status == request.status)
        ]
        return orders_pb2.ListOrdersResponse(items=items[: request.limit])

    async def CancelOrder(self, request: Any, context: Any) -> orders_pb2.Order:
        order = self._owned(request.order_id, request.user_id)
        if order.status not in ("pending_payment", "queued"):
            raise Conflict(f"an order that is {order.status} cannot be cancelled")
        order.status = "cancelled"
        return order

    async def ClaimNextOrder(self, request: Any, context: Any) -> orders_pb2.ClaimNextOrderResponse:
        for order in self.state.orders.values():
            if order.status == "queued":
                order.status = "claimed"
                order.runner_id = request.runner_id
                order.lease_expires_at.CopyFrom(to_timestamp(utcnow()))
                return orders_pb2.ClaimNextOrderResponse(found=True, order=order)
        return orders_pb2.ClaimNextOrderResponse(found=False)

    async def HeartbeatOrder(self, request: Any, context: Any) -> orders_pb2.HeartbeatResponse:
        order = self.state.orders.get(request.order_id)
        if order is None or order.runner_id != request.runner_id:
            raise NotFound("order not found")
        return orders_pb2.HeartbeatResponse(lease_expires_at=to_timestamp(utcnow()))

    async def AckOrder(self, request: Any, context: Any) -> orders_pb2.Order:
        order = self.state.orders.get(request.order_id)
        if order is None or order.runner_id != request.runner_id:
            raise NotFound("order not found")
        order.status = request.outcome
        order.retailer_reference = request.retailer_reference
        order.ClearField("lease_expires_at")
        return order

    async def GetBasket(self, request: Any, context: Any) -> orders_pb2.Basket:
        raise Unimplemented("baskets are not available yet")

    async def GetPendingCounts(self, request: Any, context: Any) -> orders_pb2.PendingCounts:
        return orders_pb2.PendingCounts(
            orders_queued=sum(o.status == "queued" for o in self.state.orders.values())
        )

    async def ExportUserData(self, request: Any, context: Any) -> common_pb2.UserDataExport:
        count = sum(o.user_id == request.user_id for o in self.state.orders.values())
        return common_pb2.UserDataExport(context="orders", json=orjson.dumps({"orders": count}).decode())


class FakePayments(payments_pb2_grpc.PaymentsServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def GetWallet(self, request: Any, context: Any) -> payments_pb2.Wallet:
        return payments_pb2.Wallet(
            balance_minor=5000,
            currency="ZAR",
            transactions=[
                payments_pb2.WalletTransaction(
                    id=str(uuid.uuid4()),
                    amount_minor=5000,
                    entry_type="credit",
                    created_at=to_timestamp(utcnow()),
                )
            ][: request.limit or 20],
        )

    async def InitiatePayfast(self, request: Any, context: Any) -> payments_pb2.InitiatePayfastResponse:
        reference = str(uuid.uuid4())
        fields = [
            ("merchant_id", "10000100"),
            ("amount", f"{request.amount_minor / 100:.2f}"),
            ("signature", "abc"),
        ]
        return payments_pb2.InitiatePayfastResponse(
            reference=reference,
            action_url="https://sandbox.payfast.co.za/eng/process",
            fields=[payments_pb2.FormField(name=n, value=v) for n, v in fields],
            mode="sandbox",
        )

    async def HandleItn(self, request: Any, context: Any) -> payments_pb2.HandleItnResponse:
        self.state.itn_calls.append(request)
        if request.client_ip != PAYFAST_IP:
            raise InvalidArgument("ITN from an unknown host")
        accepted = b"payment_status=COMPLETE" in request.raw_body
        return payments_pb2.HandleItnResponse(accepted=accepted, outcome="credited" if accepted else "")

    async def GetPendingCounts(self, request: Any, context: Any) -> payments_pb2.PendingCounts:
        return payments_pb2.PendingCounts(payments_pending=2)

    async def ExportUserData(self, request: Any, context: Any) -> common_pb2.UserDataExport:
        return common_pb2.UserDataExport(context="payments", json='{"payments": []}')


class FakeAi(ai_pb2_grpc.AiServiceServicer):
    async def GetUsage(self, request: Any, context: Any) -> ai_pb2.UsageSummary:
        return ai_pb2.UsageSummary(tokens_today=10, daily_token_limit=50_000, requests_today=1)

    async def ExportUserData(self, request: Any, context: Any) -> common_pb2.UserDataExport:
        return common_pb2.UserDataExport(context="ai", json='{"credentials": []}')


@dataclass
class FakeServices:
    addr: str
    dead_addr: str
    state: FakeState


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fake_services() -> AsyncIterator[FakeServices]:
    """Catalog, orders and payments fakes on one grpc.aio server; `dead_addr` has nothing listening (ai)."""
    state = FakeState(
        products={
            p.id: p for p in (product_message(1), product_message(2), product_message(3, available=False))
        }
    )
    server = grpc.aio.server(interceptors=[ServerContextInterceptor()])
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(FakeCatalog(state), server)
    orders_pb2_grpc.add_OrdersServiceServicer_to_server(FakeOrders(state), server)
    payments_pb2_grpc.add_PaymentsServiceServicer_to_server(FakePayments(state), server)
    ai_pb2_grpc.add_AiServiceServicer_to_server(FakeAi(), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield FakeServices(addr=f"127.0.0.1:{port}", dead_addr=f"127.0.0.1:{free_port()}", state=state)
    finally:
        await server.stop(grace=None)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def migrated() -> None:
    """The identity schema at head in the session database (idempotent)."""
    from yummi_gateway.cli import migrate

    await asyncio.to_thread(migrate, Settings())


@pytest.fixture(scope="session")
def make_settings(fake_services: FakeServices) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "auth_disable_verification": True,
            "catalog_grpc_addr": fake_services.addr,
            "orders_grpc_addr": fake_services.addr,
            "payments_grpc_addr": fake_services.addr,
            "ai_grpc_addr": fake_services.dead_addr,
            "grpc_deadline_seconds": 2.0,
            "admin_emails": ADMIN_EMAIL,
            "runner_emails": RUNNER_EMAIL,
            "cors_allowed_origins": "https://app.example.com",
            # Generous budgets: the shared clients make many calls; the limit tests set their own.
            "rate_limit_per_minute": 100_000,
            "rate_limit_ai_per_minute": 100_000,
            "rate_limit_ip_per_minute": 100_000,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(migrated: None, make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    """The app (lifespan run) behind an in-process HTTP client."""
    from yummi_gateway.app import create_app

    app = create_app(make_settings(trusted_proxies="10.0.0.0/8"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http


def dev_token(sub: str, email: str | None, **claims: Any) -> str:
    """An unsigned development JWT (accepted only when dev auth is allowed)."""
    import base64
    import time

    def b64(value: Any) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    now = int(time.time())
    payload = {"sub": sub, "email": email, "iat": now, "exp": now + 3600, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


@pytest.fixture
def auth() -> Callable[..., dict[str, str]]:
    """`auth(sub=..., email=...)` → Authorization headers with a dev token (a fresh user by default)."""

    def headers(sub: str | None = None, email: str | None = None, **claims: Any) -> dict[str, str]:
        sub = sub or f"user_{uuid.uuid4().hex[:12]}"
        return {"Authorization": f"Bearer {dev_token(sub, email or f'{sub}@example.com', **claims)}"}

    return headers


@pytest.fixture
def app_client(migrated: None, make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    """`async with app_client(**settings_overrides) as http:` — a separate app with other settings.

    `client_ip=` sets the socket peer the app sees (default 127.0.0.1).
    """
    from contextlib import asynccontextmanager

    from yummi_gateway.app import create_app

    @asynccontextmanager
    async def open_client(client_ip: str = "127.0.0.1", **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(**overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield http

    return open_client
