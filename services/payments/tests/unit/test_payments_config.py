"""Which PayFast account, URLs and switches the service runs with."""

from __future__ import annotations

import pytest

from yummi_common.settings import Settings
from yummi_payments.config import SANDBOX_MERCHANT_ID, SANDBOX_PASSPHRASE, payfast_config
from yummi_payments.domain.payment import topup_errors


def _settings(**values: object) -> Settings:
    """Settings independent of the runner's environment: every PayFast name given explicitly."""
    base: dict[str, object] = {
        "environment": "test",
        "payfast_merchant_id": None,
        "payfast_merchant_key": None,
        "payfast_passphrase": None,
        "payfast_mode": "sandbox",
        "payfast_notify_url": None,
        "payfast_return_url": None,
        "payfast_cancel_url": None,
        "payfast_validate_url": None,
        "payfast_valid_hosts": None,
        "payfast_process_url": None,
        "payfast_skip_server_confirmation": False,
    }
    return Settings.model_validate({**base, **values})


def test_dev_without_a_merchant_uses_payfasts_public_sandbox_account():
    config = payfast_config(_settings())
    assert config.merchant_id == SANDBOX_MERCHANT_ID
    assert config.passphrase == SANDBOX_PASSPHRASE
    assert config.process_url == "https://sandbox.payfast.co.za/eng/process"
    assert config.validate_url == "https://sandbox.payfast.co.za/eng/query/validate"
    assert config.notify_url and config.notify_url.endswith("/payments/payfast/itn")


def test_live_mode_points_at_payfasts_live_hosts():
    config = payfast_config(
        _settings(payfast_mode="live", payfast_merchant_id="123", payfast_merchant_key="k")
    )
    assert config.process_url == "https://www.payfast.co.za/eng/process"
    assert config.validate_url == "https://www.payfast.co.za/eng/query/validate"
    assert config.passphrase is None


def test_valid_hosts_default_to_payfasts_four_hosts_and_can_be_overridden():
    assert payfast_config(_settings()).valid_hosts == (
        "www.payfast.co.za",
        "sandbox.payfast.co.za",
        "w1w.payfast.co.za",
        "w2w.payfast.co.za",
    )
    custom = payfast_config(_settings(payfast_valid_hosts=" 127.0.0.1 , example.org "))
    assert custom.valid_hosts == ("127.0.0.1", "example.org")


@pytest.mark.parametrize(("environment", "honoured"), [("dev", True), ("test", False)])
def test_skipping_server_confirmation_is_honoured_only_in_dev(environment, honoured):
    config = payfast_config(_settings(environment=environment, payfast_skip_server_confirmation=True))
    assert config.skip_server_confirmation is honoured


def test_topup_limits_are_r5_to_the_configured_maximum_in_zar():
    assert topup_errors(amount_minor=500, currency="ZAR", max_minor=1_000_000) == []
    assert topup_errors(amount_minor=1_000_000, currency="ZAR", max_minor=1_000_000) == []

    def fields(amount: int, currency: str = "ZAR") -> list[str]:
        return [e["field"] for e in topup_errors(amount_minor=amount, currency=currency, max_minor=1_000_000)]

    assert fields(499) == ["amount_minor"]
    assert fields(1_000_001) == ["amount_minor"]
    assert fields(1_000, "USD") == ["currency"]
