"""`yummi-ai rotate-kek`: re-wrap every stored data key under the current key-encryption key."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from yummi_ai.adapters.secrets import keyring_from_settings
from yummi_ai.adapters.tables import messaging, metadata
from yummi_ai.service_layer.rotation import count_by_kek, rotate_kek
from yummi_common.service import Runtime
from yummi_common.settings import Settings

USAGE = """Rotation without downtime:
  1. deploy with SECRETS_MASTER_KEY=<new> and SECRETS_MASTER_KEY_PREVIOUS=<old> (or a new KMS_KEY_ID, the old
     local key kept as SECRETS_MASTER_KEY): every process now wraps with the new key and reads both;
  2. run `yummi-ai rotate-kek` (safe to rerun; prints the rows per kek_id);
  3. when it reports only the new kek_id, deploy without SECRETS_MASTER_KEY_PREVIOUS."""


def rotate_kek_command(settings: Settings, argv: list[str]) -> int:
    """Exit 0 when every row is under the current KEK, 1 when some are not (see the report)."""
    parser = argparse.ArgumentParser(
        prog="yummi-ai rotate-kek", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=200, help="rows re-wrapped per transaction")
    parser.add_argument("--dry-run", action="store_true", help="only print how many rows each KEK wraps")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= 10_000:
        parser.error("--batch-size must be within 1..10000")
    return asyncio.run(_rotate(settings, batch_size=args.batch_size, dry_run=args.dry_run))


async def _rotate(settings: Settings, *, batch_size: int, dry_run: bool) -> int:
    keyring = keyring_from_settings(settings)
    runtime = await Runtime.start(
        service="ai", settings=settings, metadata=metadata, tables=messaging, with_messaging=False
    )
    try:
        if dry_run:
            counts = await count_by_kek(uow_factory=runtime.uow)
            _print({"target_kek_id": keyring.current.kek_id, "by_kek": counts})
            return 0
        report = await rotate_kek(uow_factory=runtime.uow, keyring=keyring, batch_size=batch_size)
    finally:
        await runtime.close()
    _print(
        {
            "target_kek_id": report.target_kek_id,
            "rewrapped": report.rewrapped,
            "unreadable": report.unreadable,
            "by_kek": report.by_kek,
            "complete": report.complete,
        }
    )
    return 0 if report.complete else 1


def _print(document: dict[str, object]) -> None:
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
