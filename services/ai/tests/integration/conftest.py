"""Fixtures for the ai integration tests: a migrated database, a runtime, a fake OpenAI over real HTTP, a
fake catalog over real gRPC, and AiService servers started as `yummi-ai serve` starts them (chosen config)."""

from __future__ import annotations

import base64
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
import pytest
import pytest_asyncio

from yummi.ai.v1 import ai_pb2_grpc
from yummi.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from yummi_ai.adapters.openai_provider import OpenAIProvider
from yummi_ai.adapters.secrets import Keyring, LocalKek
from yummi_ai.adapters.tables import messaging, metadata
from yummi_ai.bootstrap import MIGRATIONS_DIR
from yummi_ai.config import AiConfig
from yummi_ai.entrypoints.grpc_server import AiServicer, register
from yummi_ai.fake_openai import FakeOpenAI
from yummi_ai.service_layer.metering import Meter
from yummi_common import migrations
from yummi_common.errors import InvalidArgument, NotFound
from yummi_common.grpc_client import make_channel
from yummi_common.grpc_server import bound_port, start_grpc_server
from yummi_common.service import Runtime
from yummi_common.settings import Settings

# Defaults for running this folder alone; the repo's pytest plugin sets these first when it runs.
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/yummi_ai_dev")
os.environ.setdefault("NATS_URL", "nats://127.0.0.1:4222")
os.environ.setdefault("NATS_STREAM", "DEV_AI")
os.environ.setdefault("NATS_SUBJECT_PREFIX", "devai.events")
os.environ.setdefault("ENVIRONMENT", "test")

SERVER_KEY = "sk-server-test-0000-SRVR"


def catalog_product(n: int, title: str, *, available: bool = True) -> catalog_pb2.Product:
    return catalog_pb2.Product(
        id=str(uuid.UUID(int=n)),
        retailer="woolworths",
        product_id=f"WW{n:04d}",
        title=title,
        price_minor=1000 + n,
        currency="ZAR",
        category="pantry",
        available=available,
        attributes_json="{}",
        dataset_version="v1",
    )


PRODUCTS = [
    catalog_product(1, "Spaghetti 500 g"),
    catalog_product(2, "Beef Mince 500 g"),
    catalog_product(3, "Tomato Passata 700 g", available=False),
    catalog_product(4, "Parmesan Cheese 200 g"),
]


class FakeCatalog(catalog_pb2_grpc.CatalogServiceServicer):
    """ListProducts (text search) and BatchGetProducts over a fixed set, as the catalog answers them."""

    def __init__(self) -> None:
        self.searches: list[catalog_pb2.ListProductsRequest] = []

    async def ListProducts(self, request: Any, context: Any) -> catalog_pb2.ListProductsResponse:
        self.searches.append(request)
        if not 1 <= request.limit <= 500:
            raise InvalidArgument("limit must be within 1..500")
        words = request.q.lower().split()
        items = [
            p
            for p in PRODUCTS
            if all(w in p.title.lower() for w in words)
            and (not request.HasField("available") or p.available == request.available)
        ]
        return catalog_pb2.ListProductsResponse(items=items[: request.limit], dataset_version="v1")

    async def BatchGetProducts(self, request: Any, context: Any) -> catalog_pb2.BatchGetProductsResponse:
        found = {}
        missing = []
        for ref in request.ids:
            match = next((p for p in PRODUCTS if ref in (p.id, p.product_id)), None)
            if match is None:
                missing.append(ref)
            else:
                found[match.id] = match
        return catalog_pb2.BatchGetProductsResponse(
            products=list(found.values()), missing=missing, dataset_version="v1"
        )

    async def GetProduct(self, request: Any, context: Any) -> catalog_pb2.Product:
        raise NotFound("product not found")


@pytest.fixture(scope="session")
def settings() -> Settings:
    settings = Settings()
    migrations.upgrade(settings=settings, service="ai", script_location=MIGRATIONS_DIR)
    return settings


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await Runtime.start(
        service="ai", settings=settings, metadata=metadata, tables=messaging, with_messaging=False
    )
    yield rt
    await rt.close()


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The session's fake OpenAI with an empty script and history for this test."""
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def catalog() -> AsyncIterator[tuple[FakeCatalog, str]]:
    """A fake catalog gRPC server and its address."""
    fake = FakeCatalog()
    server, _health = await start_grpc_server(
        addr="127.0.0.1:0",
        register=lambda s: catalog_pb2_grpc.add_CatalogServiceServicer_to_server(fake, s) or [],
    )
    yield fake, f"127.0.0.1:{bound_port(server)}"
    await server.stop(grace=1)


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return Keyring(LocalKek(os.urandom(32)))


@pytest.fixture(scope="session")
def base_config(settings: Settings, fake_openai_server: FakeOpenAI) -> AiConfig:
    return dataclasses.replace(
        AiConfig.from_settings(settings),
        server_api_key=SERVER_KEY,
        base_url=fake_openai_server.base_url,
        total_deadline_seconds=5.0,
        attempt_timeout_seconds=1.0,
        max_attempts=3,
        daily_token_limit=50_000,
        features=frozenset({"complete", "basket_suggestions"}),
    )


ServeAi = Callable[..., Awaitable[ai_pb2_grpc.AiServiceStub]]


@pytest_asyncio.fixture(loop_scope="session")
async def serve_ai(
    runtime: Runtime, base_config: AiConfig, keyring: Keyring, catalog: tuple[FakeCatalog, str]
) -> AsyncIterator[ServeAi]:
    """Start an AiService on a free port with `base_config` changed by the given fields; returns a stub."""
    from yummi_ai.adapters.catalog import GrpcCatalog

    started: list[tuple[grpc.aio.Server, grpc.aio.Channel, OpenAIProvider, GrpcCatalog]] = []

    async def serve(*, keyring_: Keyring | None = None, **changes: Any) -> ai_pb2_grpc.AiServiceStub:
        config = dataclasses.replace(base_config, **changes)
        provider = OpenAIProvider(
            base_url=config.base_url,
            max_attempts=config.max_attempts,
            attempt_timeout=config.attempt_timeout_seconds,
            backoff_base=0.01,
            backoff_cap=0.05,
        )
        grpc_catalog = GrpcCatalog(addr=catalog[1], deadline=5.0)
        servicer = AiServicer(
            runtime=runtime,
            meter=Meter(uow_factory=runtime.uow, provider=provider, config=config),
            keyring=keyring_ or keyring,
            catalog=grpc_catalog,
        )
        server, _health = await start_grpc_server(
            addr="127.0.0.1:0", register=lambda s: register(s, servicer)
        )
        channel = make_channel(f"127.0.0.1:{bound_port(server)}", deadline=20)
        started.append((server, channel, provider, grpc_catalog))
        stub = ai_pb2_grpc.AiServiceStub(channel)
        stub.channel = channel  # type: ignore[attr-defined]  # for health checks
        return stub

    yield serve
    for server, channel, provider, grpc_catalog in started:
        await channel.close()
        await server.stop(grace=1)
        await provider.close()
        await grpc_catalog.close()


@pytest_asyncio.fixture(loop_scope="session")
async def stub(serve_ai: ServeAi) -> ai_pb2_grpc.AiServiceStub:
    """An AiService with the test config (server key, all features, fast retries)."""
    return await serve_ai()


@pytest.fixture
def channel(stub: ai_pb2_grpc.AiServiceStub) -> grpc.aio.Channel:
    return stub.channel  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def user() -> str:
    return str(uuid.uuid4())


def random_master_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()
