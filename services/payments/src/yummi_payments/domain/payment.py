"""A PayFast top-up's life (pending until an ITN makes it complete, cancelled or failed) and its limits."""

from __future__ import annotations

from enum import StrEnum

from yummi_payments.domain.payfast import PayfastStatus

MIN_TOPUP_MINOR = 500  # R5.00: PayFast's own minimum is R5
CURRENCY = "ZAR"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    FAILED = "failed"


FINAL_STATUSES = frozenset({PaymentStatus.COMPLETE, PaymentStatus.CANCELLED, PaymentStatus.FAILED})

_AFTER_ITN = {
    PayfastStatus.COMPLETE: PaymentStatus.COMPLETE,
    PayfastStatus.CANCELLED: PaymentStatus.CANCELLED,
    PayfastStatus.FAILED: PaymentStatus.FAILED,
    PayfastStatus.PENDING: PaymentStatus.PENDING,
}


def status_after_itn(payfast_status: PayfastStatus) -> PaymentStatus:
    """The payment status a (verified) ITN with this PayFast status leads to."""
    return _AFTER_ITN[payfast_status]


def topup_errors(*, amount_minor: int, currency: str, max_minor: int) -> list[dict[str, str]]:
    """Validation errors of a top-up request (empty when it is acceptable)."""
    errors: list[dict[str, str]] = []
    if currency != CURRENCY:
        errors.append({"field": "currency", "message": "only ZAR is supported"})
    if amount_minor < MIN_TOPUP_MINOR:
        errors.append({"field": "amount_minor", "message": f"must be at least {MIN_TOPUP_MINOR} (R5.00)"})
    elif amount_minor > max_minor:
        errors.append({"field": "amount_minor", "message": f"must be at most {max_minor}"})
    return errors
