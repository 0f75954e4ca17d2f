"""Where a runner places orders: the `Retailer` interface, the dry-run retailer, and loading another by name.

A real browser worker plugs in as any class with `async def place(order) -> Placement` that raises
`PlacementFailed` when the retailer refuses the order for good; `--retailer-adapter module:Class` loads it.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Placement:
    """The order as the retailer took it: its reference there (shown to the shopper as retailer_reference)."""

    retailer_reference: str


class PlacementFailed(Exception):
    """The retailer refused the order for good (out of stock, card declined...): the runner acks `failed`."""

    def __init__(self, notes: str) -> None:
        super().__init__(notes)
        self.notes = notes


class Retailer(Protocol):
    async def place(self, order: dict[str, Any]) -> Placement:
        """Place the claimed order (the gateway's Order JSON); PlacementFailed when the retailer refuses."""
        ...


class DryRunRetailer:
    """Pretends to place every order (after `delay` seconds) and answers a `DRY-<short id>` reference."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay

    async def place(self, order: dict[str, Any]) -> Placement:
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        short = str(order["id"]).replace("-", "")[:8].upper()
        return Placement(retailer_reference=f"DRY-{short}")


def load_retailer(spec: str, *, dry_run_delay: float = 0.0) -> Retailer:
    """`dry-run` (the default), or `package.module:ClassName` built with no arguments."""
    if spec in ("", "dry-run"):
        return DryRunRetailer(delay=dry_run_delay)
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"retailer adapter must be 'dry-run' or 'module:Class', not {spec!r}")
    factory = getattr(importlib.import_module(module_name), class_name)
    retailer: Retailer = factory()
    return retailer
