"""gRPC server plumbing: request-id, tracing, metrics and error-mapping interceptor, health, reflection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from opentelemetry.trace import SpanKind

from yummi_common import metrics, telemetry
from yummi_common.context import REQUEST_ID_METADATA_KEY, request_id, sanitize_request_id
from yummi_common.db import failure_status, reset_effects, track_effects
from yummi_common.errors import YummiError
from yummi_common.logging import get_logger

log = get_logger(__name__)

PROBLEM_ERRORS_KEY = "x-problem-errors"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.so_reuseport", 0),
    # Clients reconnect (and re-resolve) now and then, so new replicas get their share of long-lived channels.
    ("grpc.max_connection_age_ms", 5 * 60_000),
    ("grpc.max_connection_age_grace_ms", 30_000),
]


async def _abort(context: grpc.aio.ServicerContext, exc: YummiError) -> None:
    if exc.errors:
        # Metadata values must be printable ASCII: escape the rest, or gRPC turns the error into INTERNAL.
        errors = json.dumps(exc.errors, separators=(",", ":"), default=str).replace("\x7f", "\\u007f")
        context.set_trailing_metadata(((PROBLEM_ERRORS_KEY, errors),))
    await context.abort(getattr(grpc.StatusCode, exc.code), exc.message)


class ServerContextInterceptor(grpc.aio.ServerInterceptor):
    """Restores the caller's request id and trace context, turns domain errors into status codes (a lost or
    refused database connection into UNAVAILABLE or DEADLINE_EXCEEDED, see `db.failure_status`; unknown ones
    into INTERNAL), and records each call: metrics, a server span, and one DEBUG log line (`rpc`).

    The per-call line is DEBUG: the gateway already logs each request at INFO, and failures log on their own.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        rid = sanitize_request_id(metadata.get(REQUEST_ID_METADATA_KEY))
        method = handler_call_details.method
        traced = not method.startswith(UNTRACED_PREFIXES)

        if handler.unary_unary or handler.stream_unary:
            inner = handler.unary_unary or handler.stream_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                token = request_id.set(rid)
                effects = track_effects()
                started = time.perf_counter()
                code = "OK"
                with _server_span(method, metadata, traced) as span:
                    try:
                        return await inner(request, context)
                    except grpc.aio.AbortError:
                        code = _code_of(context)
                        raise
                    except asyncio.CancelledError:
                        code = "CANCELLED"
                        raise
                    except Exception as exc:
                        code = _status_of(exc)
                        await _abort_for(context, exc, method)
                    finally:
                        _record(method, code, started, span, request)
                        reset_effects(effects)
                        request_id.reset(token)

            factory = (
                grpc.unary_unary_rpc_method_handler
                if handler.unary_unary
                else grpc.stream_unary_rpc_method_handler
            )
            return factory(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        inner_stream = handler.unary_stream or handler.stream_stream

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            token = request_id.set(rid)
            effects = track_effects()
            started = time.perf_counter()
            code = "OK"
            with _server_span(method, metadata, traced) as span:
                try:
                    async for item in inner_stream(request, context):
                        yield item
                except grpc.aio.AbortError:
                    code = _code_of(context)
                    raise
                except (asyncio.CancelledError, GeneratorExit):
                    code = "CANCELLED"
                    raise
                except Exception as exc:
                    code = _status_of(exc)
                    await _abort_for(context, exc, method)
                finally:
                    _record(method, code, started, span, request)
                    reset_effects(effects)
                    request_id.reset(token)

        factory = (
            grpc.unary_stream_rpc_method_handler
            if handler.unary_stream
            else grpc.stream_stream_rpc_method_handler
        )
        return factory(
            streaming,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


# What a caller is told when the database fails; details of these codes never reach the gateway's clients.
_DATABASE_DETAILS = {
    "UNAVAILABLE": "the database is unavailable; nothing was applied, try again shortly",
    "DEADLINE_EXCEEDED": "the database connection was lost after a commit was sent; the outcome is unknown",
}


def _status_of(exc: Exception) -> str:
    """The status code name a servicer's exception answers with."""
    database = failure_status(exc)
    if database is not None:
        return database
    if isinstance(exc, YummiError):
        return exc.code
    return "UNIMPLEMENTED" if isinstance(exc, NotImplementedError) else "INTERNAL"


async def _abort_for(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> None:
    """End the call with the status of `exc`: a database connection failure as `db.failure_status` says,
    domain errors as they say, anything else INTERNAL (logged)."""
    database = failure_status(exc)
    if database is not None:
        log.warning("database connection failed in rpc", method=method, code=database, error=repr(exc)[:300])
        await context.abort(getattr(grpc.StatusCode, database), _DATABASE_DETAILS[database])
    if isinstance(exc, YummiError):
        await _abort(context, exc)
    if isinstance(exc, NotImplementedError):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented")
    log.exception("unhandled error in rpc", method=method)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


# Probes and tooling: measured, but no spans (a health check every few seconds is noise in a trace store).
UNTRACED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _server_span(method: str, metadata: dict[str, Any], traced: bool) -> Any:
    if not traced or not (telemetry.tracing_enabled() or telemetry.TRACEPARENT in metadata):
        return _NO_SPAN
    attributes = telemetry.rpc_attributes(method)
    name = method.lstrip("/")
    return telemetry.continue_trace(name, carrier=metadata, kind=SpanKind.SERVER, attributes=attributes)


_NO_SPAN = contextlib.nullcontext()


def _code_of(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def _record(method: str, code: str, started: float, span: Any, request: Any) -> None:
    seconds = time.perf_counter() - started
    metrics.GRPC_SERVER.observe(method, code, seconds)
    if span is not None:
        telemetry.set_rpc_status(span, code, server=True)
    log.debug(
        "rpc",
        method=method,
        code=code,
        ms=round(seconds * 1000, 2),
        user_id=getattr(request, "user_id", None) or None,
    )


def listen_address(addr: str) -> str:
    """Listen on every interface at the port of the service's own address setting."""
    port = addr.rsplit(":", 1)[-1]
    return f"[::]:{port}"


async def start_grpc_server(
    *, addr: str, register: Callable[[grpc.aio.Server], list[str]]
) -> tuple[grpc.aio.Server, health_aio.HealthServicer]:
    """Build and start a server with the interceptor, health and reflection; `register` adds the servicers.

    Port 0 in `addr` binds a free port; `bound_port(server)` tells which.
    """
    server = grpc.aio.server(interceptors=[ServerContextInterceptor()], options=SERVER_OPTIONS)
    service_names = register(server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in ["", *service_names]:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    bound = server.add_insecure_port(listen_address(addr))
    if bound == 0:
        raise RuntimeError(f"could not bind gRPC port for {addr}")
    server.bound_port = bound  # type: ignore[attr-defined]
    await server.start()
    log.info("grpc server started", addr=listen_address(addr), services=service_names)
    return server, health


def bound_port(server: grpc.aio.Server) -> int:
    """The port `start_grpc_server` bound (useful with port 0 in tests)."""
    return int(server.bound_port)  # type: ignore[attr-defined]
