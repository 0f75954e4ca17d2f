"""The AiService servicer: usage and export now; completions, credentials and tools are not yet available."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from yummi.ai.v1 import ai_pb2 as pb
from yummi.ai.v1 import ai_pb2_grpc
from yummi.common.v1 import common_pb2
from yummi_ai.service_layer import privacy
from yummi_ai.service_layer.usage import get_daily_usage
from yummi_common.errors import Unimplemented
from yummi_common.service import Runtime


class AiServicer(ai_pb2_grpc.AiServiceServicer):
    """The ai context over gRPC; the caller's identity arrives as `user_id` fields."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def Complete(
        self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompleteResponse:
        raise Unimplemented("AI completion is not yet available")

    async def StreamComplete(
        self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.CompleteChunk]:
        nothing: list[pb.CompleteChunk] = []  # a stream handler must be an async generator
        for chunk in nothing:
            yield chunk
        raise Unimplemented("streaming AI completion is not yet available")

    async def CreateCredential(
        self, request: pb.CreateCredentialRequest, context: grpc.aio.ServicerContext
    ) -> pb.Credential:
        raise Unimplemented("storing provider keys is not yet available")

    async def ListCredentials(
        self, request: common_pb2.UserRef, context: grpc.aio.ServicerContext
    ) -> pb.ListCredentialsResponse:
        raise Unimplemented("provider keys are not yet available")

    async def DeleteCredential(
        self, request: pb.DeleteCredentialRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteCredentialResponse:
        raise Unimplemented("provider keys are not yet available")

    async def SuggestBasket(
        self, request: pb.SuggestBasketRequest, context: grpc.aio.ServicerContext
    ) -> pb.SuggestBasketResponse:
        raise Unimplemented("basket suggestions are not yet available")

    async def GetUsage(
        self, request: common_pb2.UserRef, context: grpc.aio.ServicerContext
    ) -> pb.UsageSummary:
        async with self._runtime.uow() as uow:
            usage = await get_daily_usage(
                session=uow.session,
                user_id=request.user_id,
                daily_token_limit=self._runtime.settings.ai_daily_token_limit,
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


def register(server: grpc.aio.Server, runtime: Runtime) -> list[str]:
    """Add the AiService to `server`; returns its full name for health and reflection."""
    ai_pb2_grpc.add_AiServiceServicer_to_server(AiServicer(runtime), server)
    return [pb.DESCRIPTOR.services_by_name["AiService"].full_name]
