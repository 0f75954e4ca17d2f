"""Across NATS an event stays in its producer's trace (outbox → relay → consumer), and the outbox, the relay
and the consumers report their counts to Prometheus."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from sqlalchemy import select, text

from yummi.events.v1 import events_pb2
from yummi_common import telemetry
from yummi_common.context import request_id
from yummi_common.db import UnitOfWork
from yummi_common.messaging.consumer import Subscription
from yummi_common.messaging.events import Event
from yummi_common.messaging.relay import OutboxRelay
from yummi_common.migrations import ensure_database
from yummi_common.service import Runtime, service_tables
from yummi_common.settings import Settings

pytestmark = pytest.mark.integration

SCHEMA = "teletest"
EVENT = "payments.payment.credited"


def _settings() -> Settings:
    tag = uuid.uuid4().hex[:8]
    values = {"NATS_STREAM": f"TELETEST_{tag.upper()}", "NATS_SUBJECT_PREFIX": f"teletest{tag}.events"}
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _eventually(check: Callable[[], Awaitable[bool] | bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


class Consumer:
    """Records the trace context and request id each event was handled in."""

    def __init__(self) -> None:
        self.seen: dict[uuid.UUID, dict[str, Any]] = {}

    async def handle(self, uow: UnitOfWork, event: Event) -> None:
        await uow.session.execute(text("SELECT 1"))
        ctx = trace.get_current_span().get_span_context()
        self.seen[event.id] = {"trace_id": ctx.trace_id, "request_id": request_id.get()}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with telemetry.use_tracer_provider(provider):
        yield exporter


async def _start(settings: Settings, consumer: Consumer | None) -> Runtime:
    metadata, tables = service_tables(SCHEMA)
    await ensure_database(settings.database_url)
    runtime = await Runtime.start(service=SCHEMA, settings=settings, metadata=metadata, tables=tables)
    async with runtime.engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
        for table in (tables.outbox, tables.inbox, tables.dead_letters):
            await conn.execute(table.delete())
    if consumer is not None:
        runtime.start_consumers([Subscription(event_type=EVENT, handler=consumer.handle, name="tele")])
    return runtime


@pytest.fixture
async def settings() -> AsyncIterator[Settings]:
    settings = _settings()
    yield settings
    nc = await nats.connect(settings.nats_url)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(settings.nats_stream)
    finally:
        await nc.close()


def _emit(uow: UnitOfWork, amount: int = 500) -> uuid.UUID:
    return uow.emit(EVENT, events_pb2.PaymentCredited(payment_id=str(uuid.uuid4()), amount_minor=amount))


async def test_an_event_is_published_and_consumed_inside_the_trace_that_emitted_it(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    consumer = Consumer()
    runtime = await _start(settings, consumer)
    try:
        token = request_id.set("req-trace-1")
        with telemetry.tracer().start_as_current_span("place order") as producer:
            async with runtime.uow() as uow:
                event_id = _emit(uow)
                await uow.commit()
        request_id.reset(token)
        await _eventually(lambda: event_id in consumer.seen)
        await _eventually(lambda: any(s.name == f"process {EVENT}" for s in spans.get_finished_spans()))
    finally:
        await runtime.close()

    trace_id = producer.get_span_context().trace_id
    assert consumer.seen[event_id] == {"trace_id": trace_id, "request_id": "req-trace-1"}
    in_trace = [
        s for s in spans.get_finished_spans() if s.context is not None and s.context.trace_id == trace_id
    ]
    by_name = {s.name: s for s in in_trace}
    publish, process = by_name[f"publish {EVENT}"], by_name[f"process {EVENT}"]
    assert publish.kind is SpanKind.PRODUCER and _parent(publish) == producer.get_span_context().span_id
    assert process.kind is SpanKind.CONSUMER and _parent(process) == _span_id(publish)
    assert process.attributes is not None and process.attributes["messaging.message.id"] == str(event_id)
    # The handler's SQL (instrumented engine) nests under the consumer span.
    assert any(s.kind is SpanKind.CLIENT and _parent(s) == _span_id(process) for s in in_trace)


async def test_with_tracing_off_the_outbox_keeps_and_passes_on_an_incoming_traceparent(
    settings: Settings,
) -> None:
    consumer = Consumer()
    runtime = await _start(settings, consumer)
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    try:
        with telemetry.continue_trace("rpc", carrier={"traceparent": incoming}, kind=SpanKind.SERVER):
            async with runtime.uow() as uow:
                event_id = _emit(uow)
                await uow.commit()
        await _eventually(lambda: event_id in consumer.seen)
        async with runtime.engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(runtime.tables.outbox.c.headers).where(runtime.tables.outbox.c.id == event_id)
                )
            ).scalar_one()
    finally:
        await runtime.close()

    assert stored["traceparent"] == incoming
    assert consumer.seen[event_id]["trace_id"] == 0x0AF7651916CD43DD8448EB211C80319C


async def test_relay_and_consumer_counts_reach_prometheus(settings: Settings) -> None:
    consumer = Consumer()
    runtime = await _start(settings, consumer)
    durable = f"{SCHEMA}-tele"
    published = _sample("yummi_outbox_published_total", service=SCHEMA)
    applied = _sample("yummi_events_handled_total", consumer=durable, outcome="applied")
    dead = _sample("yummi_events_dead_lettered_total", consumer=durable)
    try:
        async with runtime.uow() as uow:
            ids = [_emit(uow, amount) for amount in (1, 2)]
            await uow.commit()
        await _eventually(lambda: set(ids) <= set(consumer.seen))
        assert runtime.js is not None
        await runtime.js.publish(
            f"{settings.nats_subject_prefix}.{EVENT}",
            b"\xff not protobuf",
            headers={"Nats-Msg-Id": uuid.uuid4().hex, "ce-id": "nope", "ce-type": EVENT},
        )
        await _eventually(lambda: _sample("yummi_events_dead_lettered_total", consumer=durable) == dead + 1)
        assert runtime.relay is not None
        await runtime.relay.refresh_gauges()
    finally:
        await runtime.close()

    assert _sample("yummi_outbox_published_total", service=SCHEMA) == published + 2
    assert _sample("yummi_events_handled_total", consumer=durable, outcome="applied") == applied + 2
    assert _sample("yummi_events_handled_total", consumer=durable, outcome="dead_lettered") >= 1
    assert _sample("yummi_outbox_backlog", service=SCHEMA) == 0
    assert _sample("yummi_dead_letters", service=SCHEMA) == 1


async def test_backlog_gauges_show_unpublished_rows_and_the_age_of_the_oldest(settings: Settings) -> None:
    runtime = await _start(settings.model_copy(update={"nats_url": None}), None)
    try:
        assert runtime.relay is None
        async with runtime.uow() as uow:
            _emit(uow)
            _emit(uow)
            await uow.commit()
        await asyncio.sleep(0.2)
        relay = OutboxRelay(
            engine=runtime.engine,
            tables=runtime.tables,
            js=None,
            settings=settings,
            service="backlogtest",  # type: ignore[arg-type]
        )
        await relay.refresh_gauges()
    finally:
        await runtime.close()

    assert _sample("yummi_outbox_backlog", service="backlogtest") == 2
    assert _sample("yummi_outbox_oldest_unpublished_age_seconds", service="backlogtest") >= 0.2


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id
