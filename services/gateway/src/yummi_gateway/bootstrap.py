"""Wires one gateway process: the runtime (engine, unit of work, outbox relay), gRPC clients, the verifier."""

from __future__ import annotations

from dataclasses import dataclass, field

from yummi_common.db import UnitOfWork
from yummi_common.logging import get_logger
from yummi_common.service import Runtime
from yummi_common.settings import Settings
from yummi_gateway.adapters.clerk import ClerkVerifier, JwksCache
from yummi_gateway.adapters.grpc_clients import ServiceClients
from yummi_gateway.adapters.tables import messaging, metadata
from yummi_gateway.config import GatewayConfig
from yummi_gateway.metrics import HttpMetrics
from yummi_gateway.service_layer.users import UserCache

log = get_logger(__name__)


@dataclass
class Gateway:
    """What route handlers reach through `request.app.state.gateway`."""

    settings: Settings
    config: GatewayConfig
    runtime: Runtime
    clients: ServiceClients
    verifier: ClerkVerifier | None
    metrics: HttpMetrics
    users: UserCache = field(default_factory=UserCache)

    def uow(self) -> UnitOfWork:
        return self.runtime.uow()

    async def close(self) -> None:
        await self.clients.close()
        if self.verifier is not None:
            await self.verifier.jwks.close()
        await self.runtime.close()


def build_verifier(settings: Settings) -> ClerkVerifier | None:
    """The Clerk verifier, or None when no issuer is configured (only dev tokens can work then)."""
    if not settings.clerk_issuer:
        return None
    issuer = settings.clerk_issuer.rstrip("/")
    jwks_url = settings.clerk_jwks_url or f"{issuer}/.well-known/jwks.json"
    return ClerkVerifier(
        issuer=settings.clerk_issuer,
        jwks=JwksCache(jwks_url),
        audience=settings.clerk_audience,
        authorized_parties=settings.authorized_parties,
    )


async def start_gateway(settings: Settings, config: GatewayConfig, metrics: HttpMetrics) -> Gateway:
    runtime = await Runtime.start(service="gateway", settings=settings, metadata=metadata, tables=messaging)
    gateway = Gateway(
        settings=settings,
        config=config,
        runtime=runtime,
        clients=ServiceClients.connect(settings),
        verifier=build_verifier(settings),
        metrics=metrics,
    )
    log.info("gateway started", environment=settings.environment, dev_auth=settings.dev_auth_allowed)
    return gateway
