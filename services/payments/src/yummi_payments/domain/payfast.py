"""PayFast's rules with no I/O: checkout fields in documented order, MD5 signatures, ITN checks."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

from yummi_common.money import format_minor

# The order of PayFast's "checkout form" attributes table: the signature string lists fields in this order.
CHECKOUT_FIELD_ORDER: tuple[str, ...] = (
    "merchant_id",
    "merchant_key",
    "return_url",
    "cancel_url",
    "notify_url",
    "notify_method",
    "name_first",
    "name_last",
    "email_address",
    "cell_number",
    "m_payment_id",
    "amount",
    "item_name",
    "item_description",
    "custom_int1",
    "custom_int2",
    "custom_int3",
    "custom_int4",
    "custom_int5",
    "custom_str1",
    "custom_str2",
    "custom_str3",
    "custom_str4",
    "custom_str5",
    "email_confirmation",
    "confirmation_address",
    "currency",
    "payment_method",
    "subscription_type",
    "billing_date",
    "recurring_amount",
    "frequency",
    "cycles",
    "subscription_notify_email",
    "subscription_notify_webhook",
    "subscription_notify_buyer",
)
_FIELD_RANK = {name: i for i, name in enumerate(CHECKOUT_FIELD_ORDER)}

SANDBOX_HOST = "sandbox.payfast.co.za"
LIVE_HOST = "www.payfast.co.za"
DEFAULT_VALID_HOSTS: tuple[str, ...] = (LIVE_HOST, SANDBOX_HOST, "w1w.payfast.co.za", "w2w.payfast.co.za")
MAX_ITN_BYTES = 16 * 1024
MAX_FIELD_CHARS = 1024
_AMOUNT = re.compile(r"^-?\d{1,12}(\.\d{1,2})?$")


def process_url(mode: str) -> str:
    """Where the app posts the checkout form for this mode."""
    return f"https://{LIVE_HOST if mode == 'live' else SANDBOX_HOST}/eng/process"


def validate_url(mode: str) -> str:
    """PayFast's server-confirmation endpoint for this mode."""
    return f"https://{LIVE_HOST if mode == 'live' else SANDBOX_HOST}/eng/query/validate"


def encode_value(value: str) -> str:
    """URL-encode a value like PHP's `urlencode` (PayFast's reference): spaces as '+', upper-case escapes."""
    # quote_plus already upper-cases escapes; PHP also escapes '~', which Python keeps as is.
    return quote_plus(value, safe="").replace("~", "%7E")


def param_string(pairs: Iterable[tuple[str, str]]) -> str:
    """`key=urlencode(value)&...` in the given order (what is signed and what is posted back to validate)."""
    return "&".join(f"{key}={encode_value(value)}" for key, value in pairs)


def sign(pairs: Iterable[tuple[str, str]], passphrase: str | None) -> str:
    """The MD5 signature of the pairs in order, with `&passphrase=` appended when one is set."""
    text = param_string(pairs)
    if passphrase and passphrase.strip():
        text += f"&passphrase={encode_value(passphrase.strip())}"
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def checkout_pairs(fields: Mapping[str, str]) -> list[tuple[str, str]]:
    """The non-empty checkout fields, stripped, in PayFast's documented order (unknown names refused)."""
    unknown = sorted(set(fields) - set(_FIELD_RANK))
    if unknown:
        raise ValueError(f"not a PayFast checkout field: {', '.join(unknown)}")
    pairs = [(name, str(value).strip()) for name, value in fields.items()]
    return sorted(((k, v) for k, v in pairs if v != ""), key=lambda kv: _FIELD_RANK[kv[0]])


def signed_checkout_fields(fields: Mapping[str, str], passphrase: str | None) -> list[tuple[str, str]]:
    """The checkout form to post to PayFast: ordered non-empty fields, then `signature`."""
    pairs = checkout_pairs(fields)
    return [*pairs, ("signature", sign(pairs, passphrase))]


# --- ITN -------------------------------------------------------------------------------------------------


class ItnError(ValueError):
    """An ITN that fails a check; `reason` is a short code stored in the audit and returned to the caller."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class PayfastStatus(StrEnum):
    COMPLETE = "COMPLETE"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    PENDING = "PENDING"


@dataclass(frozen=True)
class Itn:
    """A parsed ITN: the posted pairs in posted order plus the fields the checks use."""

    pairs: tuple[tuple[str, str], ...]
    signature: str
    reference: uuid.UUID
    merchant_id: str
    payment_status: PayfastStatus
    amount_gross_minor: int
    pf_payment_id: str

    @property
    def signed_pairs(self) -> list[tuple[str, str]]:
        """Every posted pair but the signature, in posted order (empty values too: PayFast signs them)."""
        return [(k, v) for k, v in self.pairs if k != "signature"]

    def as_dict(self) -> dict[str, str]:
        return dict(self.pairs)


def parse_itn(raw_body: bytes) -> Itn:
    """Parse a form-encoded ITN body keeping field order; anything malformed is an ItnError."""
    if not raw_body:
        raise ItnError("malformed", "empty ITN body")
    if len(raw_body) > MAX_ITN_BYTES:
        raise ItnError("malformed", "ITN body is too large")
    try:
        text = raw_body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ItnError("malformed", "ITN body is not a valid form") from exc
    names = [k for k, _ in pairs]
    if len(names) != len(set(names)):
        raise ItnError("malformed", "ITN repeats a field")
    if any(len(k) > 64 or len(v) > MAX_FIELD_CHARS for k, v in pairs):
        raise ItnError("malformed", "ITN field is too long")
    if any("\x00" in k or "\x00" in v for k, v in pairs):
        raise ItnError("malformed", "ITN holds a NUL character")
    data = dict(pairs)
    for required in ("m_payment_id", "payment_status", "amount_gross", "merchant_id", "signature"):
        if not data.get(required):
            raise ItnError("malformed", f"ITN lacks {required}")
    try:
        reference = uuid.UUID(data["m_payment_id"])
    except ValueError as exc:
        raise ItnError("unknown_payment", "m_payment_id is not one of ours") from exc
    try:
        status = PayfastStatus(data["payment_status"].strip().upper())
    except ValueError as exc:
        raise ItnError("malformed", "unknown payment_status") from exc
    return Itn(
        pairs=tuple(pairs),
        signature=data["signature"].strip().lower(),
        reference=reference,
        merchant_id=data["merchant_id"].strip(),
        payment_status=status,
        amount_gross_minor=parse_amount(data["amount_gross"]),
        pf_payment_id=data.get("pf_payment_id", "").strip()[:64],
    )


def parse_amount(value: str) -> int:
    """A PayFast rand amount ("123.45") as cents; anything else is an ItnError."""
    text = value.strip()
    if not _AMOUNT.match(text):
        raise ItnError("malformed", "amount_gross is not an amount")
    try:
        return int((Decimal(text) * 100).to_integral_exact())
    except InvalidOperation as exc:  # pragma: no cover - the pattern already rules this out
        raise ItnError("malformed", "amount_gross is not an amount") from exc


def format_amount(amount_minor: int) -> str:
    """Cents as PayFast's amount string ("12345" → "123.45")."""
    return str(format_minor(amount_minor))


def check_signature(itn: Itn, passphrase: str | None) -> None:
    """Check 1: the signature covers every posted field in posted order (plus our passphrase)."""
    expected = sign(itn.signed_pairs, passphrase)
    if not _constant_time_equal(expected, itn.signature):
        raise ItnError("bad_signature", "signature does not match")


def check_merchant(itn: Itn, merchant_id: str) -> None:
    """The ITN must be for our merchant account."""
    if itn.merchant_id != merchant_id:
        raise ItnError("wrong_merchant", "merchant_id is not ours")


def check_amount(itn: Itn, expected_minor: int) -> None:
    """Check 3: the gross amount equals what we asked for."""
    if itn.amount_gross_minor != expected_minor:
        raise ItnError("amount_mismatch", "amount_gross does not match the payment")


def _constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def validation_body(itn: Itn) -> str:
    """What check 4 posts back to PayFast: the posted fields (without the signature) as a param string."""
    return param_string(itn.signed_pairs)


def with_query(url: str, **params: str) -> str:
    """`url` with query parameters added (the return/cancel URLs carry the reference back to the app)."""
    parts = urlsplit(url)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
