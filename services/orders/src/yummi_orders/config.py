"""The orders service's own knobs: lease length, attempts before dead-lettering, sweep interval."""

from __future__ import annotations

import os
from dataclasses import dataclass

from yummi_common.settings import Settings
from yummi_orders.domain.orders import DEFAULT_MAX_ATTEMPTS

DEFAULT_SWEEP_INTERVAL_SECONDS = 5.0


def _setting(settings: Settings, name: str, default: float) -> float:
    # TODO(libs/common): add ORDER_MAX_ATTEMPTS / ORDER_LEASE_SWEEP_SECONDS to Settings; until then: env.
    value = getattr(settings, name.lower(), None)
    if value is None:
        value = os.environ.get(name.upper())
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name.upper()} must be a number, not {value!r}") from None


@dataclass(frozen=True)
class OrdersConfig:
    """Lease length, how many expired leases an order survives, and how often the sweeper looks."""

    lease_seconds: int
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    sweep_interval_seconds: float = DEFAULT_SWEEP_INTERVAL_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> OrdersConfig:
        lease = int(settings.order_lease_seconds)
        attempts = int(_setting(settings, "ORDER_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))
        sweep = _setting(
            settings, "ORDER_LEASE_SWEEP_SECONDS", min(DEFAULT_SWEEP_INTERVAL_SECONDS, lease / 2)
        )
        if lease < 1 or attempts < 1 or sweep <= 0:
            raise ValueError(
                "ORDER_LEASE_SECONDS, ORDER_MAX_ATTEMPTS and ORDER_LEASE_SWEEP_SECONDS must be positive"
            )
        return cls(lease_seconds=lease, max_attempts=attempts, sweep_interval_seconds=sweep)
