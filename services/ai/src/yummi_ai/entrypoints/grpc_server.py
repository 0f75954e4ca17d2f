"""The AiService servicer: completions (plain and streamed), users' keys, usage, suggestions, export."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC

import grpc

from yummi.ai.v1 import ai_pb2 as pb
from yummi.ai.v1 import ai_pb2_grpc
from yummi.common.v1 import common_pb2
from yummi_ai.adapters.catalog import Catalog
from yummi_ai.adapters.secrets import Keyring
from yummi_ai.service_layer import credentials, privacy
from yummi_ai.service_layer.completions import complete, stream_complete
from yummi_ai.service_layer.metering import Meter, StreamUsage
from yummi_ai.service_layer.suggestions import suggest_basket
from yummi_ai.service_layer.usage import get_daily_usage
from yummi_common.service import Runtime

# Room left inside the caller's gRPC deadline to settle the budget and answer after the provider gave up.
DEADLINE_MARGIN_SECONDS = 1.0


class AiServicer(ai_pb2_grpc.AiServiceServicer):
    """The ai context over gRPC; the caller's identity arrives as `user_id` fields."""

    def __init__(self, *, runtime: Runtime, meter: Meter, keyring: Keyring, catalog: Catalog) -> None:
        self._runtime = runtime
        self._meter = meter
        self._keyring = keyring
        self._catalog = catalog

    def _deadline(self, context: grpc.aio.ServicerContext) -> float:
        """The loop time by which provider calls must be done: AI_TOTAL_DEADLINE_SECONDS or the caller's."""
        seconds = self._meter.config.total_deadline_seconds
        remaining = context.time_remaining()
        if remaining is not None:
            seconds = min(seconds, remaining - DEADLINE_MARGIN_SECONDS)
        return asyncio.get_running_loop().time() + max(seconds, 0.0)

    async def Complete(
        self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompleteResponse:
        result = await complete(
            meter=self._meter,
            keyring=self._keyring,
            user_id=request.user_id,
            messages=[(m.role, m.content) for m in request.messages],
            model=request.model,
            max_tokens=request.max_tokens,
            user_key_id=request.user_key_id,
            deadline=self._deadline(context),
        )
        return pb.CompleteResponse(
            id=result.id,
            model=result.model,
            output=result.output,
            usage=pb.Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens),
        )

    async def StreamComplete(
        self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.CompleteChunk]:
        async for item in stream_complete(
            meter=self._meter,
            keyring=self._keyring,
            user_id=request.user_id,
            messages=[(m.role, m.content) for m in request.messages],
            model=request.model,
            max_tokens=request.max_tokens,
            user_key_id=request.user_key_id,
            deadline=self._deadline(context),
        ):
            if isinstance(item, StreamUsage):
                yield pb.CompleteChunk(
                    id=item.id,
                    model=item.model,
                    done=True,
                    usage=pb.Usage(
                        prompt_tokens=item.prompt_tokens, completion_tokens=item.completion_tokens
                    ),
                )
            else:
                chunk_id, model, text = item
                yield pb.CompleteChunk(id=chunk_id, model=model, delta=text)

    async def CreateCredential(
        self, request: pb.CreateCredentialRequest, context: grpc.aio.ServicerContext
    ) -> pb.Credential:
        view = await credentials.create_credential(
            uow_factory=self._runtime.uow,
            keyring=self._keyring,
            provider=self._meter.provider,
            config=self._meter.config,
            user_id=request.user_id,
            provider_name=request.provider,
            label=request.label,
            api_key=request.api_key,
        )
        return _credential(view)

    async def ListCredentials(
        self, request: common_pb2.UserRef, context: grpc.aio.ServicerContext
    ) -> pb.ListCredentialsResponse:
        async with self._runtime.uow() as uow:
            views = await credentials.list_credentials(session=uow.session, user_id=request.user_id)
        return pb.ListCredentialsResponse(items=[_credential(v) for v in views])

    async def DeleteCredential(
        self, request: pb.DeleteCredentialRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteCredentialResponse:
        async with self._runtime.uow() as uow:
            await credentials.delete_credential(uow=uow, user_id=request.user_id, credential_id=request.id)
        return pb.DeleteCredentialResponse()

    async def SuggestBasket(
        self, request: pb.SuggestBasketRequest, context: grpc.aio.ServicerContext
    ) -> pb.SuggestBasketResponse:
        suggestions = await suggest_basket(
            meter=self._meter,
            keyring=self._keyring,
            catalog=self._catalog,
            user_id=request.user_id,
            text=request.text,
            user_key_id=request.user_key_id,
            deadline=self._deadline(context),
        )
        return pb.SuggestBasketResponse(
            items=[
                pb.BasketSuggestion(product=s.product, quantity=s.quantity, reason=s.reason)
                for s in suggestions
            ]
        )

    async def GetUsage(
        self, request: common_pb2.UserRef, context: grpc.aio.ServicerContext
    ) -> pb.UsageSummary:
        async with self._runtime.uow() as uow:
            usage = await get_daily_usage(
                session=uow.session,
                user_id=request.user_id,
                daily_token_limit=self._meter.config.daily_token_limit,
            )
        return pb.UsageSummary(
            tokens_today=usage.tokens,
            daily_token_limit=usage.daily_token_limit,
            cost_micro_usd_today=usage.cost_micro_usd,
            requests_today=usage.requests,
        )

    async def ExportUserData(
        self, request: common_pb2.UserRef, context: grpc.aio.ServicerContext
    ) -> common_pb2.UserDataExport:
        async with self._runtime.uow() as uow:
            document = await privacy.export_user_data(session=uow.session, user_id=request.user_id)
        return common_pb2.UserDataExport(context=privacy.CONTEXT, json=document)


def _credential(view: credentials.CredentialView) -> pb.Credential:
    message = pb.Credential(id=str(view.id), provider=view.provider, label=view.label, key_hint=view.key_hint)
    message.created_at.FromDatetime(view.created_at.astimezone(UTC))
    if view.last_used_at is not None:
        message.last_used_at.FromDatetime(view.last_used_at.astimezone(UTC))
    return message


def register(server: grpc.aio.Server, servicer: AiServicer) -> list[str]:
    """Add the AiService to `server`; returns its full name for health and reflection."""
    ai_pb2_grpc.add_AiServiceServicer_to_server(servicer, server)
    return [pb.DESCRIPTOR.services_by_name["AiService"].full_name]
