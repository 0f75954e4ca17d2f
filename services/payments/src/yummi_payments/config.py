"""The PayFast account and limits the payments service runs with, resolved from the shared settings."""

from __future__ import annotations

from dataclasses import dataclass

from yummi_common.settings import Settings
from yummi_payments.domain import payfast

# PayFast's public sandbox test account, used in dev/test when no merchant is configured.
SANDBOX_MERCHANT_ID = "10000100"
SANDBOX_MERCHANT_KEY = "46f0cd694581a"
SANDBOX_PASSPHRASE = "jt7NOE43FZPn"  # noqa: S105 - public, published with the sandbox account


@dataclass(frozen=True)
class PayfastConfig:
    """Everything the PayFast use cases need, resolved once."""

    merchant_id: str
    merchant_key: str
    passphrase: str | None
    mode: str
    process_url: str
    validate_url: str
    notify_url: str | None
    return_url: str | None
    cancel_url: str | None
    valid_hosts: tuple[str, ...]
    max_amount_minor: int
    skip_server_confirmation: bool
    dns_timeout_seconds: float
    dns_cache_seconds: float
    validate_timeout_seconds: float
    item_name: str = "Yummi wallet top-up"


def payfast_config(settings: Settings) -> PayfastConfig:
    """Resolve the PayFast account: configured values, or the public sandbox account in dev/test."""
    local = settings.environment in ("dev", "test")
    merchant_id = settings.payfast_merchant_id
    merchant_key = settings.payfast_merchant_key
    passphrase = settings.payfast_passphrase
    if not merchant_id and local and settings.payfast_mode == "sandbox":
        merchant_id, merchant_key = SANDBOX_MERCHANT_ID, SANDBOX_MERCHANT_KEY
        # PAYFAST_PASSPHRASE="" (set but empty) signs without one, should the shared account have none.
        passphrase = SANDBOX_PASSPHRASE if passphrase is None else passphrase
    if not merchant_id or not merchant_key:
        raise ValueError("PAYFAST_MERCHANT_ID and PAYFAST_MERCHANT_KEY are required")
    gateway = f"http://localhost:{settings.gateway_port}"
    hosts = tuple(h.strip() for h in (settings.payfast_valid_hosts or "").split(",") if h.strip())
    return PayfastConfig(
        merchant_id=merchant_id.strip(),
        merchant_key=merchant_key.strip(),
        passphrase=(passphrase or "").strip() or None,
        mode=settings.payfast_mode,
        process_url=settings.payfast_process_url or payfast.process_url(settings.payfast_mode),
        validate_url=settings.payfast_validate_url or payfast.validate_url(settings.payfast_mode),
        notify_url=settings.payfast_notify_url or (f"{gateway}/payments/payfast/itn" if local else None),
        return_url=settings.payfast_return_url
        or (f"{gateway}/v1/payments/payfast/return-bridge" if local else None),
        cancel_url=settings.payfast_cancel_url
        or (f"{gateway}/v1/payments/payfast/cancel-bridge" if local else None),
        valid_hosts=hosts or payfast.DEFAULT_VALID_HOSTS,
        max_amount_minor=settings.payfast_max_amount_minor,
        skip_server_confirmation=settings.payfast_skip_server_confirmation and settings.environment == "dev",
        dns_timeout_seconds=settings.payfast_dns_timeout_seconds,
        dns_cache_seconds=settings.payfast_dns_cache_seconds,
        validate_timeout_seconds=settings.payfast_validate_timeout_seconds,
    )
