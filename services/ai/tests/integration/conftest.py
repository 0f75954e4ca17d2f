"""Fixtures for the ai integration tests: a migrated database, a runtime and an in-process gRPC server."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from yummi.ai.v1 import ai_pb2_grpc
from yummi_ai.adapters.tables import messaging, metadata
from yummi_ai.bootstrap import MIGRATIONS_DIR
from yummi_ai.entrypoints.grpc_server import register
from yummi_common import migrations
from yummi_common.grpc_client import make_channel
from yummi_common.grpc_server import start_grpc_server
from yummi_common.service import Runtime
from yummi_common.settings import Settings

# Defaults for running this folder alone; a repo-level conftest that sets these first wins.
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/yummi_ai_dev")
os.environ.setdefault("NATS_URL", "nats://127.0.0.1:4222")
os.environ.setdefault("NATS_STREAM", "DEV_AI")
os.environ.setdefault("NATS_SUBJECT_PREFIX", "devai.events")
os.environ.setdefault("ENVIRONMENT", "test")


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


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def channel(runtime: Runtime) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the AiService, started as `yummi-ai serve` starts it (health, reflection, interceptor)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server, _health = await start_grpc_server(
        addr=f"127.0.0.1:{port}", register=lambda s: register(s, runtime)
    )
    chan = make_channel(f"127.0.0.1:{port}", deadline=10)
    yield chan
    await chan.close()
    await server.stop(grace=1)


@pytest.fixture(scope="session")
def stub(channel: grpc.aio.Channel) -> ai_pb2_grpc.AiServiceStub:
    return ai_pb2_grpc.AiServiceStub(channel)
