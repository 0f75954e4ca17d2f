"""The console script: `serve` (default; migrates first when configured) and `migrate`."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from yummi_common import metrics, migrations, telemetry
from yummi_common.logging import configure_logging, get_logger
from yummi_common.settings import Settings, get_settings

log = get_logger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def migrate(settings: Settings) -> None:
    """Upgrade the identity schema (creating the database when missing)."""
    migrations.upgrade(settings=settings, service="gateway", script_location=MIGRATIONS_DIR)
    log.info("migrated", service="gateway", schema="identity")


def serve(settings: Settings) -> None:
    import uvicorn

    from yummi_gateway.app import create_app

    if settings.should_migrate_on_start:
        migrate(settings)
    uvicorn.run(
        create_app(settings),
        host="0.0.0.0",  # noqa: S104 - the gateway is the public edge
        port=settings.gateway_port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        lifespan="on",
        access_log=False,  # EdgeMiddleware writes one line per request
        log_config=None,
        proxy_headers=False,  # the client IP comes from our own TRUSTED_PROXIES rule
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yummi-gateway")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(service="gateway", json=settings.log_json, level=settings.log_level)
    if args.command == "serve":
        telemetry.init_telemetry("gateway", settings)  # before the app: FastAPI traces once a provider is set
        metrics.set_build_info("gateway", settings.version)
    if args.command == "migrate":
        migrate(settings)
    else:
        serve(settings)
    return 0
