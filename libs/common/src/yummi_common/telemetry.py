"""Tracing and error reporting, switched on in one place: `init_telemetry(service, settings)`.

With `OTEL_EXPORTER_OTLP_ENDPOINT` set, an SDK tracer provider exports spans over OTLP and the libraries
we use (SQLAlchemy, Redis, httpx; FastAPI traces itself) are instrumented; the gRPC interceptors, the outbox
relay and the consumers add their own spans and carry W3C `traceparent` across gRPC metadata and NATS headers.
Unset, no SDK is installed: OpenTelemetry's API stays a no-op and only an incoming `traceparent` is passed on.
With `SENTRY_DSN` set, errors go to Sentry without PII, scrubbed by `scrub_sentry_event`.
"""

from __future__ import annotations

import contextlib
import re
import sys
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from sqlalchemy.ext.asyncio import AsyncEngine

from yummi_common import logging as yummi_logging
from yummi_common.logging import SAFE_KEYS, SENSITIVE_KEYS, get_logger
from yummi_common.settings import Settings

log = get_logger(__name__)

# ASGI shapes, spelled out so libs/common needs no web framework.
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TRACER_NAME = "yummi"
TRACEPARENT = "traceparent"
# gRPC codes that make a server span an error (semantic conventions); a client span errs on any non-OK code.
SERVER_ERROR_CODES = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)


class _State:
    """What `init_telemetry` switched on in this process."""

    def __init__(self) -> None:
        self.tracing = False
        self.tracer: trace.Tracer = trace.get_tracer(TRACER_NAME)
        self.provider: trace.TracerProvider | None = None
        self.service: str | None = None
        self.sentry = False
        self.engines: weakref.WeakSet[Any] = weakref.WeakSet()


_state = _State()


def tracing_enabled() -> bool:
    """True when spans are recorded and exported (an SDK provider is installed)."""
    return _state.tracing


def tracer() -> trace.Tracer:
    return _state.tracer


def init_telemetry(service: str, settings: Settings) -> None:
    """Switch on what the settings ask for (OTLP tracing, Sentry); once per process."""
    if _state.service is not None:
        return
    _state.service = service
    if settings.otel_exporter_otlp_endpoint:
        provider = _otlp_provider(service, settings)
        trace.set_tracer_provider(provider)
        _activate(provider)
        _instrument_libraries(provider)
        log.info(
            "tracing on",
            endpoint=settings.otel_exporter_otlp_endpoint,
            protocol=settings.otel_exporter_otlp_protocol,
        )
    if settings.sentry_dsn:
        _init_sentry(service, settings)


def _otlp_provider(service: str, settings: Settings) -> trace.TracerProvider:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return tracer_provider(service, settings, BatchSpanProcessor(otlp_exporter(settings)))


def otlp_exporter(settings: Settings) -> Any:
    """The OTLP span exporter `OTEL_EXPORTER_OTLP_ENDPOINT` / `_PROTOCOL` ask for."""
    endpoint = str(settings.otel_exporter_otlp_endpoint).rstrip("/")
    if settings.otel_exporter_otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    # The base endpoint gets the signal's path, as the OTLP spec says for OTEL_EXPORTER_OTLP_ENDPOINT.
    return HttpExporter(endpoint=f"{endpoint}/v1/traces")


def tracer_provider(service: str, settings: Settings, processor: Any) -> trace.TracerProvider:
    """An SDK provider naming the service (`yummi-<service>`), with our sampler, feeding `processor`."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create(
        {
            "service.name": f"yummi-{service}",
            "service.namespace": "yummi",
            "service.version": settings.version,
            "deployment.environment.name": settings.environment,
        }
    )
    provider = TracerProvider(resource=resource, sampler=_sampler(settings.otel_traces_sampler_arg))
    provider.add_span_processor(processor)
    return provider


def _sampler(ratio: float) -> Any:
    """Children follow their parent; a new trace is kept at `ratio`, unless it starts with a client span.

    A root client span is background polling (the relay's outbox query, a lease sweep, a JWKS refresh): noise
    that would otherwise be most of the traces.
    """
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )

    class SkipRootClientSpans(Sampler):
        def __init__(self) -> None:
            self._ratio = TraceIdRatioBased(ratio)

        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if kind is SpanKind.CLIENT:
                return SamplingResult(Decision.DROP)
            return self._ratio.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"SkipRootClientSpans{{{ratio}}}"

    return ParentBased(root=SkipRootClientSpans())


def _activate(provider: trace.TracerProvider) -> None:
    _state.provider = provider
    _state.tracer = provider.get_tracer(TRACER_NAME)
    _state.tracing = True


def _instrument_libraries(provider: trace.TracerProvider) -> None:
    """Outgoing HTTP (PayFast, OpenAI, JWKS) and Redis; SQLAlchemy is per engine (`instrument_engine`)."""
    with contextlib.suppress(ImportError):
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    with contextlib.suppress(ImportError):
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor().instrument(tracer_provider=provider)


@contextlib.contextmanager
def use_tracer_provider(provider: trace.TracerProvider) -> Iterator[None]:
    """Record spans with `provider` inside the block (tests pass one with an in-memory exporter)."""
    saved = (_state.provider, _state.tracer, _state.tracing)
    _activate(provider)
    try:
        yield
    finally:
        _state.provider, _state.tracer, _state.tracing = saved


def instrument_engine(engine: AsyncEngine) -> None:
    """Trace the statements of `engine` (a no-op unless tracing is on)."""
    if not _state.tracing or engine.sync_engine in _state.engines:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeter

    connections = NoOpMeter("yummi").create_up_down_counter("db.client.connections.usage")
    EngineTracer(_state.tracer, engine.sync_engine, connections)  # type: ignore[no-untyped-call]
    _state.engines.add(engine.sync_engine)


# --- propagation ------------------------------------------------------------------------------------------


def inject(carrier: MutableMapping[str, str]) -> None:
    """Write the current trace context (`traceparent`, `tracestate`) into `carrier`, when there is one."""
    if _state.tracing or trace.get_current_span().get_span_context().is_valid:
        propagate.inject(carrier)


def propagate_context(carrier: MutableMapping[str, str], context: Any) -> None:
    """Write the trace context of `context` (from `start_child_span`) into `carrier`."""
    propagate.inject(carrier, context=context)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None outside any trace."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get(TRACEPARENT)


@contextlib.contextmanager
def continue_trace(
    name: str,
    *,
    carrier: Mapping[str, str],
    kind: SpanKind,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span | None]:
    """A span that continues the trace in `carrier` (gRPC metadata, NATS headers), current inside the block.

    Without tracing there is no span (None); an incoming traceparent still becomes the current context, so
    logs show its trace id and calls made inside pass it on.
    """
    if _state.tracing:
        parent = propagate.extract(carrier)
        with _state.tracer.start_as_current_span(
            name,
            context=parent,
            kind=kind,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span
        return
    if TRACEPARENT not in carrier:
        yield None
        return
    token = otel_context.attach(propagate.extract(carrier))
    try:
        yield None
    finally:
        otel_context.detach(token)


def start_child_span(
    name: str, *, kind: SpanKind, attributes: Mapping[str, Any] | None = None
) -> tuple[Span | None, Any]:
    """A span child of the current one plus its context, for work that ends later (a gRPC client call)."""
    if not _state.tracing:
        return None, None
    span = _state.tracer.start_span(name, kind=kind, attributes=attributes)
    return span, trace.set_span_in_context(span)


def set_rpc_status(span: Span, code: str, *, server: bool) -> None:
    """Put the gRPC status code (a name such as `NOT_FOUND`) on an RPC span."""
    span.set_attribute("rpc.grpc.status_code", _GRPC_CODE_NUMBERS.get(code, 2))
    if code != "OK" and (not server or code in SERVER_ERROR_CODES):
        span.set_status(Status(StatusCode.ERROR, code))


def rpc_attributes(method: str) -> dict[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


_GRPC_CODE_NUMBERS = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}


def attach_traceparent(traceparent: str | None) -> object | None:
    """With tracing off, make an incoming W3C `traceparent` the current context, so logs show its trace id and
    calls made inside pass it on; returns the token for `detach_context`, or None when nothing was attached
    (no header, or tracing on: the server span continues the trace itself)."""
    if _state.tracing or traceparent is None:
        return None
    return otel_context.attach(propagate.extract({TRACEPARENT: traceparent}))


def detach_context(token: object) -> None:
    otel_context.detach(token)  # type: ignore[arg-type]


class TraceContextMiddleware:
    """ASGI: with tracing off, an incoming `traceparent` still becomes the request's context, passed on.

    With tracing on FastAPI opens the server span itself, so this layer only passes the request through.
    (The gateway's edge middleware does the same in its own pass over the headers.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _state.tracing or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        traceparent = None
        for key, value in scope.get("headers", ()):
            if key == b"traceparent":
                traceparent = value.decode("latin-1")
                break
        token = attach_traceparent(traceparent)
        if token is None:
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            detach_context(token)


# --- Sentry ------------------------------------------------------------------------------------------------

FILTERED = "[Filtered]"
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# Request parts that may carry bodies, cookies or credentials: never sent.
_DROPPED_REQUEST_KEYS = ("data", "cookies", "env")


def scrub_sentry_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry `before_send`: drop request bodies and cookies, keep only the user's id, and mask secrets,
    tokens and email addresses anywhere in the event (messages, exception values, breadcrumbs, extras)."""
    scrubbed: dict[str, Any] = _scrub(event)
    user = event.get("user")
    if isinstance(user, dict):
        scrubbed["user"] = {"id": str(user["id"])} if user.get("id") else {}
    request = scrubbed.get("request")
    if isinstance(request, dict):
        for key in _DROPPED_REQUEST_KEYS:
            request.pop(key, None)
    return scrubbed


def _scrub(value: Any, key: str = "") -> Any:
    if key and key not in SAFE_KEYS and SENSITIVE_KEYS.search(key):
        return FILTERED
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        # Sentry sends headers as [name, value] pairs: a sensitive name masks its value.
        if len(value) == 2 and isinstance(value[0], str) and SENSITIVE_KEYS.search(value[0]):
            return [value[0], FILTERED]
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return EMAIL.sub("[email]", yummi_logging.scrub_text(value))
    return value


def _init_sentry(service: str, settings: Settings) -> None:
    try:
        import sentry_sdk
    except ImportError:
        log.warning("SENTRY_DSN is set but sentry-sdk is not installed; errors are only logged")
        return
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.environment,
        release=f"yummi@{settings.version}",
        traces_sample_rate=settings.sentry_traces_sample_rate,
        send_default_pii=False,
        include_local_variables=False,  # frame locals can hold keys and tokens
        max_request_body_size="never",
        before_send=scrub_sentry_event,  # type: ignore[arg-type]
        before_send_transaction=scrub_sentry_event,  # type: ignore[arg-type]
    )
    sentry_sdk.set_tag("service", service)
    yummi_logging.set_error_reporter(_report_to_sentry)
    _state.sentry = True
    log.info("sentry on", environment=settings.environment)


def _report_to_sentry(event_dict: Mapping[str, Any]) -> None:
    """Errors logged through structlog (stdlib logging is hooked by Sentry itself) become Sentry events."""
    import sentry_sdk

    exc_info = event_dict.get("exc_info")
    if exc_info is True:
        exc_info = sys.exc_info()
    extras = {k: v for k, v in event_dict.items() if k not in ("exc_info", "event", "timestamp", "level")}
    with sentry_sdk.new_scope() as scope:
        for key, value in extras.items():
            scope.set_extra(key, value)
        if isinstance(exc_info, tuple) and exc_info[1] is not None:
            sentry_sdk.capture_exception(exc_info[1])
        elif isinstance(exc_info, BaseException):
            sentry_sdk.capture_exception(exc_info)
        else:
            sentry_sdk.capture_message(str(event_dict.get("event", "")), level="error")
