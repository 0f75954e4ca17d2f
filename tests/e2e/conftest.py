"""End to end: the five services as real processes on free ports, reached over HTTP through the gateway."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import nats
import nats.js.errors
import pytest

from yummi_ai.fake_openai import FakeOpenAI
from yummi_devstack import SERVICE_NAMES, ServiceGroup, start_services
from yummi_devstack.infra import drop_database, ensure_database, free_port, url_with_database
from yummi_devstack.pytest_plugin import SessionInfra
from yummi_devstack.tokens import dev_auth_headers

from .otlp_collector import OtlpCollector

SERVICES_START_TIMEOUT = 100.0  # below the per-test timeout, so a slow start fails with the services' logs
ADMIN_EMAIL = "admin@e2e.example"
RUNNER_EMAIL = "runner@e2e.example"
E2E_OPENAI_KEY = "sk-e2e-server-key-0000"


@dataclass
class Stack:
    url: str
    client: httpx.Client
    services: ServiceGroup
    payfast_url: str
    database_url: str

    def auth(
        self, sub: str = "user_e2e", email: str | None = "e2e@example.com", **claims: Any
    ) -> dict[str, str]:
        """Headers carrying a dev token for that user."""
        return dev_auth_headers(sub, email, **claims)


@pytest.fixture(scope="session")
def payfast_simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The repo's PayFast simulator as its own process: hosted checkout, signed ITNs, server confirmation."""
    port = free_port()
    log = (tmp_path_factory.mktemp("payfast") / "simulator.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "yummi_payments.simulator", "--port", str(port)], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/simulator/notifications", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the PayFast simulator did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture(scope="session")
def otlp_collector() -> Iterator[OtlpCollector]:
    """Where the stack's services export their spans (OTLP/HTTP), for the tracing tests."""
    collector = OtlpCollector()
    yield collector
    collector.close()


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    """The OpenAI-compatible server the ai service calls instead of OpenAI (tests script its answers)."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="session")
def stack(
    yummi_infra: SessionInfra,
    payfast_simulator: str,
    fake_openai: FakeOpenAI,
    otlp_collector: OtlpCollector,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("service-logs")
    session_database = urlsplit(yummi_infra.database_url).path.lstrip("/")
    database_url = url_with_database(yummi_infra.database_url, f"{session_database}_e2e")
    env = {
        **os.environ,
        "ADMIN_EMAILS": ADMIN_EMAIL,
        "RUNNER_EMAILS": RUNNER_EMAIL,
        "PAYFAST_PROCESS_URL": f"{payfast_simulator}/eng/process",
        "PAYFAST_VALIDATE_URL": f"{payfast_simulator}/eng/query/validate",
        "PAYFAST_VALID_HOSTS": "127.0.0.1",
        "ORDER_LEASE_SECONDS": "30",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_API_KEY": E2E_OPENAI_KEY,
        # A configured webhook, so POST /v1/webhooks/clerk answers 400/401 to bad deliveries, not 503.
        "CLERK_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        # The suites poll and browse from one address faster than a person would; the limits themselves are
        # covered by the gateway's own tests.
        "RATE_LIMIT_PER_MINUTE": "100000",
        "RATE_LIMIT_IP_PER_MINUTE": "100000",
        "RATE_LIMIT_AI_PER_MINUTE": "100000",
        # Tracing on, exported in small batches; gauges read from the database refresh every second.
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "METRICS_REFRESH_SECONDS": "1",
        # A stream of its own: the session stream already holds every event the integration tests published,
        # and the stack's durable consumers would first work through that whole backlog.
        "NATS_STREAM": f"{yummi_infra.nats_stream}_E2E",
        "NATS_SUBJECT_PREFIX": f"{yummi_infra.nats_subject_prefix.split('.')[0]}e2e.events",
        # And a database of its own, so the runner's queue holds only what the e2e tests placed; each service
        # migrates its schema as it starts.
        "DATABASE_URL": database_url,
        "MIGRATE_ON_START": "true",
    }
    ensure_database(database_url)
    services = start_services(env, SERVICE_NAMES, log_dir, timeout=SERVICES_START_TIMEOUT)
    try:
        with httpx.Client(base_url=services.gateway_url, timeout=30.0) as client:
            yield Stack(
                url=services.gateway_url,
                client=client,
                services=services,
                payfast_url=payfast_simulator,
                database_url=database_url,
            )
    finally:
        services.stop()
        asyncio.run(_delete_stream(yummi_infra.nats_url, env["NATS_STREAM"]))
        drop_database(database_url)


async def _delete_stream(nats_url: str, stream: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, Stack):
        # the services' own last words, next to the failing assertion
        for name, lines in stack.services.tails(40).items():
            report.sections.append((f"{name} (last lines)", "\n".join(lines)))
    return report
