"""How the ai service is put together: tables, migrations, keyring, OpenAI and catalog clients, servicer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path

import grpc

from yummi_ai.adapters.catalog import GrpcCatalog
from yummi_ai.adapters.openai_provider import OpenAIProvider
from yummi_ai.adapters.secrets import keyring_from_settings
from yummi_ai.adapters.tables import messaging, metadata
from yummi_ai.config import AiConfig
from yummi_ai.entrypoints import grpc_server
from yummi_ai.entrypoints.cli import rotate_kek_command
from yummi_ai.entrypoints.consumers import subscriptions
from yummi_ai.service_layer.metering import Meter
from yummi_common.service import Runtime, ServiceSpec

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def provider_for(config: AiConfig) -> OpenAIProvider:
    return OpenAIProvider(
        base_url=config.base_url,
        max_attempts=config.max_attempts,
        attempt_timeout=config.attempt_timeout_seconds,
    )


class AiApp:
    """What one ai process shares between its servicer and shutdown: the OpenAI pool, the catalog channel."""

    def __init__(self) -> None:
        self._provider: OpenAIProvider | None = None
        self._catalog: GrpcCatalog | None = None

    def register(self, server: grpc.aio.Server, runtime: Runtime) -> list[str]:
        settings = runtime.settings
        # The SDK's and HTTP client's debug lines carry prompts and headers; they never reach our logs.
        for noisy in ("openai", "httpx", "httpx2", "httpcore", "botocore"):
            logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
        config = AiConfig.from_settings(settings)
        self._provider = provider_for(config)
        self._catalog = GrpcCatalog(addr=settings.catalog_grpc_addr, deadline=settings.grpc_deadline_seconds)
        servicer = grpc_server.AiServicer(
            runtime=runtime,
            meter=Meter(uow_factory=runtime.uow, provider=self._provider, config=config),
            keyring=keyring_from_settings(settings),
            catalog=self._catalog,
        )
        return grpc_server.register(server, servicer)

    def background(self, runtime: Runtime) -> list[Awaitable[None]]:
        return [self._close_on_stop(runtime)]

    async def _close_on_stop(self, runtime: Runtime) -> None:
        try:
            await runtime.stop_event.wait()
        finally:
            if self._provider is not None:
                await asyncio.shield(self._provider.close())
            if self._catalog is not None:
                await asyncio.shield(self._catalog.close())


app = AiApp()
SPEC = ServiceSpec(
    name="ai",
    metadata=metadata,
    tables=messaging,
    migrations_dir=MIGRATIONS_DIR,
    register=app.register,
    subscriptions=subscriptions,
    background=app.background,
    commands={"rotate-kek": rotate_kek_command},
)
