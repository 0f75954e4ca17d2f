"""The console script: `serve` (default; migrates first when configured) and `migrate`.

`serve` runs `GATEWAY_WORKERS` uvicorn processes on one port (default 1). With more than one, each worker
builds its own app through `worker_app` and `/metrics` adds up every worker (Prometheus multiprocess mode).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yummi_common import metrics, migrations, telemetry
from yummi_common.logging import configure_logging, get_logger
from yummi_common.settings import Settings, get_settings
from yummi_gateway.metrics import MULTIPROCESS_DIR_VARIABLE

if TYPE_CHECKING:
    from fastapi import FastAPI

log = get_logger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
GRACEFUL_SHUTDOWN_SECONDS = 10
WORKER_HEALTHCHECK_SECONDS = 60


def migrate(settings: Settings) -> None:
    """Upgrade the identity schema (creating the database when missing)."""
    migrations.upgrade(settings=settings, service="gateway", script_location=MIGRATIONS_DIR)
    log.info("migrated", service="gateway", schema="identity")


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What every gateway process runs with: uvloop and the httptools parser when installed (they are
    dependencies; the fallbacks are the stock loop and the pure-Python h11 parser)."""
    return {
        "host": "0.0.0.0",  # noqa: S104 - the gateway is the public edge
        "port": settings.gateway_port,
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "lifespan": "on",
        "access_log": False,  # EdgeMiddleware writes one line per request
        "log_config": None,
        "proxy_headers": False,  # the client IP comes from our own TRUSTED_PROXIES rule
        "server_header": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }


def serve(settings: Settings) -> None:
    import uvicorn

    if settings.should_migrate_on_start:
        migrate(settings)  # once, before any worker starts
    options = uvicorn_options(settings)
    if settings.gateway_workers == 1:
        from yummi_gateway.app import create_app

        metrics.set_build_info("gateway", settings.version)
        uvicorn.run(create_app(settings), **options)
        return
    # Before this process records any metric: the workers write theirs to files there; this one has none.
    created = _prepare_multiprocess_metrics()
    log.info("gateway workers", workers=settings.gateway_workers)
    try:
        # Each worker is a fresh (spawned) process that imports `worker_app` and runs its own lifespan;
        # SIGTERM to this process stops them all gracefully.
        uvicorn.run(
            "yummi_gateway.cli:worker_app",
            factory=True,
            workers=settings.gateway_workers,
            # A spawned worker answers the supervisor's pings only once it has imported everything; on a busy
            # machine that takes longer than uvicorn's 5 s, and each worker killed for it starts over again.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **options,
        )
    finally:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)


def _prepare_multiprocess_metrics() -> str | None:
    """Point the workers at one metrics directory, emptied first; returns it when created here (to remove)."""
    given = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # left by an earlier run: its counters are not ours
            stale.unlink()
        return None
    created = tempfile.mkdtemp(prefix="yummi-gateway-metrics-")
    os.environ[MULTIPROCESS_DIR_VARIABLE] = created  # inherited by the spawned workers
    return created


def worker_app() -> FastAPI:
    """The app of one worker process when `GATEWAY_WORKERS` > 1 (uvicorn's `--factory`)."""
    from yummi_gateway.app import create_app

    settings = get_settings()
    configure_logging(service="gateway", json=settings.log_json, level=settings.log_level, batch_in_loop=True)
    telemetry.init_telemetry("gateway", settings)
    metrics.set_build_info("gateway", settings.version)
    return create_app(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yummi-gateway")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(service="gateway", json=settings.log_json, level=settings.log_level, batch_in_loop=True)
    if args.command == "migrate":
        migrate(settings)
    else:
        telemetry.init_telemetry("gateway", settings)  # before the app: FastAPI traces once a provider is set
        serve(settings)
    return 0
