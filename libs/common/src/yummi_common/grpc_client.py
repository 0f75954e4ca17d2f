"""gRPC client plumbing: channels with retries on UNAVAILABLE, the request id in metadata, a deadline on every call."""

from __future__ import annotations

import json
from typing import Any

import grpc

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
        ]
    }
)


class _ContextClientInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
):
    """Adds the request id and, when the caller gave none, the default deadline."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if REQUEST_ID_METADATA_KEY not in metadata:
            metadata.add(REQUEST_ID_METADATA_KEY, current_request_id())
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout if details.timeout is not None else self._deadline,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)


def make_channel(addr: str, *, deadline: float = 5.0) -> grpc.aio.Channel:
    """An insecure channel (inside the cluster network) with retries and the context interceptor."""
    target = addr if "://" in addr or addr.startswith(("dns:", "unix:", "ipv4:", "ipv6:")) else f"dns:///{addr}"
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.service_config", SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 30_000),
        ],
        interceptors=[_ContextClientInterceptor(deadline)],
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
