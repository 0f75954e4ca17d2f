"""A user's data in the payments context: the export, and erasure (money records stay, personal data goes)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import ARRAY, Text, cast, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yummi.events.v1 import events_pb2 as ev
from yummi_common.db import UnitOfWork
from yummi_common.logging import get_logger
from yummi_common.timeutil import isoformat
from yummi_payments.adapters.tables import (
    chargebacks,
    itn_audit,
    order_charges,
    payments,
    wallet_transactions,
    wallets,
)
from yummi_payments.service_layer.ids import parse_id

log = get_logger(__name__)

CONTEXT = "payments"
# What PayFast echoes back about the buyer; the ledger itself holds no personal data beyond the user id.
PERSONAL_ITN_FIELDS = ["name_first", "name_last", "email_address", "cell_number", "raw"]


async def export_user_data(*, session: AsyncSession, user_id: str) -> str:
    """Everything this context holds about the user, as a JSON document."""
    uid = parse_id(user_id, "user_id")
    wallet = (await session.execute(select(wallets).where(wallets.c.user_id == uid))).first()
    entries = (
        await session.execute(
            select(wallet_transactions)
            .where(wallet_transactions.c.user_id == uid)
            .order_by(wallet_transactions.c.created_at, wallet_transactions.c.id)
        )
    ).all()
    tops = (
        await session.execute(
            select(payments).where(payments.c.user_id == uid).order_by(payments.c.created_at)
        )
    ).all()
    charges = (
        await session.execute(
            select(order_charges).where(order_charges.c.user_id == uid).order_by(order_charges.c.created_at)
        )
    ).all()
    reversals = (
        await session.execute(
            select(chargebacks).where(chargebacks.c.user_id == uid).order_by(chargebacks.c.created_at)
        )
    ).all()
    document: dict[str, Any] = {
        "context": CONTEXT,
        "user_id": str(uid),
        "wallet": None
        if wallet is None
        else {
            "balance_minor": wallet.balance_minor,
            "currency": wallet.currency,
            "debits_blocked": wallet.debits_blocked,
            "created_at": isoformat(wallet.created_at),
            "updated_at": isoformat(wallet.updated_at),
        },
        "transactions": [
            {
                "id": str(e.id),
                "amount_minor": e.amount_minor,
                "balance_after_minor": e.balance_after_minor,
                "entry_type": e.entry_type,
                "order_id": str(e.order_id) if e.order_id else None,
                "note": e.note,
                "created_at": isoformat(e.created_at),
            }
            for e in entries
        ],
        "payments": [
            {
                "reference": str(p.reference),
                "status": p.status,
                "payfast_status": p.payfast_status,
                "pf_payment_id": p.pf_payment_id,
                "amount_minor": p.amount_minor,
                "currency": p.currency,
                "wallet_credited": p.wallet_credited,
                "payfast_notification": p.last_itn_payload,
                "created_at": isoformat(p.created_at),
                "updated_at": isoformat(p.updated_at),
            }
            for p in tops
        ],
        "order_charges": [
            {
                "order_id": str(c.order_id),
                "amount_minor": c.amount_minor,
                "currency": c.currency,
                "status": c.status,
                "reason": c.reason,
                "created_at": isoformat(c.created_at),
            }
            for c in charges
        ],
        "chargebacks": [
            {
                "reference": str(c.reference),
                "amount_minor": c.amount_minor,
                "reason": c.reason,
                "created_at": isoformat(c.created_at),
            }
            for c in reversals
        ],
    }
    return orjson.dumps(document).decode()


async def erase_user(*, uow: UnitOfWork, user_id: uuid.UUID) -> None:
    """Strip the buyer's personal details PayFast sent us; the ledger and payments stay for the accounts."""
    session = uow.session
    keys = cast(literal(PERSONAL_ITN_FIELDS), ARRAY(Text))
    await session.execute(
        update(payments)
        .where(payments.c.user_id == user_id, payments.c.last_itn_payload.is_not(None))
        .values(last_itn_payload=payments.c.last_itn_payload.op("-")(keys))
    )
    user_payments = select(payments.c.id).where(payments.c.user_id == user_id).scalar_subquery()
    await session.execute(
        update(itn_audit)
        .where(itn_audit.c.payment_id.in_(user_payments))
        .values(payload=itn_audit.c.payload.op("-")(keys))
    )
    uow.emit(
        "identity.user.erasure_completed", ev.UserErasureCompleted(user_id=str(user_id), context=CONTEXT)
    )
    log.info("user erased from payments", user_id=str(user_id))
