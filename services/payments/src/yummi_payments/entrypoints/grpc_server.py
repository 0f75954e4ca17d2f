"""The PaymentsService servicer: maps requests to the payments use cases."""

from __future__ import annotations

import grpc

from yummi.common.v1 import common_pb2
from yummi.payments.v1 import payments_pb2 as pb
from yummi.payments.v1 import payments_pb2_grpc
from yummi_common.db import autocommit_connection
from yummi_common.errors import YummiError
from yummi_common.logging import get_logger
from yummi_common.service import Runtime
from yummi_common.timeutil import to_timestamp
from yummi_payments.adapters.payfast_client import ItnVerifier, PayfastItnVerifier
from yummi_payments.config import PayfastConfig, payfast_config
from yummi_payments.entrypoints.itn_metrics import count_itn_failure, count_itn_outcome
from yummi_payments.service_layer import payfast as payfast_service
from yummi_payments.service_layer import privacy, wallet
from yummi_payments.service_layer.wallet import WalletView

log = get_logger(__name__)


def wallet_message(view: WalletView) -> pb.Wallet:
    return pb.Wallet(
        balance_minor=view.balance_minor,
        currency=view.currency,
        debits_blocked=view.debits_blocked,
        transactions=[
            pb.WalletTransaction(
                id=str(t.id),
                amount_minor=t.amount_minor,
                entry_type=t.entry_type,
                note=t.note,
                created_at=to_timestamp(t.created_at),
            )
            for t in view.transactions
        ],
        next_cursor=view.next_cursor or "",
    )


class PaymentsServicer(payments_pb2_grpc.PaymentsServiceServicer):
    """PayFast top-ups and the wallet over gRPC; the caller's identity arrives as `user_id` fields."""

    def __init__(self, runtime: Runtime, *, config: PayfastConfig, verifier: ItnVerifier) -> None:
        self._runtime = runtime
        self._config = config
        self._verifier = verifier

    async def InitiatePayfast(
        self, request: pb.InitiatePayfastRequest, context: grpc.aio.ServicerContext
    ) -> pb.InitiatePayfastResponse:
        async with self._runtime.uow() as uow:
            checkout = await payfast_service.initiate_payfast(
                uow=uow,
                config=self._config,
                user_id=request.user_id,
                amount_minor=request.amount_minor,
                currency=request.currency,
                email=request.email,
            )
        return pb.InitiatePayfastResponse(
            reference=str(checkout.reference),
            action_url=checkout.action_url,
            fields=[pb.FormField(name=k, value=v) for k, v in checkout.fields],
            mode=checkout.mode,
        )

    async def HandleItn(
        self, request: pb.HandleItnRequest, context: grpc.aio.ServicerContext
    ) -> pb.HandleItnResponse:
        try:
            result = await payfast_service.handle_itn(
                uow_factory=self._runtime.uow,
                config=self._config,
                verifier=self._verifier,
                raw_body=request.raw_body,
                client_ip=request.client_ip,
            )
        except YummiError as exc:
            count_itn_failure(exc)
            raise
        except Exception:
            count_itn_failure(YummiError("internal error"))
            raise
        count_itn_outcome(result.outcome)
        return pb.HandleItnResponse(accepted=result.accepted, outcome=result.outcome)

    async def GetPaymentStatus(
        self, request: pb.PaymentStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.PaymentStatus:
        async with self._runtime.uow() as uow:
            view = await payfast_service.get_payment_status(
                session=uow.session, user_id=request.user_id, reference=request.reference
            )
        return pb.PaymentStatus(
            reference=str(view.reference),
            status=view.status,
            payfast_status=view.payfast_status or "",
            amount_minor=view.amount_minor,
            currency=view.currency,
            wallet_credited=view.wallet_credited,
            created_at=to_timestamp(view.created_at),
            updated_at=to_timestamp(view.updated_at),
        )

    async def GetWallet(self, request: pb.WalletRequest, context: grpc.aio.ServicerContext) -> pb.Wallet:
        async with autocommit_connection(self._runtime.engine) as connection:  # one statement, one snapshot
            view = await wallet.get_wallet(
                session=connection, user_id=request.user_id, limit=request.limit, cursor=request.cursor
            )
        return wallet_message(view)

    async def Chargeback(
        self, request: pb.ChargebackRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChargebackResponse:
        async with self._runtime.uow() as uow:
            user_id = await wallet.charge_back(
                uow=uow, reference=request.reference, admin_id=request.admin_id, reason=request.reason
            )
            view = await wallet.get_wallet(session=uow.session, user_id=str(user_id))
            await uow.commit()
        return pb.ChargebackResponse(reference=request.reference, wallet=wallet_message(view))

    async def GetPendingCounts(
        self, request: pb.PendingCountsRequest, context: grpc.aio.ServicerContext
    ) -> pb.PendingCounts:
        async with self._runtime.uow() as uow:
            pending = await payfast_service.count_pending_payments(session=uow.session)
        return pb.PendingCounts(payments_pending=pending)

    async def ExportUserData(
        self, request: common_pb2.UserRef, context: grpc.aio.ServicerContext
    ) -> common_pb2.UserDataExport:
        async with self._runtime.uow() as uow:
            document = await privacy.export_user_data(session=uow.session, user_id=request.user_id)
        return common_pb2.UserDataExport(context=privacy.CONTEXT, json=document)


def register(server: grpc.aio.Server, runtime: Runtime) -> list[str]:
    """Add the PaymentsService to `server`; returns its full name for health and reflection."""
    config = payfast_config(runtime.settings)
    log.info(
        "payfast configured",
        mode=config.mode,
        merchant_id=config.merchant_id,
        process_url=config.process_url,
        validate_url=config.validate_url,
        valid_hosts=",".join(config.valid_hosts),
        server_confirmation=not config.skip_server_confirmation,
    )
    servicer = PaymentsServicer(runtime, config=config, verifier=PayfastItnVerifier(config))
    payments_pb2_grpc.add_PaymentsServiceServicer_to_server(servicer, server)
    return [pb.DESCRIPTOR.services_by_name["PaymentsService"].full_name]
