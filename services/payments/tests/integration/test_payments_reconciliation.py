"""Reconciliation finds any wallet whose balance row disagrees with its ledger, and the command says so."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from yummi_common.service import Runtime
from yummi_common.settings import Settings
from yummi_payments.adapters.tables import wallets
from yummi_payments.entrypoints.cli import reconcile_command
from yummi_payments.service_layer.reconciliation import find_wallet_mismatches

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_a_balance_that_drifts_from_its_ledger_is_reported_and_fails_the_command(
    runtime: Runtime, settings: Settings, fund, capsys: pytest.CaptureFixture[str]
) -> None:
    user = uuid.uuid4()
    await fund(user, 5_000)
    async with runtime.engine.connect() as conn:
        assert user not in {m.user_id for m in await find_wallet_mismatches(conn=conn)}

    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(wallets).where(wallets.c.user_id == user).values(balance_minor=wallets.c.balance_minor + 1)
        )
    try:
        async with runtime.engine.connect() as conn:
            drifted = [m for m in await find_wallet_mismatches(conn=conn) if m.user_id == user]
        assert [(m.balance_minor, m.ledger_minor) for m in drifted] == [(5_001, 5_000)]
        assert await _run_in_thread(reconcile_command, settings) == 1
        assert f"MISMATCH wallet {user}: balance 5001 != ledger 5000" in capsys.readouterr().out
    finally:
        async with runtime.engine.begin() as conn:
            await conn.execute(
                update(wallets)
                .where(wallets.c.user_id == user)
                .values(balance_minor=wallets.c.balance_minor - 1)
            )
    async with runtime.engine.connect() as conn:
        assert user not in {m.user_id for m in await find_wallet_mismatches(conn=conn)}


async def _run_in_thread(command, settings: Settings) -> int:
    import asyncio

    # The command runs its own event loop, as it does from the console script.
    return await asyncio.to_thread(command, settings, [])
