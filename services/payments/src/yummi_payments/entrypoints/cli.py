"""Operator commands of the payments service (`yummi-payments reconcile`)."""

from __future__ import annotations

import asyncio

from yummi_common.db import create_engine
from yummi_common.settings import Settings
from yummi_payments.service_layer.reconciliation import find_wallet_mismatches


def reconcile_command(settings: Settings, argv: list[str]) -> int:
    """Print every wallet whose balance differs from its ledger; exit 1 when there is one."""

    async def run() -> int:
        engine = create_engine(settings, "payments")
        try:
            async with engine.connect() as conn:
                mismatches = await find_wallet_mismatches(conn=conn)
        finally:
            await engine.dispose()
        for m in mismatches:
            print(f"MISMATCH wallet {m.user_id}: balance {m.balance_minor} != ledger {m.ledger_minor}")
        print(f"reconcile: {len(mismatches)} wallet(s) out of balance")
        return 1 if mismatches else 0

    return asyncio.run(run())
