"""The orders service's knobs: lease from ORDER_LEASE_SECONDS, dead-letter attempts default 5."""

from __future__ import annotations

import pytest

from yummi_common.settings import Settings
from yummi_orders.config import OrdersConfig


def test_defaults_are_five_attempts_and_a_sweep_every_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDER_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("ORDER_LEASE_SWEEP_SECONDS", raising=False)
    config = OrdersConfig.from_settings(Settings(order_lease_seconds=300))
    assert (config.lease_seconds, config.max_attempts, config.sweep_interval_seconds) == (300, 5, 5.0)


def test_attempts_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDER_MAX_ATTEMPTS", "3")
    assert OrdersConfig.from_settings(Settings()).max_attempts == 3


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_nonsense_attempts_refuse_to_start(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ORDER_MAX_ATTEMPTS", value)
    with pytest.raises(ValueError):
        OrdersConfig.from_settings(Settings())
