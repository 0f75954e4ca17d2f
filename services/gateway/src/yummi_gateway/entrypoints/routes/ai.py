"""Assistant features: completions (JSON or SSE), the caller's provider keys, usage, basket suggestions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from fastapi import APIRouter
from starlette.responses import Response, StreamingResponse

from yummi.ai.v1 import ai_pb2
from yummi.common.v1 import common_pb2
from yummi_common.logging import get_logger
from yummi_gateway.entrypoints import serializers
from yummi_gateway.entrypoints.deps import JSON_BODY, CurrentUser, GatewayDep, parse_uuid
from yummi_gateway.entrypoints.schemas import (
    AUTH_PROBLEMS,
    BODY_PROBLEMS,
    PROBLEM,
    CompleteIn,
    CompleteOut,
    Credential,
    CredentialIn,
    CredentialList,
    SuggestIn,
    Suggestions,
    UsageSummary,
)
from yummi_gateway.problems import grpc_status_to_http
from yummi_gateway.responses import JSONBytes, dump_json

log = get_logger(__name__)
router = APIRouter(tags=["ai"])
# 502: OpenAI (or the catalog, mid-suggestion) failed after the ai service's own retries.
AI_PROBLEMS = {
    **AUTH_PROBLEMS,
    **BODY_PROBLEMS,
    404: PROBLEM,
    409: PROBLEM,
    422: PROBLEM,
    429: PROBLEM,
    501: PROBLEM,
    502: PROBLEM,
}


def _complete_request(body: CompleteIn, user_id: str) -> ai_pb2.CompleteRequest:
    return ai_pb2.CompleteRequest(
        user_id=user_id,
        messages=[ai_pb2.ChatMessage(role=m.role, content=m.content) for m in body.messages],
        model=body.model or "",
        max_tokens=body.max_tokens or 0,
        user_key_id=body.user_key_id or "",
    )


@router.post(
    "/v1/ai/complete",
    response_model=CompleteOut,
    responses={**AI_PROBLEMS, 200: {"content": {"text/event-stream": {}}}},
    dependencies=JSON_BODY,
    summary="A chat completion (Server-Sent Events when `stream` is true)",
)
async def complete(body: CompleteIn, user: CurrentUser, gateway: GatewayDep) -> Response:
    request = _complete_request(body, str(user.id))
    if not body.stream:
        reply = await gateway.clients.ai.Complete(request, timeout=gateway.settings.ai_grpc_deadline_seconds)
        return JSONBytes(
            dump_json(
                {
                    "id": reply.id,
                    "model": reply.model,
                    "output": reply.output,
                    "usage": serializers.usage(reply.usage),
                }
            )
        )
    call = gateway.clients.ai.StreamComplete(request, timeout=gateway.settings.ai_grpc_deadline_seconds)
    # Wait for the first chunk so a refused request still gets a proper problem status.
    iterator = call.__aiter__()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = None
    return StreamingResponse(
        _sse(first, iterator), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


async def _sse(
    first: ai_pb2.CompleteChunk | None, rest: AsyncIterator[ai_pb2.CompleteChunk]
) -> AsyncIterator[bytes]:
    def event(chunk: ai_pb2.CompleteChunk) -> bytes:
        data = {"id": chunk.id, "model": chunk.model, "delta": chunk.delta, "done": chunk.done}
        if chunk.HasField("usage"):
            data["usage"] = serializers.usage(chunk.usage)
        return b"data: " + dump_json(data) + b"\n\n"

    if first is not None:
        yield event(first)
    try:
        async for chunk in rest:
            yield event(chunk)
    except grpc.aio.AioRpcError as exc:
        log.warning("ai stream failed", grpc_code=exc.code().name)
        status = grpc_status_to_http(exc.code())
        yield (
            b"event: error\ndata: "
            + dump_json({"status": status, "detail": "The completion stopped early."})
            + b"\n\n"
        )


@router.post(
    "/v1/ai/credentials",
    status_code=201,
    response_model=Credential,
    responses=AI_PROBLEMS,
    dependencies=JSON_BODY,
    summary="Store a provider API key (never returned)",
)
async def create_credential(body: CredentialIn, user: CurrentUser, gateway: GatewayDep) -> Response:
    reply = await gateway.clients.ai.CreateCredential(
        ai_pb2.CreateCredentialRequest(
            user_id=str(user.id), provider=body.provider, label=body.label, api_key=body.api_key
        ),
        timeout=gateway.settings.ai_grpc_deadline_seconds,  # the key may be checked with the provider first
    )
    return JSONBytes(dump_json(serializers.credential(reply)), status_code=201)


@router.get(
    "/v1/ai/credentials", response_model=CredentialList, responses=AI_PROBLEMS, summary="The caller's keys"
)
async def list_credentials(user: CurrentUser, gateway: GatewayDep) -> Response:
    reply = await gateway.clients.ai.ListCredentials(common_pb2.UserRef(user_id=str(user.id)))
    return JSONBytes(dump_json({"items": [serializers.credential(c) for c in reply.items]}))


@router.delete(
    "/v1/ai/credentials/{credential_id}",
    status_code=204,
    responses=AI_PROBLEMS,
    summary="Delete a stored key",
)
async def delete_credential(credential_id: str, user: CurrentUser, gateway: GatewayDep) -> Response:
    cid = str(parse_uuid(credential_id, what="credential"))
    await gateway.clients.ai.DeleteCredential(ai_pb2.DeleteCredentialRequest(user_id=str(user.id), id=cid))
    return Response(status_code=204)


@router.get(
    "/v1/ai/usage", response_model=UsageSummary, responses=AI_PROBLEMS, summary="Tokens used today and limits"
)
async def usage(user: CurrentUser, gateway: GatewayDep) -> Response:
    reply = await gateway.clients.ai.GetUsage(common_pb2.UserRef(user_id=str(user.id)))
    return JSONBytes(
        {
            "tokens_today": reply.tokens_today,
            "daily_token_limit": reply.daily_token_limit,
            "cost_micro_usd_today": reply.cost_micro_usd_today,
            "requests_today": reply.requests_today,
        }
    )


@router.post(
    "/v1/ai/tools/basket-suggestions",
    response_model=Suggestions,
    responses=AI_PROBLEMS,
    dependencies=JSON_BODY,
    summary="Products (from the live catalog) for a meal or shopping need",
)
async def basket_suggestions(body: SuggestIn, user: CurrentUser, gateway: GatewayDep) -> Response:
    reply = await gateway.clients.ai.SuggestBasket(
        ai_pb2.SuggestBasketRequest(user_id=str(user.id), text=body.text, user_key_id=body.user_key_id or ""),
        timeout=gateway.settings.ai_grpc_deadline_seconds,
    )
    items = [
        {"product": serializers.product(s.product), "quantity": s.quantity, "reason": s.reason}
        for s in reply.items
    ]
    return JSONBytes(dump_json({"items": items}))
