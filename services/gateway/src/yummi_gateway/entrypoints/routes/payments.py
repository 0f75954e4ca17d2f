"""PayFast top-ups (initiate, status, the ITN webhook, return/cancel bridges) and the caller's wallet."""

from __future__ import annotations

import html
import uuid
from typing import Annotated, Any
from urllib.parse import quote

import grpc
from fastapi import APIRouter, HTTPException, Query, Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from yummi.payments.v1 import payments_pb2
from yummi_common.logging import get_logger
from yummi_gateway.caller import client_ip_of
from yummi_gateway.entrypoints import serializers
from yummi_gateway.entrypoints.deps import JSON_BODY, CurrentUser, GatewayDep
from yummi_gateway.entrypoints.schemas import (
    AUTH_PROBLEMS,
    BODY_PROBLEMS,
    PROBLEM,
    InitiatePaymentIn,
    InitiatePaymentOut,
    PaymentStatus,
    Wallet,
)
from yummi_gateway.problems import grpc_problem, problem
from yummi_gateway.responses import JSONBytes, dump_json

log = get_logger(__name__)
router = APIRouter(tags=["payments"])
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
BRIDGE_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
PAYMENT_PROBLEMS = {**AUTH_PROBLEMS, **BODY_PROBLEMS, 404: PROBLEM, 422: PROBLEM}


@router.post(
    "/v1/payments/payfast/initiate",
    response_model=InitiatePaymentOut,
    responses=PAYMENT_PROBLEMS,
    dependencies=JSON_BODY,
    summary="Start a wallet top-up: the signed fields to post to PayFast",
)
async def initiate_payfast(body: InitiatePaymentIn, user: CurrentUser, gateway: GatewayDep) -> Response:
    reply = await gateway.clients.payments.InitiatePayfast(
        payments_pb2.InitiatePayfastRequest(
            user_id=str(user.id),
            amount_minor=body.amount_minor,
            currency=body.currency,
            email=user.email or "",
        )
    )
    return JSONBytes(
        dump_json(
            {
                "reference": reply.reference,
                "action_url": reply.action_url,
                "fields": {f.name: f.value for f in reply.fields},
                "mode": reply.mode,
            }
        )
    )


@router.get(
    "/v1/payments/payfast/status",
    response_model=PaymentStatus,
    responses=PAYMENT_PROBLEMS,
    summary="The status of one of the caller's top-ups",
)
async def payfast_status(
    user: CurrentUser, gateway: GatewayDep, reference: Annotated[str, Query(min_length=1, max_length=64)]
) -> Response:
    reply = await gateway.clients.payments.GetPaymentStatus(
        payments_pb2.PaymentStatusRequest(user_id=str(user.id), reference=reference)
    )
    return JSONBytes(dump_json(serializers.payment_status(reply)))


@router.get(
    "/v1/wallet/balance",
    response_model=Wallet,
    responses=AUTH_PROBLEMS,
    summary="The caller's wallet balance and recent transactions",
)
async def wallet_balance(
    user: CurrentUser,
    gateway: GatewayDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    reply = await gateway.clients.payments.GetWallet(
        payments_pb2.WalletRequest(user_id=str(user.id), limit=limit, cursor=cursor or "")
    )
    return JSONBytes(dump_json(serializers.wallet(reply)))


async def _payfast_itn(request: Request, gateway: GatewayDep) -> Response:
    media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media != FORM_MEDIA_TYPE:
        raise HTTPException(415, f"Send the notification as {FORM_MEDIA_TYPE}.")
    raw = await request.body()
    client_ip = client_ip_of(request.scope, gateway.settings.trusted_proxy_networks)
    try:
        reply = await gateway.clients.payments.HandleItn(
            payments_pb2.HandleItnRequest(raw_body=raw, client_ip=client_ip)
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return grpc_problem(exc)  # 503: PayFast retries the notification later
        log.warning("payfast itn refused", grpc_code=exc.code().name, client_ip=client_ip)
        return problem(400, "The payment notification was not accepted.")
    if not reply.accepted:
        log.warning("payfast itn refused", outcome=reply.outcome, client_ip=client_ip)
        return problem(400, "The payment notification was not accepted.")
    return PlainTextResponse("OK")


ITN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {}}},
    400: PROBLEM,
    415: PROBLEM,
    503: PROBLEM,
}
for _path, _name in (
    ("/payments/payfast/itn", "payfast_itn"),
    ("/v1/payments/payfast/itn", "payfast_itn_v1"),
):
    router.add_api_route(
        _path,
        _payfast_itn,
        methods=["POST"],
        name=_name,
        summary="PayFast Instant Transaction Notification (form-encoded)",
        responses=ITN_RESPONSES,
        response_class=PlainTextResponse,
    )


def bridge_page(target: str, reference: str | None) -> HTMLResponse:
    """A tiny page that sends the browser back into the app (deep link), passing the reference through."""
    url = target
    if reference is not None:
        url += ("&" if "?" in target else "?") + "reference=" + quote(reference, safe="")
    href = html.escape(url, quote=True)
    page = (
        '<!doctype html><html><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0;url={href}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Back to Yummi</title></head>"
        f'<body><p><a href="{href}">Return to the Yummi app</a></p></body></html>'
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": BRIDGE_CSP, "Cache-Control": "no-store"})


def _reference(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise HTTPException(400, "reference must be a UUID") from None


BRIDGE_RESPONSES: dict[int | str, dict[str, Any]] = {400: PROBLEM}


@router.get(
    "/v1/payments/payfast/return-bridge",
    summary="PayFast return page: back to the app",
    response_class=HTMLResponse,
    responses=BRIDGE_RESPONSES,
)
async def return_bridge(
    gateway: GatewayDep, reference: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    return bridge_page(gateway.settings.payfast_app_return_url, _reference(reference))


@router.get(
    "/v1/payments/payfast/cancel-bridge",
    summary="PayFast cancel page: back to the app",
    response_class=HTMLResponse,
    responses=BRIDGE_RESPONSES,
)
async def cancel_bridge(
    gateway: GatewayDep, reference: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    return bridge_page(gateway.settings.payfast_app_cancel_url, _reference(reference))
