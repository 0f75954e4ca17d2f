"""`yummi-catalog seed [--if-empty] PATH`: load a catalog.json as the live version (used by `make run`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from yummi_catalog.adapters import datasets as dataset_repo
from yummi_catalog.adapters.file_store import store_from_settings
from yummi_catalog.adapters.tables import messaging, metadata
from yummi_catalog.migrations import MIGRATIONS_DIR
from yummi_catalog.service_layer.imports import import_catalog
from yummi_common import migrations
from yummi_common.errors import YummiError
from yummi_common.service import Runtime
from yummi_common.settings import Settings


def seed_command(settings: Settings, argv: list[str]) -> int:
    """Import PATH as the live catalog (with --if-empty: only when none is live); print what happened."""
    parser = argparse.ArgumentParser(prog="yummi-catalog seed")
    parser.add_argument(
        "--if-empty", action="store_true", help="do nothing when a catalog version is already live"
    )
    parser.add_argument("path", type=Path, help='a catalog.json (array or {"items": [...]})')
    args = parser.parse_args(argv)
    if not args.path.is_file():
        print(f"seed: {args.path} does not exist", file=sys.stderr)
        return 2
    if settings.should_migrate_on_start:
        migrations.upgrade(settings=settings, service="catalog", script_location=MIGRATIONS_DIR)
    return asyncio.run(_seed(settings, args.path, if_empty=args.if_empty))


async def _seed(settings: Settings, path: Path, *, if_empty: bool) -> int:
    runtime = await Runtime.start(
        service="catalog", settings=settings, metadata=metadata, tables=messaging, with_messaging=False
    )
    try:
        if if_empty:
            async with runtime.uow() as uow:
                live = await dataset_repo.active_dataset(uow.session)
            if live is not None:
                print(
                    f"seed: catalog {live.version} ({live.item_count} items) is already live; nothing to do"
                )
                return 0
        content = await asyncio.to_thread(path.read_bytes)
        try:
            async with runtime.uow() as uow:
                result = await import_catalog(
                    uow=uow,
                    store=store_from_settings(settings),
                    content=content,
                    skip_invalid=True,
                    name=path.name,
                    source=f"seed:{path.name}",
                    # A local seed file is trusted more than a request body: allow what an upload allows.
                    max_bytes=settings.dataset_upload_max_bytes,
                )
        except YummiError as exc:
            print(f"seed: {path} was not imported: {exc.message}", file=sys.stderr)
            for error in exc.errors[:10]:
                print(f"  {error}", file=sys.stderr)
            return 1
        if result.already_imported:
            state = "live" if result.active else "kept, not live"
            print(f"seed: {path} was imported before as {result.version} ({state}); nothing changed")
        else:
            skipped = f", skipped {len(result.skipped)} invalid items" if result.skipped else ""
            print(f"seed: imported {result.item_count} items from {path} as {result.version} (live){skipped}")
        return 0
    finally:
        await runtime.close()
