"""The orders service's knobs, derived from the shared settings: lease length, attempts, sweep interval."""

from __future__ import annotations

from dataclasses import dataclass

from yummi_common.settings import Settings


@dataclass(frozen=True)
class OrdersConfig:
    """Lease length, how many expired leases an order survives, and how often the sweeper looks."""

    lease_seconds: int
    max_attempts: int
    sweep_interval_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> OrdersConfig:
        lease = int(settings.order_lease_seconds)
        attempts = int(settings.order_max_attempts)
        # Sweep at least twice per lease so an expired claim never waits a whole lease to return.
        sweep = min(float(settings.order_lease_sweep_seconds), lease / 2)
        if lease < 1 or attempts < 1 or sweep <= 0:
            raise ValueError(
                "ORDER_LEASE_SECONDS, ORDER_MAX_ATTEMPTS and ORDER_LEASE_SWEEP_SECONDS must be positive"
            )
        return cls(lease_seconds=lease, max_attempts=attempts, sweep_interval_seconds=sweep)
