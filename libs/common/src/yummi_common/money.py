"""Money rules: integer minor units (cents) and an ISO currency, parsed exactly from rand amounts."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CURRENCY = "ZAR"
MAX_MINOR = 10**12  # R10 billion: far above any grocery amount, far below int64


def rand_to_minor(value: object) -> int:
    """Parse a rand amount (int, float or numeric string, at most 2 decimals after rounding) into cents."""
    if isinstance(value, bool) or value is None:
        raise ValueError("price must be a number")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))  # repr keeps the shortest exact decimal the JSON held
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text[:1] in ("R", "r"):
            text = text[1:]
        if not text or len(text) > 32:
            raise ValueError("price is not a number")
        try:
            amount = Decimal(text)
        except InvalidOperation as exc:
            raise ValueError("price is not a number") from exc
    else:
        raise ValueError("price must be a number")
    if not amount.is_finite():
        raise ValueError("price must be finite")
    minor = int((amount * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))
    if minor < 0:
        raise ValueError("price must not be negative")
    if minor > MAX_MINOR:
        raise ValueError("price is too large")
    return minor


def format_minor(amount_minor: int) -> str:
    """Cents as a rand string with two decimals ("1234" → "12.34"), as PayFast wants it."""
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole}.{cents:02d}"
