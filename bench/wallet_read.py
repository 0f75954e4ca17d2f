"""Micro-benchmark: payments' wallet read (`get_wallet`: what `GetWallet` runs for `/v1/me` and the balance),
in one process against a real database, CPU time per read.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/wallet_read.py

It creates a fresh `yummi_bench_<hex>` database on the given server (dropped afterwards), migrates the
payments schema, writes a wallet with `--entries` ledger entries, then reads its first page `--reads` times on
one autocommit connection (as the service does) and prints the process's CPU and wall microseconds per read,
best of `--rounds`. No gRPC and no other process: the price of the read itself, statement handling included
(docs/performance.md, 2026-11-27).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import describe_speed, machine_speed, scratch_payments_database  # noqa: E402 - the bench folder is not a package


async def measure(reads: int, rounds: int, entries: int) -> tuple[float, float]:
    from sqlalchemy import text

    from yummi_common.db import autocommit_connection, create_engine
    from yummi_common.settings import get_settings
    from yummi_payments.service_layer.wallet import get_wallet

    engine = create_engine(get_settings(), "payments")
    user = uuid.uuid4()
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO payments.wallets (user_id, balance_minor) VALUES (:u, :b)"),
                {"u": user, "b": 100 * entries},
            )
            for n in range(entries):
                await conn.execute(
                    text(
                        "INSERT INTO payments.wallet_transactions (id, user_id, amount_minor,"
                        " balance_after_minor, entry_type, cause_key, note, created_at)"
                        " VALUES (:id, :u, 100, :after, 'credit', :cause, 'bench',"
                        " now() - make_interval(secs => :n))"
                    ),
                    {"id": uuid.uuid4(), "u": user, "after": 100 * (n + 1), "cause": f"bench:{n}", "n": n},
                )
        cpu_us = wall_us = float("inf")
        async with autocommit_connection(engine) as conn:
            view = await get_wallet(session=conn, user_id=str(user))
            if view.balance_minor != 100 * entries or len(view.transactions) != min(entries, 20):
                raise RuntimeError(f"the read did not see the wallet written: {view}")
            for _ in range(200):  # warm: pool, prepared statements, caches
                await get_wallet(session=conn, user_id=str(user))
            for _ in range(rounds):
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(reads):
                    await get_wallet(session=conn, user_id=str(user))
                cpu_us = min(cpu_us, (time.process_time() - cpu) / reads * 1e6)
                wall_us = min(wall_us, (time.perf_counter() - wall) / reads * 1e6)
        return cpu_us, wall_us
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--entries", type=int, default=30, help="ledger entries of the wallet read")
    args = parser.parse_args(argv)
    speed = machine_speed()
    with scratch_payments_database():
        cpu_us, wall_us = asyncio.run(measure(args.reads, args.rounds, args.entries))
    print(describe_speed(speed))
    print(
        f"get_wallet, first page of a wallet with {args.entries} entries, {args.reads} reads x {args.rounds}:"
        f" {cpu_us:.0f} CPU us per read, {wall_us:.0f} us wall (best round)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
