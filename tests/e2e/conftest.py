"""End to end: the five services as real processes on free ports, reached over HTTP through the gateway."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import nats
import nats.js.errors
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

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


CLERK_ISSUER = "https://clerk.e2e.example"
CLERK_APP = "https://app.e2e.example"


@dataclass
class Clerk:
    """A second gateway on the stack's services that verifies Clerk RS256 tokens against a local JWKS server
    (the `stack` gateway keeps accepting dev tokens for the rest of the suite)."""

    url: str
    client: httpx.Client
    private_key: Any
    kid: str

    def token(self, sub: str, email: str | None = None, **claims: Any) -> str:
        """A session token as Clerk issues it: RS256, the JWKS key's kid, iss/azp/iat/nbf/exp."""
        now = int(time.time())
        payload = {
            "sub": sub,
            "iss": CLERK_ISSUER,
            "azp": CLERK_APP,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "email": email,
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.private_key, algorithm="RS256", headers={"kid": self.kid})

    def auth(self, sub: str, email: str | None = None, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, email, **claims)}"}


@contextlib.contextmanager
def jwks_server(keys: list[dict[str, Any]]) -> Iterator[str]:
    """Clerk's /.well-known/jwks.json for `keys`, on a free local port; yields its URL."""
    body = json.dumps({"keys": keys}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def clerk(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clerk]:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = "e2e-key-1"
    jwk = {
        **RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True),
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
    }
    with jwks_server([jwk]) as jwks_url:
        env = {
            **stack.services.env,
            "AUTH_DISABLE_VERIFICATION": "false",
            "CLERK_ISSUER": CLERK_ISSUER,
            "CLERK_JWKS_URL": jwks_url,
            "CLERK_AUTHORIZED_PARTIES": CLERK_APP,
        }
        log_dir = tmp_path_factory.mktemp("clerk-gateway-logs")
        gateway = start_services(env, ["gateway"], log_dir, timeout=SERVICES_START_TIMEOUT)
        try:
            with httpx.Client(base_url=gateway.gateway_url, timeout=30.0) as client:
                yield Clerk(url=gateway.gateway_url, client=client, private_key=private_key, kid=kid)
        finally:
            gateway.stop()


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
