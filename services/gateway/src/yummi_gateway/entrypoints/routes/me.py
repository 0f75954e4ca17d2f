"""The caller: profile with wallet summary, GDPR export gathered from every context, and erasure."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import orjson
from fastapi import APIRouter
from starlette.responses import Response

from yummi.common.v1 import common_pb2
from yummi.payments.v1 import payments_pb2
from yummi_common.logging import get_logger
from yummi_common.timeutil import isoformat, utcnow
from yummi_gateway.entrypoints import serializers
from yummi_gateway.entrypoints.deps import CurrentUser, GatewayDep
from yummi_gateway.entrypoints.schemas import AUTH_PROBLEMS, Erasure, Export, Me
from yummi_gateway.responses import JSONBytes, dump_json
from yummi_gateway.service_layer.users import erase_user, export_identity

log = get_logger(__name__)
router = APIRouter(tags=["me"])
EXPORT_DEADLINE_SECONDS = 15.0


@router.get(
    "/v1/me", response_model=Me, responses=AUTH_PROBLEMS, summary="The caller (created on first call)"
)
async def get_me(user: CurrentUser, gateway: GatewayDep) -> Response:
    wallet: dict[str, Any] | None
    try:
        reply = await gateway.clients.payments.GetWallet(
            payments_pb2.WalletRequest(user_id=str(user.id), limit=1)
        )
        wallet = serializers.wallet(reply, with_transactions=False)
    except grpc.aio.AioRpcError as exc:
        log.warning("wallet unavailable for /v1/me", grpc_code=exc.code().name)
        wallet = None
    body = {
        "id": str(user.id),
        "clerk_user_id": user.clerk_user_id,
        "email": user.email,
        "created_at": isoformat(user.created_at),
        "is_admin": user.is_admin,
        "is_runner": user.is_runner,
        "wallet": wallet,
    }
    return JSONBytes(dump_json(body))


@router.get(
    "/v1/me/export",
    response_model=Export,
    responses=AUTH_PROBLEMS,
    summary="Everything Yummi holds about the caller",
)
async def export_me(user: CurrentUser, gateway: GatewayDep) -> Response:
    ref = common_pb2.UserRef(user_id=str(user.id))
    clients = gateway.clients
    calls = {
        "orders": clients.orders.ExportUserData(ref, timeout=EXPORT_DEADLINE_SECONDS),
        "payments": clients.payments.ExportUserData(ref, timeout=EXPORT_DEADLINE_SECONDS),
        "ai": clients.ai.ExportUserData(ref, timeout=EXPORT_DEADLINE_SECONDS),
    }
    identity, *replies = await asyncio.gather(
        export_identity(uow_factory=gateway.uow, user_id=user.id), *calls.values(), return_exceptions=True
    )
    # An export must be complete: any context failing fails the whole export (mapped to its problem).
    for outcome in (identity, *replies):
        if isinstance(outcome, BaseException):
            raise outcome
    contexts: dict[str, Any] = {}
    for name, reply in zip(calls, replies, strict=True):
        try:
            contexts[reply.context or name] = orjson.loads(reply.json) if reply.json else {}
        except orjson.JSONDecodeError:
            log.error("context export is not JSON", context=name)
            contexts[name] = {"raw": reply.json}
    body = {"generated_at": isoformat(utcnow()), "identity": identity, "contexts": contexts}
    return JSONBytes(
        dump_json(body), headers={"Content-Disposition": 'attachment; filename="yummi-export.json"'}
    )


@router.delete(
    "/v1/me",
    status_code=202,
    response_model=Erasure,
    responses=AUTH_PROBLEMS,
    summary="Erase the caller: every context deletes or anonymises their data",
)
async def delete_me(user: CurrentUser, gateway: GatewayDep) -> Response:
    await erase_user(uow_factory=gateway.uow, cache=gateway.users, user_id=user.id)
    return JSONBytes({"id": str(user.id), "status": "erasure_requested"}, status_code=202)
