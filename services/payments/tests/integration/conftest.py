"""Fixtures for the payments integration tests: migrated database, runtime, event delivery, gRPC, PayFast."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import grpc
import pytest
import pytest_asyncio
import uvicorn
from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from yummi.payments.v1 import payments_pb2 as pb
from yummi.payments.v1 import payments_pb2_grpc
from yummi_common import migrations
from yummi_common.grpc_client import make_channel
from yummi_common.grpc_server import start_grpc_server
from yummi_common.messaging.consumer import ConsumerRuntime, Subscription
from yummi_common.messaging.events import decode_body, subject_for
from yummi_common.service import Runtime
from yummi_common.settings import Settings
from yummi_common.timeutil import utcnow
from yummi_devstack.messages import FakeMsg, event_message
from yummi_payments.adapters.payfast_client import PayfastItnVerifier
from yummi_payments.adapters.tables import messaging, metadata, payments
from yummi_payments.bootstrap import MIGRATIONS_DIR
from yummi_payments.config import PayfastConfig, payfast_config
from yummi_payments.entrypoints.consumers import subscriptions
from yummi_payments.entrypoints.grpc_server import PaymentsServicer
from yummi_payments.simulator import PayfastSimulator

# Defaults for running this folder alone; a repo-level conftest that sets these first wins.
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/yummi_payments_dev")
os.environ.setdefault("NATS_URL", "nats://127.0.0.1:4222")
os.environ.setdefault("NATS_STREAM", "DEV_PAYMENTS")
os.environ.setdefault("NATS_SUBJECT_PREFIX", "devpayments.events")
os.environ.setdefault("ENVIRONMENT", "test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def settings() -> Settings:
    settings = Settings()
    migrations.upgrade(settings=settings, service="payments", script_location=MIGRATIONS_DIR)
    return settings


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """The service's database side; events stay in the outbox, where the tests read them."""
    rt = await Runtime.start(
        service="payments", settings=settings, metadata=metadata, tables=messaging, with_messaging=False
    )
    yield rt
    await rt.close()


def _consumer_runtime(runtime: Runtime, subs: list[Subscription]) -> ConsumerRuntime:
    """This service's consumer runtime for driving handlers directly (`handle_message`, `handle_batch`)."""
    return ConsumerRuntime(
        service="payments",
        engine=runtime.engine,
        uow_factory=runtime.uow,
        tables=messaging,
        js=None,  # type: ignore[arg-type]  # handling a given message never touches JetStream
        settings=runtime.settings,
        subscriptions=subs,
    )


Deliver = Callable[..., Awaitable[uuid.UUID]]


@pytest.fixture(scope="session")
def deliver(runtime: Runtime) -> Deliver:
    """Deliver an event through the real consumer path (inbox row, handler, commit) of this service."""
    subs = {sub.event_type: sub for sub in subscriptions(runtime)}
    consumers = _consumer_runtime(runtime, list(subs.values()))

    async def _deliver(event_type: str, body: Message, *, event_id: uuid.UUID | None = None) -> uuid.UUID:
        eid = event_id or uuid.uuid4()
        headers = {
            "ce-id": str(eid),
            "ce-type": event_type,
            "ce-source": "yummi.tests",
            "ce-time": utcnow().isoformat(),
            "Nats-Msg-Id": str(eid),
        }
        msg = FakeMsg(subject_for("test", event_type), body.SerializeToString(), headers)
        await consumers.handle_message(subs[event_type], msg)  # type: ignore[arg-type]
        assert msg.outcome == "ack", f"{event_type} handler did not succeed ({msg.outcome})"
        return eid

    return _deliver


@pytest.fixture(scope="session")
def deliver_batch(runtime: Runtime) -> Callable[[list[tuple[uuid.UUID, Message]]], Awaitable[list[FakeMsg]]]:
    """Deliver `orders.order.placed` events as one fetched batch through the real consumer path."""
    real = next(s for s in subscriptions(runtime) if s.event_type == "orders.order.placed")
    assert real.batch is not None
    real_batch = real.batch
    failures: list[BaseException] = []

    async def watched(uow: Any, items: Any) -> list[bool]:
        try:
            return await real_batch(uow, items)
        except BaseException as exc:
            failures.append(exc)
            raise

    sub = replace(real, batch=watched)
    consumers = _consumer_runtime(runtime, [sub])

    async def _deliver(events: list[tuple[uuid.UUID, Message]]) -> list[FakeMsg]:
        msgs = [event_message(eid, sub.event_type, body.SerializeToString()) for eid, body in events]
        failures.clear()
        await consumers.handle_batch(sub, msgs)  # type: ignore[arg-type]
        assert not failures, f"the batch failed and went one by one: {failures!r}"
        return msgs

    return _deliver


@pytest.fixture(scope="session")
def emitted(runtime: Runtime) -> Callable[..., Awaitable[list[Any]]]:
    """Bodies of the outbox events of a type whose fields equal the given values."""

    async def _emitted(event_type: str, **match: Any) -> list[Any]:
        outbox = messaging.outbox
        async with runtime.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(outbox.c.payload)
                    .where(outbox.c.event_type == event_type)
                    .order_by(outbox.c.created_at)
                )
            ).all()
        bodies = [decode_body(event_type, row.payload) for row in rows]
        return [b for b in bodies if all(getattr(b, k) == v for k, v in match.items())]

    return _emitted


async def add_complete_payment(runtime: Runtime, user_id: uuid.UUID, amount_minor: int) -> uuid.UUID:
    """A top-up PayFast already confirmed (the state an ITN leaves behind); returns the payment id."""
    payment_id = uuid.uuid4()
    async with runtime.engine.begin() as conn:
        await conn.execute(
            pg_insert(payments).values(
                id=payment_id,
                reference=uuid.uuid4(),
                user_id=user_id,
                amount_minor=amount_minor,
                currency="ZAR",
                status="complete",
                payfast_status="COMPLETE",
            )
        )
    return payment_id


@pytest.fixture(scope="session")
def fund(runtime: Runtime, deliver: Deliver) -> Callable[[uuid.UUID, int], Awaitable[uuid.UUID]]:
    """Top up a wallet the way production does: a complete payment, then its credited event."""
    from yummi.events.v1 import events_pb2 as ev

    async def _fund(user_id: uuid.UUID, amount_minor: int) -> uuid.UUID:
        payment_id = await add_complete_payment(runtime, user_id, amount_minor)
        await deliver(
            "payments.payment.credited",
            ev.PaymentCredited(payment_id=str(payment_id), user_id=str(user_id), amount_minor=amount_minor),
        )
        return payment_id

    return _fund


# --- PayFast: the simulator, a notify receiver like the gateway's, and the gRPC server -----------------


async def serve_http(app: Starlette) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started, "HTTP server did not start"
    return server, task, f"http://127.0.0.1:{port}"


async def stop_http(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)


@pytest.fixture(scope="session")
def simulator() -> PayfastSimulator:
    return PayfastSimulator()  # PayFast's public sandbox account, as the service uses in test


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def simulator_url(simulator: PayfastSimulator) -> AsyncIterator[str]:
    server, task, url = await serve_http(simulator.app())
    yield url
    await stop_http(server, task)


@pytest.fixture(scope="session")
def grpc_port() -> int:
    return free_port()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def notify_url(grpc_port: int) -> AsyncIterator[str]:
    """A stand-in for the gateway's ITN route: raw body and caller IP to HandleItn, status code back."""
    channel = make_channel(f"127.0.0.1:{grpc_port}", deadline=30)
    stub = payments_pb2_grpc.PaymentsServiceStub(channel)

    async def itn(request: Request) -> PlainTextResponse:
        try:
            await stub.HandleItn(
                pb.HandleItnRequest(
                    raw_body=await request.body(), client_ip=request.client.host if request.client else ""
                )
            )
        except grpc.aio.AioRpcError as exc:
            return PlainTextResponse(
                exc.details() or "",
                status_code=400 if exc.code() is grpc.StatusCode.INVALID_ARGUMENT else 503,
            )
        return PlainTextResponse("OK")

    server, task, url = await serve_http(
        Starlette(routes=[Route("/payments/payfast/itn", itn, methods=["POST"])])
    )
    yield f"{url}/payments/payfast/itn"
    await stop_http(server, task)
    await channel.close()


@pytest.fixture(scope="session")
def payfast(settings: Settings, simulator_url: str, notify_url: str) -> PayfastConfig:
    """The service's PayFast config pointed at the local simulator and notify receiver."""
    base = payfast_config(settings)
    return replace(
        base,
        process_url=f"{simulator_url}/eng/process",
        validate_url=f"{simulator_url}/eng/query/validate",
        notify_url=notify_url,
        return_url="http://localhost:8000/v1/payments/payfast/return-bridge",
        cancel_url="http://localhost:8000/v1/payments/payfast/cancel-bridge",
        valid_hosts=("127.0.0.1",),
        skip_server_confirmation=False,
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stub(
    runtime: Runtime, payfast: PayfastConfig, grpc_port: int
) -> AsyncIterator[payments_pb2_grpc.PaymentsServiceStub]:
    """A PaymentsService client against an in-process server (health, reflection and interceptor included)."""

    def register(server: grpc.aio.Server) -> list[str]:
        servicer = PaymentsServicer(runtime, config=payfast, verifier=PayfastItnVerifier(payfast))
        payments_pb2_grpc.add_PaymentsServiceServicer_to_server(servicer, server)
        return [pb.DESCRIPTOR.services_by_name["PaymentsService"].full_name]

    server, _health = await start_grpc_server(addr=f"127.0.0.1:{grpc_port}", register=register)
    channel = make_channel(f"127.0.0.1:{grpc_port}", deadline=30)
    yield payments_pb2_grpc.PaymentsServiceStub(channel)
    await channel.close()
    await server.stop(grace=1)
