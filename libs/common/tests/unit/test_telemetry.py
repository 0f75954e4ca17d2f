"""Tracing and metrics of gRPC calls: one trace from client to server, status codes on spans and counters,
an incoming traceparent carried on with tracing off, and the Sentry scrubber."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import create_async_engine

from yummi_common import metrics, telemetry
from yummi_common.context import request_id
from yummi_common.errors import NotFound
from yummi_common.grpc_client import make_channel
from yummi_common.grpc_server import bound_port, start_grpc_server
from yummi_common.settings import Settings

METHOD = "/yummi.test.v1.EchoService/Echo"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Echo:
    """A servicer on raw bytes that records what context each call ran in."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def echo(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        ctx = trace.get_current_span().get_span_context()
        self.seen.append(
            {
                "trace_id": ctx.trace_id if ctx.is_valid else None,
                "traceparent": telemetry.current_traceparent(),
                "request_id": request_id.get(),
            }
        )
        if request == b"missing":
            raise NotFound("no such thing")
        if request == b"forbidden":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")
        return request


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Echo, grpc.aio.Channel]]:
    servicer = Echo()

    def register(server: grpc.aio.Server) -> list[str]:
        handler = grpc.unary_unary_rpc_method_handler(servicer.echo)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("yummi.test.v1.EchoService", {"Echo": handler}),)
        )
        return []

    server, _ = await start_grpc_server(addr="127.0.0.1:0", register=register)
    channel = make_channel(f"127.0.0.1:{bound_port(server)}", deadline=5)
    yield servicer, channel
    await channel.close()
    await server.stop(0)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with telemetry.use_tracer_provider(provider):
        yield exporter


def _call(channel: grpc.aio.Channel, payload: bytes, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    return channel.unary_unary(METHOD)(payload, metadata=metadata)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _counted(name: str, expected: float, **labels: str) -> float:
    """The sample once it reaches `expected` (the server records a call just after its status went out)."""
    for _ in range(100):
        if _sample(name, **labels) >= expected:
            break
        await asyncio.sleep(0.02)
    return _sample(name, **labels)


async def test_a_call_is_one_trace_from_the_caller_through_the_client_to_the_server(
    echo: tuple[Echo, grpc.aio.Channel], spans: InMemorySpanExporter
) -> None:
    servicer, channel = echo
    with telemetry.tracer().start_as_current_span("caller") as caller:
        assert await _call(channel, b"hi") == b"hi"

    by_kind = {span.kind: span for span in spans.get_finished_spans()}
    client, server = by_kind[SpanKind.CLIENT], by_kind[SpanKind.SERVER]
    trace_id = caller.get_span_context().trace_id
    assert {client.context.trace_id, server.context.trace_id} == {trace_id}
    assert client.parent is not None and client.parent.span_id == caller.get_span_context().span_id
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    assert server.name == "yummi.test.v1.EchoService/Echo"
    assert server.attributes is not None and server.attributes["rpc.method"] == "Echo"
    assert server.attributes["rpc.grpc.status_code"] == 0
    assert servicer.seen[-1]["trace_id"] == trace_id


async def test_a_domain_error_is_counted_with_its_code_and_marks_only_the_client_span_failed(
    echo: tuple[Echo, grpc.aio.Channel], spans: InMemorySpanExporter
) -> None:
    _, channel = echo
    labels = {"grpc_service": "yummi.test.v1.EchoService", "grpc_method": "Echo", "grpc_code": "NOT_FOUND"}
    server_before = _sample("yummi_grpc_server_handled_total", **labels)
    client_before = _sample("yummi_grpc_client_handled_total", **labels)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, b"missing")

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert await _counted("yummi_grpc_server_handled_total", server_before + 1, **labels) == server_before + 1
    assert _sample("yummi_grpc_client_handled_total", **labels) == client_before + 1
    assert _sample("yummi_grpc_server_handling_seconds_count", **labels) >= 1
    for _ in range(100):
        if len(spans.get_finished_spans()) >= 2:
            break
        await asyncio.sleep(0.02)
    by_kind = {span.kind: span for span in spans.get_finished_spans()}
    assert by_kind[SpanKind.CLIENT].status.status_code is StatusCode.ERROR
    # NOT_FOUND is the caller's problem, not the server's: its span stays unset (semantic conventions).
    assert by_kind[SpanKind.SERVER].status.status_code is StatusCode.UNSET
    assert by_kind[SpanKind.SERVER].attributes is not None
    assert by_kind[SpanKind.SERVER].attributes["rpc.grpc.status_code"] == 5


async def test_a_servicer_that_aborts_itself_is_counted_with_its_code(
    echo: tuple[Echo, grpc.aio.Channel],
) -> None:
    _, channel = echo
    labels = {
        "grpc_service": "yummi.test.v1.EchoService",
        "grpc_method": "Echo",
        "grpc_code": "PERMISSION_DENIED",
    }
    before = _sample("yummi_grpc_server_handled_total", **labels)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _call(channel, b"forbidden")

    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await _counted("yummi_grpc_server_handled_total", before + 1, **labels) == before + 1


async def test_with_tracing_off_an_incoming_traceparent_and_request_id_reach_the_server(
    echo: tuple[Echo, grpc.aio.Channel],
) -> None:
    servicer, channel = echo
    assert not telemetry.tracing_enabled()

    await _call(channel, b"hi", metadata=(("traceparent", TRACEPARENT), ("x-request-id", "req-123")))

    seen = servicer.seen[-1]
    assert seen["traceparent"] == TRACEPARENT
    assert seen["request_id"] == "req-123"


async def test_with_tracing_off_no_trace_context_is_invented(echo: tuple[Echo, grpc.aio.Channel]) -> None:
    servicer, channel = echo

    await _call(channel, b"hi")

    assert servicer.seen[-1]["traceparent"] is None
    assert servicer.seen[-1]["trace_id"] is None


async def test_with_tracing_off_the_client_passes_the_current_context_on(
    echo: tuple[Echo, grpc.aio.Channel],
) -> None:
    servicer, channel = echo
    with telemetry.continue_trace("incoming", carrier={"traceparent": TRACEPARENT}, kind=SpanKind.SERVER):
        await _call(channel, b"hi")

    assert servicer.seen[-1]["traceparent"] == TRACEPARENT


def test_the_metrics_endpoint_serves_the_shared_registry() -> None:
    metrics.GRPC_SERVER.observe("/yummi.test.v1.EchoService/Scrape", "OK", 0.002)
    server = metrics.MetricsServer(0, addr="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:  # noqa: S310
            body = response.read().decode()
    finally:
        server.close()
    assert 'yummi_grpc_server_handled_total{grpc_code="OK",grpc_method="Scrape"' in body
    assert "process_cpu_seconds_total" in body


def test_a_busy_metrics_port_is_logged_not_fatal() -> None:
    first = metrics.MetricsServer(0, addr="127.0.0.1")
    try:
        assert metrics.start_metrics_server(first.port) is None
    finally:
        first.close()


async def test_the_pool_of_a_watched_engine_is_exported_without_touching_the_database() -> None:
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_size=3, max_overflow=2)
    metrics.watch_engine("pooltest", engine)
    try:
        assert _sample("yummi_db_pool_connections", pool="pooltest", state="in_use") == 0
        assert _sample("yummi_db_pool_max_connections", pool="pooltest") == 5
    finally:
        await engine.dispose()


def test_ai_usage_counts_tokens_and_dollars_by_model() -> None:
    before = _sample("yummi_ai_cost_usd_total", model="gpt-test", key_source="user")
    metrics.record_ai_usage(
        model="gpt-test", prompt_tokens=120, completion_tokens=30, cost_micro_usd=2_500, key_source="user"
    )
    assert _sample("yummi_ai_tokens_total", model="gpt-test", kind="prompt", key_source="user") >= 120
    assert _sample("yummi_ai_tokens_total", model="gpt-test", kind="completion", key_source="user") >= 30
    assert _sample("yummi_ai_cost_usd_total", model="gpt-test", key_source="user") == pytest.approx(
        before + 0.0025
    )


def test_metrics_port_defaults_to_the_grpc_port_plus_1000_and_zero_turns_it_off() -> None:
    def settings(**values: str) -> Settings:
        return Settings(_env_file=None, **{"CATALOG_GRPC_ADDR": "catalog:50051", **values})  # type: ignore[arg-type]

    assert settings().metrics_port_for("catalog") == 51051
    assert settings(METRICS_PORT="9464").metrics_port_for("catalog") == 9464
    assert settings(METRICS_PORT="0").metrics_port_for("catalog") is None
    assert settings(CATALOG_GRPC_ADDR="127.0.0.1:0").metrics_port_for("catalog") is None


def test_sentry_events_lose_emails_tokens_bodies_and_everything_but_the_user_id() -> None:
    event = {
        "message": "payment for jane@example.com failed with Bearer eyJhbGciOi.eyJzdWIiOiJ4In0.sig",
        "user": {"id": "user_1", "email": "jane@example.com", "ip_address": "10.0.0.1"},
        "request": {
            "url": "https://api.example/v1/orders",
            "headers": {"Authorization": "Bearer abc.def.ghi", "User-Agent": "app"},
            "cookies": {"session": "s3cret"},
            "data": {"messages": [{"role": "user", "content": "my dinner plans"}]},
        },
        "exception": {"values": [{"type": "ValueError", "value": "bad key sk-abcdefghijklmnopqrstuvwx"}]},
        "breadcrumbs": {"values": [{"message": "login jane@example.com", "data": {"api_key": "k"}}]},
        "extra": {"passphrase": "jt7NOE43FZPn", "amount_minor": 1000},
        "contexts": {
            "trace": {"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"}
        },
    }

    scrubbed = telemetry.scrub_sentry_event(event, {})

    text = json.dumps(scrubbed)
    for secret in (
        "jane@example.com",
        "eyJzdWIi",
        "abc.def.ghi",
        "s3cret",
        "dinner",
        "sk-abcdef",
        "jt7NOE43",
    ):
        assert secret not in text
    assert scrubbed["user"] == {"id": "user_1"}
    assert scrubbed["request"]["headers"]["User-Agent"] == "app"
    assert scrubbed["extra"]["amount_minor"] == 1000
    assert scrubbed["contexts"]["trace"]["span_id"] == "b7ad6b7169203331"
    assert event["user"]["email"] == "jane@example.com", "the input is left alone"


def test_sentry_header_pairs_with_a_secret_name_are_masked() -> None:
    scrubbed = telemetry.scrub_sentry_event(
        {"request": {"headers": [["Cookie", "a=b"], ["Accept", "application/json"]]}}
    )
    assert scrubbed["request"]["headers"] == [["Cookie", "[Filtered]"], ["Accept", "application/json"]]


def test_sentry_starts_without_pii_with_the_scrubber_and_receives_logged_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sentry_sdk

    from yummi_common import logging as yummi_logging

    options: dict[str, Any] = {}
    captured: list[str] = []
    monkeypatch.setattr(telemetry, "_state", telemetry._State())
    monkeypatch.setattr(sentry_sdk, "init", lambda **kwargs: options.update(kwargs))
    monkeypatch.setattr(sentry_sdk, "capture_message", lambda message, **_: captured.append(message))
    settings = Settings(_env_file=None, SENTRY_DSN="https://key@sentry.example/1")  # type: ignore[call-arg]
    try:
        telemetry.init_telemetry("orders", settings)
        yummi_logging.report_errors(None, "error", {"event": "payment failed", "api_key": "[redacted]"})
        yummi_logging.report_errors(None, "info", {"event": "just news"})
    finally:
        yummi_logging.set_error_reporter(None)

    assert options["send_default_pii"] is False
    assert options["include_local_variables"] is False
    assert options["before_send"] is telemetry.scrub_sentry_event
    assert options["environment"] == settings.environment
    assert captured == ["payment failed"]
    assert not telemetry.tracing_enabled(), "no OTLP endpoint: no tracing"


def test_the_otlp_pipeline_names_the_service_and_skips_traces_that_start_with_a_client_span() -> None:
    settings = Settings(_env_file=None, OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318/")  # type: ignore[call-arg]
    exporter = InMemorySpanExporter()
    provider: Any = telemetry.tracer_provider("orders", settings, SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("poll outbox", kind=SpanKind.CLIENT):
        pass
    with tracer.start_as_current_span("PlaceOrder", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT):
            pass
    provider.shutdown()

    assert provider.resource.attributes["service.name"] == "yummi-orders"
    assert sorted(span.name for span in exporter.get_finished_spans()) == ["PlaceOrder", "SELECT"]
    assert telemetry.otlp_exporter(settings)._endpoint == "http://collector:4318/v1/traces"
