"""The stack past one machine, on loopback: a three-node NATS cluster holding an R3 events stream, two
replicas of every service and two gateways on one Postgres database and one Redis; callers alternate them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import nats
import nats.js.api

from yummi_devstack.cluster import NatsCluster, ReplicaSet, start_replicas
from yummi_devstack.infra import drop_database, ensure_database, url_with_database
from yummi_devstack.pytest_plugin import SessionInfra
from yummi_devstack.stack import migrate_all
from yummi_devstack.tokens import dev_auth_headers

from .conftest import ADMIN_EMAIL, RUNNER_EMAIL

ROOT = Path(__file__).resolve().parents[2]
CATALOG_ARGS = ("--count", "400", "--seed", "7")
REPLICAS = 2
GATEWAYS = 2
START_TIMEOUT = 150.0
# Every consumer that takes part in a top-up or an order: (its schema, its durable name, the event type).
SAGA_CONSUMERS = (
    ("payments", "payments-wallet-credit", "payments.payment.credited"),
    ("payments", "payments-wallet-debit", "orders.order.placed"),
    ("orders", "orders-wallet-debited", "payments.wallet.debited"),
    ("orders", "orders-wallet-debit-rejected", "payments.wallet.debit_rejected"),
)


@dataclass
class ScaledStack:
    """Two gateways (`clients`), the replicas behind them, the NATS cluster and the module's database."""

    clients: list[httpx.Client]
    replicas: ReplicaSet
    nats: NatsCluster
    database_url: str
    payfast_url: str
    stream: str
    _turns: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def gateway(self) -> httpx.Client:
        """The gateways in turn (thread-safe), as a load balancer in front of them would hand out requests."""
        with self._lock:
            turn = next(self._turns)
        return self.clients[turn % len(self.clients)]

    def auth(self, sub: str, email: str | None = None, **claims: Any) -> dict[str, str]:
        return dev_auth_headers(sub, email or f"{sub}@e2e.example", **claims)

    def query(self, sql: str, *args: Any) -> list[Any]:
        """Rows of one SQL query on the module's database."""
        import asyncpg

        async def run() -> list[Any]:
            conn = await asyncpg.connect(self.database_url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()

        return asyncio.run(run())

    def value(self, sql: str, *args: Any) -> Any:
        rows = self.query(sql, *args)
        return rows[0][0] if rows else None

    def nats_call(self, call: Callable[[nats.js.JetStreamContext], Any]) -> Any:
        """Run `await call(js)` on a fresh connection to the cluster."""

        async def run() -> Any:
            nc = await nats.connect(self.nats.urls, connect_timeout=5, max_reconnect_attempts=3)
            try:
                return await call(nc.jetstream())
            finally:
                await nc.close()

        return asyncio.run(run())

    def stream_info(self) -> nats.js.api.StreamInfo:
        async def info(js: nats.js.JetStreamContext) -> nats.js.api.StreamInfo:
            return await js.stream_info(self.stream)

        result: nats.js.api.StreamInfo = self.nats_call(info)
        return result

    def consumer_backlog(self, durable: str) -> tuple[int, int]:
        """Messages not yet delivered and deliveries not yet acknowledged of one durable consumer."""

        async def info(js: nats.js.JetStreamContext) -> tuple[int, int]:
            consumer = await js.consumer_info(self.stream, durable)
            return int(consumer.num_pending or 0), int(consumer.num_ack_pending or 0)

        result: tuple[int, int] = self.nats_call(info)
        return result

    def scrape(self, name: str) -> list[str]:
        """The /metrics text of each replica of a backend service."""
        return [httpx.get(url, timeout=5).text for url in self.replicas.metrics_urls(name)]


def wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], *, timeout: float = 30.0) -> Any:
    """Poll `fetch` until `done` holds (events cross NATS asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        time.sleep(0.2)


def counter(metrics_text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus counter's samples whose labels include `labels`."""
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(name + "{"):
            continue
        sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}")]))
        if all(sample_labels.get(key) == value for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def import_sample_catalog(stack: ScaledStack, tmp_dir: Path) -> None:
    out = tmp_dir / "catalog.json"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/generate_sample_catalog.py"), *CATALOG_ARGS, "--out", str(out)],
        check=True,
        capture_output=True,
    )
    response = stack.gateway().post(
        "/v1/admin/catalog/import",
        content=out.read_bytes(),
        headers={**stack.auth("admin_scale", ADMIN_EMAIL), "Content-Type": "application/json"},
    )
    assert response.status_code in (200, 201), response.text


def pay_top_up(stack: ScaledStack, headers: Mapping[str, str], amount_minor: int) -> str:
    """Initiate a top-up on the next gateway, pay it on the simulator's hosted page (which then posts the
    signed ITN to the notify URL the serving payments replica gave); returns the reference."""
    initiated = stack.gateway().post(
        "/v1/payments/payfast/initiate",
        json={"amount_minor": amount_minor, "currency": "ZAR"},
        headers=dict(headers),
    )
    assert initiated.status_code in (200, 201), initiated.text
    body = initiated.json()
    with httpx.Client(timeout=30) as browser:
        page = browser.post(body["action_url"], data=body["fields"])
        assert page.status_code == 200, page.text
        pay_path = re.search(r'action="(/eng/process/[^"]+/pay)"', page.text)
        assert pay_path, page.text
        paid = browser.post(stack.payfast_url + pay_path.group(1), data={"payment_status": "COMPLETE"})
        assert paid.status_code in (200, 303), paid.text
    return str(body["reference"])


def wait_credited(stack: ScaledStack, headers: Mapping[str, str], reference: str) -> None:
    wait_for(
        lambda: stack.gateway().get(
            "/v1/payments/payfast/status", params={"reference": reference}, headers=dict(headers)
        ),
        lambda r: r.status_code == 200 and r.json()["wallet_credited"],
        timeout=90,
    )


def runner_headers(stack: ScaledStack, sub: str) -> dict[str, str]:
    return stack.auth(sub, RUNNER_EMAIL)


@contextlib.contextmanager
def scaled_stack(
    infra: SessionInfra,
    *,
    payfast_url: str,
    openai_base_url: str,
    openai_key: str,
    work_dir: Path,
    on_failure: Callable[[], bool] = lambda: False,
) -> Iterator[ScaledStack]:
    """Start the NATS cluster, a fresh database and every replica; stop and drop all of it on the way out.

    `on_failure()` is asked at the end: when true, the processes' last lines go to stderr.
    """
    session_database = urlsplit(infra.database_url).path.lstrip("/")
    database_url = url_with_database(infra.database_url, f"{session_database}_scale")
    stream = f"{infra.nats_stream}_SCALE"
    cluster = NatsCluster(work_dir / "nats", size=3, name="yummi")
    env = {
        **os.environ,
        "ADMIN_EMAILS": ADMIN_EMAIL,
        "RUNNER_EMAILS": RUNNER_EMAIL,
        "PAYFAST_PROCESS_URL": f"{payfast_url}/eng/process",
        "PAYFAST_VALIDATE_URL": f"{payfast_url}/eng/query/validate",
        "PAYFAST_VALID_HOSTS": "127.0.0.1",
        "OPENAI_BASE_URL": openai_base_url,
        "OPENAI_API_KEY": openai_key,
        "RATE_LIMIT_PER_MINUTE": "100000",
        "RATE_LIMIT_IP_PER_MINUTE": "100000",
        "RATE_LIMIT_AI_PER_MINUTE": "100000",
        "DATABASE_URL": database_url,
        # Migrated once before the replicas start, as the Kubernetes `migrate` Job does (ten processes
        # migrating at once would queue on the per-schema locks, holding connections of a shared server).
        "MIGRATE_ON_START": "false",
        "NATS_URL": cluster.url,
        "NATS_STREAM": stream,
        "NATS_STREAM_REPLICAS": "3",
        "NATS_SUBJECT_PREFIX": f"{infra.nats_subject_prefix.split('.')[0]}scale.events",
        "REDIS_KEY_PREFIX": f"{infra.redis_key_prefix}scale:",
        # Ten processes share one Postgres (max_connections 100 on the CI machine, which the session's other
        # stack uses too): small pools, as docs/scaling.md budgets them.
        "DB_POOL_SIZE": "3",
        "DB_MAX_OVERFLOW": "2",
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    ensure_database(database_url)
    replicas: ReplicaSet | None = None
    clients: list[httpx.Client] = []
    try:
        migrate_all(env, ROOT)
        cluster.start()
        replicas = start_replicas(
            env, replicas=REPLICAS, gateways=GATEWAYS, log_dir=work_dir / "logs", timeout=START_TIMEOUT
        )
        clients = [httpx.Client(base_url=url, timeout=30.0) for url in replicas.gateway_urls]
        yield ScaledStack(
            clients=clients,
            replicas=replicas,
            nats=cluster,
            database_url=database_url,
            payfast_url=payfast_url,
            stream=stream,
        )
    finally:
        for client in clients:
            client.close()
        if replicas is not None:
            if on_failure():
                for name, lines in replicas.tails(40).items():
                    sys.stderr.write(f"--- {name} (last lines)\n" + "\n".join(lines) + "\n")
            replicas.stop()
        cluster.stop()
        drop_database(database_url)
