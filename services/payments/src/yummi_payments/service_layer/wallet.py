"""Wallet use cases: debit and refund orders, credit top-ups, charge back, read the wallet and its ledger."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    Text,
    and_,
    bindparam,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from yummi.events.v1 import events_pb2 as ev
from yummi_common.db import UnitOfWork, returned_rows
from yummi_common.errors import Conflict, InvalidArgument, NotFound
from yummi_common.logging import get_logger
from yummi_common.messaging.consumer import InboxClaim, inbox_claim_cte
from yummi_common.pagination import decode_cursor, encode_cursor
from yummi_common.timeutil import utcnow
from yummi_payments.adapters.tables import (
    chargebacks,
    messaging,
    order_charges,
    payments,
    wallet_transactions,
    wallets,
)
from yummi_payments.domain import ledger
from yummi_payments.domain.ledger import OrderChargeStatus, Posting, WalletState
from yummi_payments.domain.payment import PaymentStatus
from yummi_payments.service_layer.ids import parse_id

log = get_logger(__name__)

DEFAULT_PAGE = 20
MAX_PAGE = 100
MAX_ADMIN_ID = 200
MAX_REASON = 500


@dataclass(frozen=True)
class LedgerEntry:
    id: uuid.UUID
    amount_minor: int
    entry_type: str
    note: str
    created_at: datetime


@dataclass(frozen=True)
class WalletView:
    """A wallet as callers see it: balance, block, and one page of entries newest first."""

    balance_minor: int
    currency: str
    debits_blocked: bool
    transactions: list[LedgerEntry]
    next_cursor: str | None


# --- helpers shared by every posting --------------------------------------------------------------------


async def lock_wallet(session: AsyncSession, user_id: uuid.UUID) -> WalletState:
    """Lock the wallet's row for this transaction (serialises postings), creating the wallet when missing."""
    params = {"user_id": user_id}
    row = (await session.execute(LOCK_WALLET, params)).first()
    if row is None:  # the first posting: a concurrent creator makes this insert wait, then do nothing
        await session.execute(pg_insert(wallets).values(user_id=user_id).on_conflict_do_nothing())
        row = (await session.execute(LOCK_WALLET, params)).one()
    return WalletState(
        balance_minor=row.balance_minor, debits_blocked=row.debits_blocked, currency=row.currency
    )


async def post_entry(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    posting: Posting,
    cause_key: str,
    note: str,
    order_id: uuid.UUID | None = None,
    payment_id: uuid.UUID | None = None,
    credits_payment: bool = False,
) -> uuid.UUID | None:
    """Append one ledger entry and move the cached balance with it, in one statement; None when that cause
    already posted (nothing written). With `credits_payment` the entry's payment (`payment_id`) is marked
    `wallet_credited` in the same statement."""
    entry_id = uuid.uuid4()
    written = (
        await session.execute(
            _CREDITING_POSTING if credits_payment else _POSTING,
            {
                "entry_id": entry_id,
                "owner_id": user_id,
                "entry_amount": posting.amount_minor,
                "balance_after": posting.wallet.balance_minor,
                "blocked_after": posting.wallet.debits_blocked,
                "entry_kind": posting.entry_type.value,
                "cause": cause_key,
                "entry_order": order_id,
                "entry_payment": payment_id,
                "entry_note": note[:MAX_REASON],
                "posted_at": utcnow(),
            },
        )
    ).first()
    if written is None:
        log.info("ledger cause already posted", cause_key=cause_key)
        return None
    return entry_id


def _posting_statement(*, credits_payment: bool) -> Any:
    """The ledger entry (skipped when its cause already posted) and, only when it was written, the wallet's
    cached balance and block (and with `credits_payment` the payment's `wallet_credited`), in one statement;
    returns the entry's id. No bound name may be a column of `wallets` or `payments`: SQLAlchemy would add
    such a parameter to the UPDATE's SET."""
    now = bindparam("posted_at", type_=DateTime(timezone=True))
    amount = bindparam("entry_amount", type_=BigInteger)
    owner = bindparam("owner_id", type_=UUID(as_uuid=True))
    payment = bindparam("entry_payment", type_=UUID(as_uuid=True))
    entry = (
        pg_insert(wallet_transactions)
        .values(
            id=bindparam("entry_id", type_=UUID(as_uuid=True)),
            user_id=owner,
            amount_minor=amount,
            balance_after_minor=bindparam("balance_after", type_=BigInteger),
            entry_type=bindparam("entry_kind", type_=Text),
            cause_key=bindparam("cause", type_=Text),
            order_id=bindparam("entry_order", type_=UUID(as_uuid=True)),
            payment_id=payment,
            note=bindparam("entry_note", type_=Text),
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[wallet_transactions.c.cause_key])
        .returning(wallet_transactions.c.id)
        .cte("entry")
    )
    moved = (
        update(wallets)
        .where(wallets.c.user_id == owner, returned_rows(entry))
        .values(
            balance_minor=wallets.c.balance_minor + amount,
            debits_blocked=bindparam("blocked_after", type_=Boolean),
            updated_at=now,
        )
        .returning(wallets.c.user_id)
        .cte("moved")
    )
    statement = select(entry.c.id).add_cte(moved)
    if credits_payment:
        flagged = (
            update(payments)
            .where(payments.c.id == payment, returned_rows(entry))
            .values(wallet_credited=True, updated_at=now)
            .returning(payments.c.id)
            .cte("flagged")
        )
        statement = statement.add_cte(flagged)
    return statement


# Built once: SQLAlchemy reuses their cache keys and compiled forms on every call.
LOCK_WALLET = (
    select(wallets.c.balance_minor, wallets.c.debits_blocked, wallets.c.currency)
    .where(wallets.c.user_id == bindparam("user_id"))
    .with_for_update()
)
_POSTING = _posting_statement(credits_payment=False)
_CREDITING_POSTING = _posting_statement(credits_payment=True)


# --- the order saga ------------------------------------------------------------------------------------


def _charge_row(
    *,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    amount_minor: int,
    currency: str,
    status: OrderChargeStatus,
    **extra: Any,
) -> Any:
    """The INSERT of an order's one charge row (what the wallet decided about that order)."""
    now = utcnow()
    return pg_insert(order_charges).values(
        order_id=order_id,
        user_id=user_id,
        amount_minor=amount_minor,
        currency=currency,
        status=status.value,
        created_at=now,
        updated_at=now,
        **extra,
    )


async def refund_for_order(
    *, uow: UnitOfWork, order_id: uuid.UUID, user_id: uuid.UUID, amount_minor: int, currency: str, why: str
) -> bool:
    """Refund a cancelled or failed order's debit once; with no debit yet, close it so none ever posts."""
    session = uow.session
    known = (
        await session.execute(select(order_charges.c.user_id).where(order_charges.c.order_id == order_id))
    ).first()
    owner = known.user_id if known is not None else user_id
    # Same lock order as the debit (wallet, then charge): a racing debit and refund serialise here.
    wallet = await lock_wallet(session, owner)
    charge = (
        await session.execute(
            select(order_charges).where(order_charges.c.order_id == order_id).with_for_update()
        )
    ).first()
    now = utcnow()
    if charge is None:
        await session.execute(
            _charge_row(
                order_id=order_id,
                user_id=owner,
                amount_minor=amount_minor,
                currency=currency or ledger.CURRENCY,
                status=OrderChargeStatus.CLOSED_BEFORE_DEBIT,
                reason=why,
            ).on_conflict_do_nothing()
        )
        log.info("order closed before any debit", order_id=str(order_id), why=why)
        return False
    posting = ledger.decide_refund(
        wallet, charge_status=OrderChargeStatus(charge.status), debited_minor=charge.amount_minor
    )
    if posting is None:
        log.info("nothing to refund", order_id=str(order_id), status=charge.status)
        return False
    entry_id = await post_entry(
        session,
        user_id=owner,
        posting=posting,
        cause_key=ledger.refund_cause(order_id),
        note=f"refund of order {order_id} ({why})",
        order_id=order_id,
    )
    if entry_id is None:
        return False
    await session.execute(
        update(order_charges)
        .where(order_charges.c.order_id == order_id)
        .values(
            status=OrderChargeStatus.REFUNDED.value,
            refund_transaction_id=entry_id,
            reason=why,
            updated_at=now,
        )
    )
    uow.emit(
        "payments.wallet.refunded",
        ev.WalletRefunded(
            order_id=str(order_id),
            user_id=str(owner),
            amount_minor=charge.amount_minor,
            currency=charge.currency,
            transaction_id=str(entry_id),
        ),
    )
    log.info("order refunded", order_id=str(order_id), amount_minor=charge.amount_minor, why=why)
    return True


# --- top-ups and chargebacks ------------------------------------------------------------------------------


# What a credit reads of its payment.
_CREDIT_SOURCE = (payments.c.user_id, payments.c.amount_minor, payments.c.status, payments.c.reference)


def _credit_claim_statement() -> Any:
    """Claim a `payments.payment.credited` event in the inbox and read its payment, in one statement: one
    row, `claimed` false when the event was applied before, the payment's columns NULL when it is missing."""
    claimed = inbox_claim_cte(messaging.inbox)
    payment = (
        select(*_CREDIT_SOURCE)
        .where(payments.c.id == bindparam("payment_id", type_=UUID(as_uuid=True)))
        .subquery("payment")
    )
    return select(
        returned_rows(claimed).label("claimed"),
        payment.c.user_id,
        payment.c.amount_minor,
        payment.c.status,
        payment.c.reference,
    ).select_from(select(literal_column("1").label("one")).subquery("one").outerjoin(payment, true()))


# Built once: SQLAlchemy reuses its cache key and compiled form on every credit.
CREDIT_CLAIM = _credit_claim_statement()


async def credit_payment(*, uow: UnitOfWork, payment_id: uuid.UUID) -> bool:
    """Credit a completed top-up to its owner's wallet exactly once; False when it was already credited."""
    payment = (await uow.session.execute(select(*_CREDIT_SOURCE).where(payments.c.id == payment_id))).first()
    return await _credit(uow, payment_id, payment)


async def credit_payment_once(*, uow: UnitOfWork, payment_id: uuid.UUID, claim: InboxClaim) -> bool:
    """`credit_payment` for the `payments.payment.credited` consumer, claiming the event in the inbox with
    its first statement; False when the event was applied before (nothing done). The caller commits."""
    row = (await uow.session.execute(CREDIT_CLAIM, {"payment_id": payment_id, **claim.params()})).one()
    if not row.claimed:
        return False
    await _credit(uow, payment_id, row if row.user_id is not None else None)
    return True


async def _credit(uow: UnitOfWork, payment_id: uuid.UUID, payment: Any) -> bool:
    """Lock the owner's wallet, decide the credit, write it (entry, balance, payment) in one statement."""
    if payment is None:
        raise LookupError(f"payment {payment_id} does not exist")
    if payment.status != PaymentStatus.COMPLETE:
        raise ValueError(f"payment {payment_id} is {payment.status}, not complete")
    wallet = await lock_wallet(uow.session, payment.user_id)
    posting = ledger.decide_credit(wallet, amount_minor=payment.amount_minor)
    entry_id = await post_entry(
        uow.session,
        user_id=payment.user_id,
        posting=posting,
        cause_key=ledger.payment_cause(payment_id),
        note=f"PayFast top-up {payment.reference}",
        payment_id=payment_id,
        credits_payment=True,
    )
    if entry_id is None:
        return False
    log.info("wallet credited", payment_id=str(payment_id), amount_minor=payment.amount_minor)
    return True


async def charge_back(*, uow: UnitOfWork, reference: str, admin_id: str, reason: str) -> uuid.UUID:
    """Reverse a complete top-up: debit even below zero, block debits, audit it; returns the owner's id."""
    ref = parse_id(reference, "reference")
    admin_id, reason = admin_id.strip(), reason.strip()
    errors = []
    if not admin_id or len(admin_id) > MAX_ADMIN_ID:
        errors.append({"field": "admin_id", "message": f"required, at most {MAX_ADMIN_ID} characters"})
    if not reason or len(reason) > MAX_REASON:
        errors.append({"field": "reason", "message": f"required, at most {MAX_REASON} characters"})
    if errors:
        raise InvalidArgument("chargeback request is not valid", errors=errors)
    session = uow.session
    found = (await session.execute(select(payments.c.user_id).where(payments.c.reference == ref))).first()
    if found is None:
        raise NotFound("payment not found")
    # Lock order wallet → payment, the same as the credit consumer, so the two never deadlock.
    wallet = await lock_wallet(session, found.user_id)
    payment = (
        await session.execute(select(payments).where(payments.c.reference == ref).with_for_update())
    ).one()
    if payment.status != PaymentStatus.COMPLETE:
        raise Conflict(f"only a complete payment can be charged back (this one is {payment.status})")
    already = (
        await session.execute(select(chargebacks.c.id).where(chargebacks.c.payment_id == payment.id))
    ).first()
    if already is not None:
        raise Conflict("this payment was already charged back")
    posting = ledger.decide_chargeback(wallet, amount_minor=payment.amount_minor)
    entry_id = await post_entry(
        session,
        user_id=payment.user_id,
        posting=posting,
        cause_key=ledger.chargeback_cause(payment.id),
        note=f"chargeback of PayFast top-up {ref}",
        payment_id=payment.id,
    )
    if entry_id is None:
        raise Conflict("this payment was already charged back")
    await session.execute(
        pg_insert(chargebacks).values(
            id=uuid.uuid4(),
            payment_id=payment.id,
            reference=ref,
            user_id=payment.user_id,
            admin_id=admin_id,
            reason=reason,
            amount_minor=payment.amount_minor,
            transaction_id=entry_id,
            created_at=utcnow(),
        )
    )
    log.warning(
        "payment charged back", reference=str(ref), admin_id=admin_id, amount_minor=payment.amount_minor
    )
    owner: uuid.UUID = payment.user_id
    return owner


# --- reading -------------------------------------------------------------------------------------------


def _wallet_page_statement(*, after_cursor: bool) -> Any:
    """The wallet row (NULLs when there is none) beside a page of its ledger, newest first, in one statement
    (`user_id`, `page_limit`; with `after_cursor`, only entries before `after_created_at`, `after_id`)."""
    ledger_page = select(
        wallet_transactions.c.id,
        wallet_transactions.c.amount_minor,
        wallet_transactions.c.entry_type,
        wallet_transactions.c.note,
        wallet_transactions.c.created_at,
    ).where(wallet_transactions.c.user_id == bindparam("user_id"))
    if after_cursor:
        created_at, entry_id = wallet_transactions.c.created_at, wallet_transactions.c.id
        after_created_at = bindparam("after_created_at", type_=created_at.type)
        after_id = bindparam("after_id", type_=entry_id.type)
        ledger_page = ledger_page.where(
            or_(created_at < after_created_at, and_(created_at == after_created_at, entry_id < after_id))
        )
    entries_q = (
        ledger_page.order_by(wallet_transactions.c.created_at.desc(), wallet_transactions.c.id.desc())
        .limit(bindparam("page_limit", type_=Integer))
        .lateral("entries")
    )
    wallet_q = (
        select(wallets.c.balance_minor, wallets.c.debits_blocked, wallets.c.currency)
        .where(wallets.c.user_id == bindparam("user_id"))
        .subquery("wallet")
    )
    one = select(literal(1).label("one")).subquery("one")
    return (
        select(wallet_q, entries_q)
        .select_from(one.outerjoin(wallet_q, true()).outerjoin(entries_q, true()))
        .order_by(entries_q.c.created_at.desc(), entries_q.c.id.desc())
    )


# Built once: every read reuses the statement's cache key and compiled form (building it took a few percent
# of the process's CPU in the load mix, where /v1/me and the balance read it).
_WALLET_PAGE = _wallet_page_statement(after_cursor=False)
_WALLET_PAGE_AFTER = _wallet_page_statement(after_cursor=True)


async def get_wallet(
    *, session: AsyncSession | AsyncConnection, user_id: str, limit: int = 0, cursor: str = ""
) -> WalletView:
    """The caller's balance, debit block and ledger newest first (a user with no wallet has R0.00).

    One statement (the wallet row beside a page of its ledger), so balance and entries come from one
    snapshot even on a connection outside a transaction.
    """
    uid = parse_id(user_id, "user_id")
    if limit < 0 or limit > MAX_PAGE:
        raise InvalidArgument(
            "limit is out of range", errors=[{"field": "limit", "message": f"1..{MAX_PAGE}"}]
        )
    page = limit or DEFAULT_PAGE
    params: dict[str, Any] = {"user_id": uid, "page_limit": page + 1}
    if cursor:
        params["after_created_at"], params["after_id"] = _decode_ledger_cursor(cursor)
    rows = (await session.execute(_WALLET_PAGE_AFTER if cursor else _WALLET_PAGE, params)).all()
    row = rows[0]  # always one row at least (the wallet's columns NULL when there is none)
    found = [r for r in rows if r.id is not None]
    entries = [LedgerEntry(r.id, r.amount_minor, r.entry_type, r.note, r.created_at) for r in found[:page]]
    next_cursor = None
    if len(found) > page:
        last = entries[-1]
        next_cursor = encode_cursor([last.created_at.isoformat(), str(last.id)])
    has_wallet = row.balance_minor is not None
    return WalletView(
        balance_minor=row.balance_minor if has_wallet else 0,
        currency=row.currency if has_wallet else ledger.CURRENCY,
        debits_blocked=row.debits_blocked if has_wallet else False,
        transactions=entries,
        next_cursor=next_cursor,
    )


def _decode_ledger_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    created_at, entry_id = decode_cursor(cursor, arity=2)
    malformed = InvalidArgument("cursor is not valid", errors=[{"field": "cursor", "message": "malformed"}])
    try:
        when, entry = datetime.fromisoformat(str(created_at)), uuid.UUID(str(entry_id))
    except ValueError as exc:
        raise malformed from exc
    if when.tzinfo is None:
        raise malformed
    return when, entry
