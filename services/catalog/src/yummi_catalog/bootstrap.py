"""Wires the catalog service together: its tables, migrations, servicer, background jobs and commands."""

from __future__ import annotations

from collections.abc import Awaitable

import grpc

from yummi_catalog.adapters.file_store import store_from_settings
from yummi_catalog.adapters.tables import messaging, metadata
from yummi_catalog.entrypoints import grpc_server
from yummi_catalog.entrypoints.cli import seed_command
from yummi_catalog.migrations import MIGRATIONS_DIR
from yummi_catalog.service_layer.retention import run_retention
from yummi_catalog.service_layer.uploads import run_indexer
from yummi_common.service import Runtime, ServiceSpec

SERVICE = "catalog"


def register(server: grpc.aio.Server, runtime: Runtime) -> list[str]:
    return grpc_server.register(server, runtime, store=store_from_settings(runtime.settings))


def background(runtime: Runtime) -> list[Awaitable[None]]:
    """The dataset indexer (large uploads are indexed off the request path) and the retention sweep (which
    also expires abandoned uploads)."""
    settings = runtime.settings
    store = store_from_settings(settings)
    return [
        run_indexer(
            uow_factory=runtime.uow,
            store=store,
            stop=runtime.stop_event,
            max_bytes=settings.dataset_upload_max_bytes,
            max_attempts=settings.catalog_index_max_attempts,
        ),
        run_retention(
            uow_factory=runtime.uow,
            engine=runtime.engine,
            store=store,
            keep=settings.catalog_retain_versions,
            stop=runtime.stop_event,
            upload_ttl_seconds=settings.dataset_upload_ttl_seconds,
        ),
    ]


SPEC = ServiceSpec(
    name=SERVICE,
    metadata=metadata,
    tables=messaging,
    migrations_dir=MIGRATIONS_DIR,
    register=register,
    background=background,
    commands={"seed": seed_command},
)
