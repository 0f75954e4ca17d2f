"""Reconciliation: every wallet's cached balance must equal the sum of its ledger."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from yummi_payments.adapters.tables import wallet_transactions, wallets


@dataclass(frozen=True)
class WalletMismatch:
    user_id: uuid.UUID
    balance_minor: int
    ledger_minor: int


async def find_wallet_mismatches(*, conn: AsyncConnection) -> list[WalletMismatch]:
    """Wallets whose balance row disagrees with their ledger (an empty list when the books balance)."""
    ledger = (
        select(wallet_transactions.c.user_id, func.sum(wallet_transactions.c.amount_minor).label("total"))
        .group_by(wallet_transactions.c.user_id)
        .subquery()
    )
    rows = await conn.execute(
        select(wallets.c.user_id, wallets.c.balance_minor, func.coalesce(ledger.c.total, 0).label("ledger"))
        .select_from(wallets.outerjoin(ledger, ledger.c.user_id == wallets.c.user_id))
        .where(wallets.c.balance_minor != func.coalesce(ledger.c.total, 0))
        .order_by(wallets.c.user_id)
    )
    return [WalletMismatch(r.user_id, int(r.balance_minor), int(r.ledger)) for r in rows]
