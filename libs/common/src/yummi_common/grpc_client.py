"""gRPC client plumbing: channels with retries on UNAVAILABLE, the request id and trace context in metadata,
a deadline on every call, and per-call metrics and spans."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import grpc
from opentelemetry.trace import Span, SpanKind

from yummi_common import metrics, telemetry
from yummi_common.context import REQUEST_ID_METADATA_KEY, current_request_id
from yummi_common.grpc_server import MAX_MESSAGE_BYTES

SERVICE_CONFIG = json.dumps(
    {
        # Spread calls over every address DNS returns (a Kubernetes headless Service, several replicas).
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


class _ContextClientInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
):
    """Adds the request id, the trace context and, when the caller gave none, the default deadline; records
    each call's status and latency (`yummi_grpc_client_*`) and a client span."""

    def __init__(self, deadline: float, target: str) -> None:
        self._deadline = deadline
        self._target = target

    def _details(self, details: grpc.aio.ClientCallDetails, ctx: Any) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if REQUEST_ID_METADATA_KEY not in metadata:
            metadata.add(REQUEST_ID_METADATA_KEY, current_request_id())
        carrier: dict[str, str] = {}
        if ctx is not None:
            telemetry.propagate_context(carrier, ctx)
        else:
            telemetry.inject(carrier)
        for key, value in carrier.items():
            metadata.add(key, value)
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout if details.timeout is not None else self._deadline,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    def _start(self, details: grpc.aio.ClientCallDetails) -> tuple[str, Span | None, Any]:
        method = _method_name(details.method)
        if not telemetry.tracing_enabled():
            return method, None, None
        span, ctx = telemetry.start_child_span(
            method.lstrip("/"),
            kind=SpanKind.CLIENT,
            attributes={**telemetry.rpc_attributes(method), "server.address": self._target},
        )
        return method, span, ctx

    async def _complete(self, call: Any, method: str, span: Span | None, started: float) -> Any:
        """Wait for a unary-response call to end (so its status and latency are known), then return it."""
        try:
            code = _code_name(await call.code())
        except asyncio.CancelledError:
            call.cancel()
            _finish(method, "CANCELLED", span, started)
            raise
        _finish(method, code, span, started)
        return call

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method, span, ctx = self._start(details)
        started = time.perf_counter()
        call = await continuation(self._details(details, ctx), request)
        return await self._complete(call, method, span, started)

    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        method, span, ctx = self._start(details)
        started = time.perf_counter()
        call = await continuation(self._details(details, ctx), request_iterator)
        return await self._complete(call, method, span, started)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        method, span, ctx = self._start(details)
        started = time.perf_counter()
        call = await continuation(self._details(details, ctx), request)

        def done(finished: Any) -> None:
            # The stream is consumed by the caller; its status is ready once done.
            asyncio.ensure_future(self._complete(finished, method, span, started))

        call.add_done_callback(done)
        return call


def _method_name(method: str | bytes) -> str:
    return method.decode() if isinstance(method, bytes) else method


def _code_name(code: Any) -> str:
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def _finish(method: str, code: str, span: Span | None, started: float) -> None:
    metrics.GRPC_CLIENT.observe(method, code, time.perf_counter() - started)
    if span is not None:
        telemetry.set_rpc_status(span, code, server=False)
        span.end()


def make_channel(addr: str, *, deadline: float = 5.0) -> grpc.aio.Channel:
    """An insecure channel (inside the cluster network) with retries and the context interceptor."""
    target = (
        addr if "://" in addr or addr.startswith(("dns:", "unix:", "ipv4:", "ipv6:")) else f"dns:///{addr}"
    )
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.service_config", SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 30_000),
        ],
        interceptors=[_ContextClientInterceptor(deadline, addr)],
    )


def problem_errors(exc: grpc.aio.AioRpcError) -> list[dict[str, Any]]:
    """The validation errors a server attached to a failed call (empty when none)."""
    for key, value in exc.trailing_metadata() or ():
        if key == "x-problem-errors":
            try:
                parsed = json.loads(value)
            except ValueError:
                return []
            return parsed if isinstance(parsed, list) else []
    return []
