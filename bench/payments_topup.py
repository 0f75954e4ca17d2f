"""Micro-benchmark: payments' top-up calls in one process against a real database, CPU time per call:
starting a checkout (`initiate_payfast`) and handling its ITN (`handle_itn`: parse, look up, PayFast's
checks, apply).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/payments_topup.py

It creates a fresh `yummi_bench_<hex>` database on the given server (dropped afterwards) and migrates the
payments schema. Each round starts `--itns` checkouts, then handles a signed COMPLETE ITN from the PayFast
simulator for each, then the same ITN again (a duplicate). It prints the process's CPU and wall
microseconds per call, best of `--rounds`, for the three. PayFast's server confirmation (an HTTP call,
unchanged by how the ITN is applied) is off here, so the numbers are the service's own work: statements,
transactions and the event written for the credit. Every payment must end complete with one credit event
and two audit rows, or the run fails (docs/performance.md, 2026-11-27).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import describe_speed, machine_speed, scratch_payments_database  # noqa: E402 - the bench folder is not a package

AMOUNT = 5_000


async def measure(itns: int, rounds: int) -> dict[str, tuple[float, float]]:
    from sqlalchemy import func, select

    from yummi_common.service import Runtime
    from yummi_common.settings import get_settings
    from yummi_payments.adapters.payfast_client import PayfastItnVerifier
    from yummi_payments.adapters.tables import itn_audit, messaging, metadata, payments
    from yummi_payments.config import payfast_config
    from yummi_payments.service_layer.payfast import handle_itn, initiate_payfast
    from yummi_payments.simulator import PayfastSimulator

    settings = get_settings()
    config = replace(payfast_config(settings), valid_hosts=("127.0.0.1",), skip_server_confirmation=True)
    verifier = PayfastItnVerifier(config)
    simulator = PayfastSimulator()
    runtime = await Runtime.start(
        service="payments", settings=settings, metadata=metadata, tables=messaging, with_messaging=False
    )
    best = {kind: (float("inf"), float("inf")) for kind in ("initiate", "first", "duplicate")}
    try:

        async def start_checkouts(count: int) -> list[bytes]:
            """`count` top-ups started as the service does, and the ITN PayFast would send for each."""
            bodies = []
            for _ in range(count):
                async with runtime.uow() as uow:
                    checkout = await initiate_payfast(
                        uow=uow, config=config, user_id=str(uuid.uuid4()), amount_minor=AMOUNT, currency="ZAR"
                    )
                bodies.append(urlencode(simulator.build_itn(dict(checkout.fields))).encode())
            return bodies

        async def handle(body: bytes, expected: str) -> None:
            result = await handle_itn(
                uow_factory=runtime.uow,
                config=config,
                verifier=verifier,
                raw_body=body,
                client_ip="127.0.0.1",
            )
            if result.outcome != expected:
                raise RuntimeError(f"ITN outcome {result.outcome}, expected {expected}")

        for body in await start_checkouts(100):  # warm: pool, prepared statements, caches
            await handle(body, "credited")
        for _ in range(rounds):
            cpu, wall = time.process_time(), time.perf_counter()
            bodies = await start_checkouts(itns)
            cpu_us = (time.process_time() - cpu) / itns * 1e6
            wall_us = (time.perf_counter() - wall) / itns * 1e6
            best["initiate"] = (min(best["initiate"][0], cpu_us), min(best["initiate"][1], wall_us))
            for kind, expected in (("first", "credited"), ("duplicate", "duplicate")):
                cpu, wall = time.process_time(), time.perf_counter()
                for body in bodies:
                    await handle(body, expected)
                cpu_us = (time.process_time() - cpu) / itns * 1e6
                wall_us = (time.perf_counter() - wall) / itns * 1e6
                best[kind] = (min(best[kind][0], cpu_us), min(best[kind][1], wall_us))
        async with runtime.engine.connect() as conn:
            handled = 100 + itns * rounds
            complete = await conn.scalar(
                select(func.count()).select_from(payments).where(payments.c.status == "complete")
            )
            events = await conn.scalar(
                select(func.count())
                .select_from(messaging.outbox)
                .where(messaging.outbox.c.event_type == "payments.payment.credited")
            )
            audits = await conn.scalar(select(func.count()).select_from(itn_audit))
        if (complete, events, audits) != (handled, handled, 100 + 2 * itns * rounds):
            raise RuntimeError(f"complete {complete}, credit events {events}, audits {audits}: unexpected")
        return best
    finally:
        await runtime.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--itns", type=int, default=1000, help="top-ups per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    speed = machine_speed()
    os.environ.setdefault("ENVIRONMENT", "test")  # PayFast's public sandbox account signs the ITNs
    with scratch_payments_database():
        best = asyncio.run(measure(args.itns, args.rounds))
    print(describe_speed(speed))
    what = {
        "initiate": "initiate_payfast, a checkout started (signed fields, pending payment stored)",
        "first": "handle_itn, the first COMPLETE ITN of a top-up (credited)",
        "duplicate": "handle_itn, the same ITN again (duplicate)",
    }
    for kind, (cpu_us, wall_us) in best.items():
        per_call = f"{cpu_us:.0f} CPU us, {wall_us:.0f} us wall"
        print(f"{what[kind]}, {args.itns} x {args.rounds}: {per_call} (best round)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
