"""The wallet ledger rules: when a debit, refund, credit or chargeback may post and what it leaves behind."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from enum import StrEnum

CURRENCY = "ZAR"


class EntryType(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"
    REFUND = "refund"
    CHARGEBACK = "chargeback"
    ADJUSTMENT = "adjustment"


class DebitRejection(StrEnum):
    """Why a debit for an order was refused (the `reason` of `payments.wallet.debit_rejected`)."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    DEBITS_BLOCKED = "debits_blocked"
    INVALID_AMOUNT = "invalid_amount"
    UNSUPPORTED_CURRENCY = "unsupported_currency"


class OrderChargeStatus(StrEnum):
    """What the wallet did for one order; one row per order makes every saga step idempotent."""

    DEBITED = "debited"
    REJECTED = "rejected"
    REFUNDED = "refunded"
    CLOSED_BEFORE_DEBIT = "closed_before_debit"  # cancelled/failed arrived before (or instead of) the debit


def debit_cause(order_id: uuid.UUID) -> str:
    return f"order:{order_id}:debit"


def refund_cause(order_id: uuid.UUID) -> str:
    return f"order:{order_id}:refund"


def payment_cause(payment_id: uuid.UUID) -> str:
    return f"payment:{payment_id}"


def chargeback_cause(payment_id: uuid.UUID) -> str:
    return f"chargeback:{payment_id}"


@dataclass(frozen=True)
class WalletState:
    """A wallet as the rules see it: a balance in cents and whether debits are blocked."""

    balance_minor: int = 0
    debits_blocked: bool = False
    currency: str = CURRENCY


@dataclass(frozen=True)
class Posting:
    """One ledger entry to write and the wallet it leaves behind."""

    entry_type: EntryType
    amount_minor: int  # signed: money in is positive, money out negative
    wallet: WalletState


class LedgerError(ValueError):
    """A posting the rules refuse (a programming or data error, not a business outcome)."""


def decide_debit(wallet: WalletState, *, amount_minor: int, currency: str) -> Posting | DebitRejection:
    """Debit an order's total when the balance covers it and debits are not blocked; else say why not."""
    if currency != wallet.currency:
        return DebitRejection.UNSUPPORTED_CURRENCY
    if amount_minor <= 0:
        return DebitRejection.INVALID_AMOUNT
    if wallet.debits_blocked:
        return DebitRejection.DEBITS_BLOCKED
    if wallet.balance_minor < amount_minor:
        return DebitRejection.INSUFFICIENT_FUNDS
    return Posting(
        entry_type=EntryType.DEBIT,
        amount_minor=-amount_minor,
        wallet=replace(wallet, balance_minor=wallet.balance_minor - amount_minor),
    )


def decide_refund(
    wallet: WalletState, *, charge_status: OrderChargeStatus | None, debited_minor: int
) -> Posting | None:
    """Refund an order's debit exactly once, and only when a debit exists; otherwise nothing to do."""
    if charge_status is not OrderChargeStatus.DEBITED:
        return None
    if debited_minor <= 0:
        raise LedgerError("a debited order must carry a positive amount")
    return _money_in(wallet, EntryType.REFUND, debited_minor)


def decide_credit(wallet: WalletState, *, amount_minor: int) -> Posting:
    """Credit a completed top-up; bringing the balance back to zero or more lifts a debit block."""
    if amount_minor <= 0:
        raise LedgerError("a credit must be positive")
    return _money_in(wallet, EntryType.CREDIT, amount_minor)


def decide_chargeback(wallet: WalletState, *, amount_minor: int) -> Posting:
    """Take back a charged-back top-up even below zero, and block debits until money comes back in."""
    if amount_minor <= 0:
        raise LedgerError("a chargeback must be positive")
    return Posting(
        entry_type=EntryType.CHARGEBACK,
        amount_minor=-amount_minor,
        wallet=replace(wallet, balance_minor=wallet.balance_minor - amount_minor, debits_blocked=True),
    )


def _money_in(wallet: WalletState, entry_type: EntryType, amount_minor: int) -> Posting:
    balance = wallet.balance_minor + amount_minor
    blocked = wallet.debits_blocked and balance < 0
    return Posting(
        entry_type=entry_type,
        amount_minor=amount_minor,
        wallet=replace(wallet, balance_minor=balance, debits_blocked=blocked),
    )
