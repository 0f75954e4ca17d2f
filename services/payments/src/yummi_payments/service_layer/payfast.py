"""PayFast top-ups: start a checkout, verify and apply an ITN, report a payment's status and pending count."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Text,
    bindparam,
    case,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from yummi.events.v1 import events_pb2 as ev
from yummi_common.db import UnitOfWork, outbox_cte, returned_rows
from yummi_common.errors import InvalidArgument, NotFound, Unavailable
from yummi_common.logging import get_logger
from yummi_common.timeutil import utcnow
from yummi_payments.adapters.payfast_client import ItnVerifier
from yummi_payments.adapters.tables import itn_audit, messaging, payments
from yummi_payments.config import PayfastConfig
from yummi_payments.domain import payfast
from yummi_payments.domain.payfast import Itn, ItnError
from yummi_payments.domain.payment import (
    CURRENCY,
    FINAL_STATUSES,
    PaymentStatus,
    status_after_itn,
    topup_errors,
)
from yummi_payments.service_layer.ids import parse_id

log = get_logger(__name__)

MAX_EMAIL = 100  # PayFast's email_address limit
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Checkout:
    """What the app posts to PayFast: where, and the signed fields in order."""

    reference: uuid.UUID
    action_url: str
    fields: list[tuple[str, str]]
    mode: str


@dataclass(frozen=True)
class ItnResult:
    accepted: bool
    outcome: str  # credited, recorded, duplicate


@dataclass(frozen=True)
class PaymentView:
    reference: uuid.UUID
    status: str
    payfast_status: str | None
    amount_minor: int
    currency: str
    wallet_credited: bool
    created_at: datetime
    updated_at: datetime


async def initiate_payfast(
    *, uow: UnitOfWork, config: PayfastConfig, user_id: str, amount_minor: int, currency: str, email: str = ""
) -> Checkout:
    """Create a pending top-up and the signed PayFast checkout form for it."""
    uid = parse_id(user_id, "user_id")
    currency = (currency or CURRENCY).strip().upper()
    email = (email or "").strip()
    errors = topup_errors(amount_minor=amount_minor, currency=currency, max_minor=config.max_amount_minor)
    if email and (len(email) > MAX_EMAIL or not _EMAIL.match(email)):
        errors.append(
            {"field": "email", "message": f"must be an email address of at most {MAX_EMAIL} characters"}
        )
    if errors:
        raise InvalidArgument("top-up request is not valid", errors=errors)
    payment_id, reference, now = uuid.uuid4(), uuid.uuid4(), utcnow()
    ref = str(reference)
    fields = {
        "merchant_id": config.merchant_id,
        "merchant_key": config.merchant_key,
        "return_url": payfast.with_query(config.return_url, reference=ref) if config.return_url else "",
        "cancel_url": payfast.with_query(config.cancel_url, reference=ref) if config.cancel_url else "",
        "notify_url": config.notify_url or "",
        "email_address": email,
        "m_payment_id": ref,
        "amount": payfast.format_amount(amount_minor),
        "item_name": config.item_name,
    }
    signed = payfast.signed_checkout_fields(fields, config.passphrase)
    # For comparing with PayFast's sandbox signature tester; the passphrase is never part of what is logged.
    log.debug("payfast signature string", reference=ref, param_string=payfast.param_string(signed[:-1]))
    # The pending payment is the whole write: one statement, committed on its own.
    await uow.execute_alone(
        _NEW_PAYMENT,
        {
            "id": payment_id,
            "reference": reference,
            "user_id": uid,
            "amount_minor": amount_minor,
            "currency": currency,
            "created_at": now,
            "updated_at": now,
        },
    )
    log.info("payfast checkout started", reference=ref, amount_minor=amount_minor)
    return Checkout(reference=reference, action_url=config.process_url, fields=signed, mode=config.mode)


async def handle_itn(
    *,
    uow_factory: Callable[[], UnitOfWork],
    config: PayfastConfig,
    verifier: ItnVerifier,
    raw_body: bytes,
    client_ip: str,
) -> ItnResult:
    """Run PayFast's four checks (and our merchant id) on an ITN, then apply it; a failure changes nothing."""
    client_ip = (client_ip or "").strip()[:64]
    try:
        itn = payfast.parse_itn(raw_body)
    except ItnError as exc:
        await _audit(uow_factory, None, None, client_ip, "rejected", exc.reason, _raw_payload(raw_body))
        raise InvalidArgument(
            f"ITN rejected: {exc.detail}", errors=[{"field": "itn", "message": exc.reason}]
        ) from exc
    payload = itn.as_dict()
    async with uow_factory() as uow:  # one statement, no transaction around it
        found = await uow.execute_alone(_PAYMENT_BY_REFERENCE, {"reference": itn.reference})
    payment = found[0] if found else None
    if payment is None:
        await _audit(uow_factory, itn, None, client_ip, "rejected", "unknown_payment", payload)
        raise InvalidArgument(
            "ITN rejected: unknown payment", errors=[{"field": "itn", "message": "unknown_payment"}]
        )
    try:
        payfast.check_signature(itn, config.passphrase)
        payfast.check_merchant(itn, config.merchant_id)
        await verifier.check_source(client_ip)
        payfast.check_amount(itn, payment.amount_minor)
        if payment.status not in FINAL_STATUSES and not config.skip_server_confirmation:
            await verifier.confirm(payfast.validation_body(itn))
    except ItnError as exc:
        await _audit(uow_factory, itn, payment.id, client_ip, "rejected", exc.reason, payload)
        log.warning("itn rejected", reference=str(itn.reference), reason=exc.reason, client_ip=client_ip)
        raise InvalidArgument(
            f"ITN rejected: {exc.detail}", errors=[{"field": "itn", "message": exc.reason}]
        ) from exc
    except Unavailable as exc:
        await _audit(uow_factory, itn, payment.id, client_ip, "unavailable", exc.message, payload)
        raise
    return await _apply_itn(uow_factory, itn, payment, client_ip, payload)


def _apply_itn_statement(*, credits: bool) -> Any:
    """Apply a verified ITN to its payment in one statement (committed on its own).

    `current` locks the payment row and reads it as it is now (after any concurrent ITN for it committed);
    `changed` moves it only while its status is not final; `audited` records the ITN with its outcome: the
    given one when the payment moved, else `duplicate` (with `conflicts_with_final_status` when the final
    status is not the one this ITN reports). With `credits` the `payments.payment.credited` event is written
    when the payment moved. Returns the payment's status before, and whether it moved (no row: no payment).

    No bound name may be a column of `payments`: SQLAlchemy would add such a parameter to the UPDATE's SET.
    """
    now = bindparam("now", type_=DateTime(timezone=True))
    itn_payload = bindparam("payload", type_=JSONB)
    new_payfast_status = bindparam("new_payfast_status", type_=Text)
    current = (
        select(payments.c.id, payments.c.status, payments.c.payfast_status)
        .where(payments.c.id == bindparam("payment_id", type_=UUID(as_uuid=True)))
        .with_for_update()
        .cte("current")
    )
    final = sorted(status.value for status in FINAL_STATUSES)
    changed = (
        update(payments)
        .where(payments.c.id == current.c.id, current.c.status.not_in(final))
        .values(
            status=bindparam("new_status", type_=Text),
            payfast_status=new_payfast_status,
            pf_payment_id=bindparam("new_pf_payment_id", type_=Text),
            last_itn_payload=itn_payload,
            updated_at=now,
            completed_at=bindparam("new_completed_at", type_=DateTime(timezone=True)),
        )
        .returning(payments.c.id)
        .cte("changed")
    )
    audited = (
        insert(itn_audit)
        .from_select(
            ["id", "reference", "payment_id", "client_ip", "outcome", "reason", "payload", "created_at"],
            select(
                bindparam("audit_id", type_=UUID(as_uuid=True)),
                bindparam("itn_reference", type_=Text),
                current.c.id,
                bindparam("client_ip", type_=Text),
                case((returned_rows(changed), bindparam("outcome", type_=Text)), else_=literal("duplicate")),
                case(
                    (or_(returned_rows(changed), current.c.payfast_status == new_payfast_status), null()),
                    else_=literal("conflicts_with_final_status"),
                ),
                itn_payload,
                now,
            ).select_from(current),
        )
        .returning(itn_audit.c.id)
        .cte("audited")
    )
    statement = select(
        current.c.status.label("previous_status"),
        current.c.payfast_status.label("previous_payfast_status"),
        returned_rows(changed).label("moved"),
    ).add_cte(audited)
    if credits:
        statement = statement.add_cte(outbox_cte(messaging.outbox, when=changed))
    return statement


# Built once: SQLAlchemy reuses their cache keys and compiled forms on every call.
_NEW_PAYMENT = (
    pg_insert(payments)
    .values(
        id=bindparam("id"),
        reference=bindparam("reference"),
        user_id=bindparam("user_id"),
        amount_minor=bindparam("amount_minor"),
        currency=bindparam("currency"),
        status=PaymentStatus.PENDING.value,
        created_at=bindparam("created_at"),
        updated_at=bindparam("updated_at"),
    )
    .returning(payments.c.id)
)
_PAYMENT_BY_REFERENCE = select(payments).where(
    payments.c.reference == bindparam("reference", type_=UUID(as_uuid=True))
)
_APPLY_ITN = _apply_itn_statement(credits=False)
_APPLY_CREDITING_ITN = _apply_itn_statement(credits=True)


async def _apply_itn(
    uow_factory: Callable[[], UnitOfWork],
    itn: Itn,
    payment: Any,
    client_ip: str,
    payload: dict[str, str],
) -> ItnResult:
    status = status_after_itn(itn.payment_status)
    now = utcnow()
    credits = status is PaymentStatus.COMPLETE
    outcome = "credited" if credits else "recorded"
    params: dict[str, Any] = {
        "payment_id": payment.id,
        "new_status": status.value,
        "new_payfast_status": itn.payment_status.value,
        "new_pf_payment_id": itn.pf_payment_id or None,
        "payload": payload,
        "now": now,
        "new_completed_at": now if credits else None,
        "audit_id": uuid.uuid4(),
        "itn_reference": str(itn.reference),
        "client_ip": client_ip,
        "outcome": outcome,
    }
    async with uow_factory() as uow:
        if credits:
            event = uow.outbox_params(
                "payments.payment.credited",
                ev.PaymentCredited(
                    payment_id=str(payment.id),
                    reference=str(payment.reference),
                    user_id=str(payment.user_id),
                    amount_minor=payment.amount_minor,
                    currency=payment.currency,
                    pf_payment_id=itn.pf_payment_id,
                ),
            )
            params.update(event)
        rows = await uow.execute_alone(_APPLY_CREDITING_ITN if credits else _APPLY_ITN, params)
        if rows and rows[0].moved and credits:
            uow.event_written(event)
    if not rows:  # the payment row went between the look-up and now
        await _audit(uow_factory, itn, None, client_ip, "rejected", "unknown_payment", payload)
        raise InvalidArgument(
            "ITN rejected: unknown payment", errors=[{"field": "itn", "message": "unknown_payment"}]
        )
    row = rows[0]
    if not row.moved:
        if row.previous_payfast_status != itn.payment_status.value:
            # e.g. COMPLETE after FAILED: left for an operator rather than guessed at (audited, with why)
            log.warning(
                "itn conflicts with a final payment",
                reference=str(itn.reference),
                status=row.previous_status,
                payfast_status=itn.payment_status.value,
            )
        log.info("repeat itn for a final payment", reference=str(itn.reference), status=row.previous_status)
        return ItnResult(accepted=True, outcome="duplicate")
    log.info("itn applied", reference=str(itn.reference), status=status.value, outcome=outcome)
    return ItnResult(accepted=True, outcome=outcome)


def _audit_row(
    itn: Itn | None,
    payment_id: uuid.UUID | None,
    client_ip: str,
    outcome: str,
    reason: str | None,
    payload: dict[str, Any],
) -> Any:
    return pg_insert(itn_audit).values(
        id=uuid.uuid4(),
        reference=str(itn.reference) if itn else payload.get("m_payment_id"),
        payment_id=payment_id,
        client_ip=client_ip,
        outcome=outcome,
        reason=reason,
        payload=payload,
        created_at=utcnow(),
    )


async def _audit(
    uow_factory: Callable[[], UnitOfWork],
    itn: Itn | None,
    payment_id: uuid.UUID | None,
    client_ip: str,
    outcome: str,
    reason: str | None,
    payload: dict[str, Any],
) -> None:
    """Record a refused ITN in its own transaction, so the audit survives the refusal."""
    async with uow_factory() as uow:
        await uow.session.execute(_audit_row(itn, payment_id, client_ip, outcome, reason, payload))
        await uow.commit()


def _raw_payload(raw_body: bytes) -> dict[str, Any]:
    text = raw_body[:2048].decode("utf-8", errors="replace").replace("\x00", "")
    reference = None
    match = re.search(r"(?:^|&)m_payment_id=([^&]{1,64})", text)
    if match:
        reference = match.group(1)
    return {"raw": text, "m_payment_id": reference}


async def get_payment_status(*, session: AsyncSession, user_id: str, reference: str) -> PaymentView:
    """A top-up's status, for its owner only (anyone else gets NotFound)."""
    uid = parse_id(user_id, "user_id")
    ref = parse_id(reference, "reference")
    row = (
        await session.execute(select(payments).where(payments.c.reference == ref, payments.c.user_id == uid))
    ).first()
    if row is None:
        raise NotFound("payment not found")
    return PaymentView(
        reference=row.reference,
        status=row.status,
        payfast_status=row.payfast_status,
        amount_minor=row.amount_minor,
        currency=row.currency,
        wallet_credited=row.wallet_credited,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def count_pending_payments(*, session: AsyncSession) -> int:
    """How many top-ups still wait for PayFast's ITN."""
    return int(
        (
            await session.execute(
                select(func.count())
                .select_from(payments)
                .where(payments.c.status == PaymentStatus.PENDING.value)
            )
        ).scalar_one()
    )
