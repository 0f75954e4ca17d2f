"""A stack the fault drills may break: private Postgres, NATS and Valkey, the services, the PayFast simulator.

The servers run from the embedded binaries under a temporary state folder on free ports, so stopping them
touches nothing else on the machine (the session's Postgres/Redis/NATS stay untouched). The checks read the
database directly: they hold whatever the API says or does not say.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from yummi_devstack import SERVICE_NAMES, ServiceGroup, start_services
from yummi_devstack.infra import ensure_infra, free_port, running_servers, stop_infra

from .conftest import ADMIN_EMAIL, RUNNER_EMAIL, SERVICES_START_TIMEOUT, Stack
from .helpers import pay_on_simulator, query, wait_for

# The simulator resends an unanswered ITN after these waits (PayFast: 10 minutes, then longer): ~50 s in all,
# more than any outage a drill causes.
ITN_RETRY_DELAYS = "0.5,1,1,2,2,3,3,4,5,5,6,6,6,6"
# The gateway's deadline on its gRPC calls: a frozen service costs a request this long, then a 503.
GRPC_DEADLINE_SECONDS = 3.0
# Requests wait at most this long here; a request still open then counts as hung.
CLIENT_TIMEOUT_SECONDS = 30.0
SETTLE_TIMEOUT = 60.0
SCHEMAS = ("catalog", "orders", "payments", "identity", "ai")
# event type -> (schema of the consumer's inbox): each event one service publishes and one other applies
APPLIED_BY = {
    "orders.order.placed": "payments",
    "payments.payment.credited": "payments",
    "payments.wallet.debited": "orders",
    "payments.wallet.debit_rejected": "orders",
}


@dataclass
class FaultStack(Stack):
    """The stack of the drills, and the handles to break it."""

    state_dir: Path = Path()
    ports: dict[str, int] = field(default_factory=dict)
    simulator: subprocess.Popen[bytes] | None = None

    # --- the servers ------------------------------------------------------------------------------------

    def server_pid(self, name: str) -> int:
        return running_servers(self.state_dir)[name].pid

    def stop_server(self, name: str, sig: int | None = None) -> None:
        """Stop one embedded server: its usual clean stop, or the signal given (SIGKILL, or SIGQUIT =
        Postgres's immediate shutdown), waiting until it is gone."""
        if sig is None:
            stop_infra(self.state_dir, [name])
            return
        record = running_servers(self.state_dir)[name]
        proc = record.process()
        assert proc is not None, f"{name} is not running"
        proc.send_signal(sig)
        proc.wait(30)

    def start_server(self, name: str) -> None:
        """Start a stopped server again: same port, same data folder."""
        ensure_infra(self.state_dir, env={}, ports=self.ports)

    # --- the simulator ----------------------------------------------------------------------------------

    def deliveries(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.payfast_url}/simulator/deliveries", timeout=10)
        response.raise_for_status()
        return list(response.json())

    # --- SQL --------------------------------------------------------------------------------------------

    def sql(self, statement: str, *args: Any) -> list[Any]:
        return query(self.database_url, statement, *args)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{url} did not answer") from None
            time.sleep(0.2)


@contextlib.contextmanager
def fault_stack(tmp: Path) -> Iterator[FaultStack]:
    """Start everything under `tmp`; stop and remove everything on the way out."""
    state_dir = tmp / "infra"
    ports = {name: free_port() for name in ("postgres", "nats", "valkey")}
    urls = ensure_infra(state_dir, env={}, ports=ports)
    # The embedded server runs with synchronous_commit=off (dev speed): a crash then loses commits that were
    # already acknowledged, and with them events a consumer acked. Production keeps it on, and so do the
    # drills (a database setting outranks the server's command line).
    database = urls["DATABASE_URL"].rsplit("/", 1)[1]
    query(urls["DATABASE_URL"], f'ALTER DATABASE "{database}" SET synchronous_commit = on')
    simulator: subprocess.Popen[bytes] | None = None
    services: ServiceGroup | None = None
    try:
        sim_port = free_port()
        sim_log = (tmp / "simulator.log").open("wb")
        simulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "yummi_payments.simulator",
                "--port",
                str(sim_port),
                "--retry-delays",
                ITN_RETRY_DELAYS,
            ],
            stdout=sim_log,
            stderr=subprocess.STDOUT,
        )
        payfast_url = f"http://127.0.0.1:{sim_port}"
        _wait_http(f"{payfast_url}/simulator/deliveries", simulator)
        env = {
            **os.environ,
            **urls,
            "NATS_STREAM": "FAULT_DRILLS",
            "NATS_SUBJECT_PREFIX": "faults.events",
            "MIGRATE_ON_START": "true",
            "ADMIN_EMAILS": ADMIN_EMAIL,
            "RUNNER_EMAILS": RUNNER_EMAIL,
            "PAYFAST_PROCESS_URL": f"{payfast_url}/eng/process",
            "PAYFAST_VALIDATE_URL": f"{payfast_url}/eng/query/validate",
            "PAYFAST_VALID_HOSTS": "127.0.0.1",
            "GRPC_DEADLINE_SECONDS": str(GRPC_DEADLINE_SECONDS),
            "RATE_LIMIT_PER_MINUTE": "100000",
            "RATE_LIMIT_IP_PER_MINUTE": "100000",
            "RATE_LIMIT_AI_PER_MINUTE": "100000",
        }
        for variable in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OPENAI_BASE_URL"):
            env.pop(variable, None)
        services = start_services(env, SERVICE_NAMES, tmp / "service-logs", timeout=SERVICES_START_TIMEOUT)
        with httpx.Client(base_url=services.gateway_url, timeout=CLIENT_TIMEOUT_SECONDS) as client:
            yield FaultStack(
                url=services.gateway_url,
                client=client,
                services=services,
                payfast_url=payfast_url,
                database_url=urls["DATABASE_URL"],
                state_dir=state_dir,
                ports=ports,
                simulator=simulator,
            )
    finally:
        if services is not None:
            services.stop()
        if simulator is not None:
            simulator.terminate()
            simulator.wait(10)
        for name in ("postgres", "nats", "valkey"):
            # a drill may have left one stopped, or frozen
            with contextlib.suppress(KeyError, ProcessLookupError):
                os.kill(running_servers(state_dir)[name].pid, signal.SIGCONT)
        stop_infra(state_dir)


# ---------------------------------------------------------------------------------------------------------
# Traffic while a fault happens


@dataclass
class Outcome:
    kind: str  # order, initiate, balance, catalog
    status: int | None  # None: no answer (connection error or our client's timeout)
    body: Any = None
    error: str | None = None


@dataclass
class Traffic:
    """Shoppers placing orders and starting top-ups in a loop, each on its own connection, until stopped.

    Every answer is kept: the drills assert which statuses were allowed and that what was accepted is kept.
    """

    stack: FaultStack
    shoppers: list[dict[str, str]]
    products: list[dict[str, Any]]
    top_up_every: int = 3
    outcomes: list[Outcome] = field(default_factory=list)
    paid: list[str] = field(default_factory=list)  # references paid on the simulator (an ITN was sent)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Traffic:
        for number, headers in enumerate(self.shoppers):
            thread = threading.Thread(target=self._shop, args=(number, headers), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_SECONDS * 3)
        assert not any(thread.is_alive() for thread in self._threads), "a shopper's request hung"

    def _record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def _call(self, client: httpx.Client, kind: str, method: str, url: str, **kwargs: Any) -> Outcome:
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            outcome = Outcome(kind, None, error=f"{type(exc).__name__}: {exc}")
        else:
            try:
                body = response.json()
            except ValueError:
                body = response.text
            outcome = Outcome(kind, response.status_code, body)
        self._record(outcome)
        return outcome

    def _shop(self, number: int, headers: dict[str, str]) -> None:
        try:
            self._shop_until_stopped(number, headers)
        except Exception as exc:  # an assertion in a step: kept, so the drill fails on it
            self._record(Outcome("shopper", None, error=f"{type(exc).__name__}: {exc}"))

    def _shop_until_stopped(self, number: int, headers: dict[str, str]) -> None:
        rng = random.Random(number)
        with httpx.Client(base_url=self.stack.url, timeout=CLIENT_TIMEOUT_SECONDS) as client:
            step = 0
            while not self._stop.is_set():
                step += 1
                lines = rng.sample(self.products, k=rng.randint(1, 2))
                self._call(
                    client,
                    "order",
                    "POST",
                    "/v1/orders",
                    json={
                        "retailer": "woolworths",
                        "items": [{"product_id": p["product_id"], "quantity": 1} for p in lines],
                    },
                    headers=headers,
                )
                if step % self.top_up_every == 0:
                    initiated = self._call(
                        client,
                        "initiate",
                        "POST",
                        "/v1/payments/payfast/initiate",
                        json={"amount_minor": 5_000, "currency": "ZAR"},
                        headers=headers,
                    )
                    if initiated.status in (200, 201):
                        pay_on_simulator(self.stack, initiated.body)
                        with self._lock:
                            self.paid.append(str(initiated.body["reference"]))
                self._stop.wait(0.05)

    # --- what came back ---------------------------------------------------------------------------------

    def accepted_orders(self) -> list[str]:
        return [o.body["id"] for o in self.outcomes if o.kind == "order" and o.status == 201]

    def statuses(self, kind: str | None = None) -> Counter[int | None]:
        return Counter(o.status for o in self.outcomes if kind is None or o.kind == kind)

    def unexpected(self, allowed: set[int]) -> list[Outcome]:
        return [o for o in self.outcomes if o.status not in allowed]


def until_answering(stack: FaultStack, headers: dict[str, str], timeout: float = 60.0) -> None:
    """Wait until the stack answers a read that touches every backend's database again."""
    wait_for(
        lambda: [
            stack.client.get("/v1/wallet/balance", headers=headers).status_code,
            stack.client.get("/v1/orders", headers=headers).status_code,
            stack.client.get("/v1/catalog", params={"limit": 1}).status_code,
        ],
        lambda statuses: statuses == [200, 200, 200],
        timeout=timeout,
    )


# ---------------------------------------------------------------------------------------------------------
# What must hold after every drill


def settle(stack: FaultStack, timeout: float = SETTLE_TIMEOUT) -> None:
    """Wait until the simulator has no ITN left to resend, no order waits for its debit and every outbox is
    published."""
    wait_for(
        lambda: [d for d in stack.deliveries() if d["pending"]],
        lambda pending: not pending,
        timeout=timeout,
    )

    def unsettled() -> dict[str, int]:
        counts = {
            f"{schema}.outbox": int(
                stack.sql(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL")[0][0]  # noqa: S608 - schema names are constants
            )
            for schema in SCHEMAS
        }
        counts["orders.pending_payment"] = int(
            stack.sql("SELECT count(*) FROM orders.orders WHERE status = 'pending_payment'")[0][0]
        )
        counts["payments.credit_due"] = int(
            stack.sql(
                "SELECT count(*) FROM payments.payments WHERE status = 'complete' AND NOT wallet_credited"
            )[0][0]
        )
        return counts

    try:
        wait_for(unsettled, lambda counts: not any(counts.values()), timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnosis(stack)}") from None


def diagnosis(stack: FaultStack) -> str:
    """Where the saga of each order still waiting stopped, and which events were published but not applied."""
    lines = []
    for row in stack.sql(
        """SELECT o.id, o.created_at, c.status AS charge, c.updated_at AS charged_at
           FROM orders.orders o LEFT JOIN payments.order_charges c ON c.order_id = o.id
           WHERE o.status = 'pending_payment' ORDER BY o.created_at"""
    ):
        lines.append(f"pending order {dict(row)}")
    for event_type, schema in APPLIED_BY.items():
        publisher = event_type.split(".", 1)[0]
        published = {
            r[0]: r[1]
            for r in stack.sql(
                f"SELECT id, published_at FROM {publisher}.outbox WHERE event_type = $1",  # noqa: S608 - constants
                event_type,
            )
        }
        applied = {
            r[0]
            for r in stack.sql(f"SELECT event_id FROM {schema}.inbox WHERE event_type = $1", event_type)  # noqa: S608
        }
        missing = sorted(str(i) for i in set(published) - applied)
        lines.append(
            f"{event_type}: published {len(published)}, applied {len(applied)}, not applied {missing[:10]}"
        )
    return "\n".join(lines)


def assert_nothing_lost(stack: FaultStack, accepted_orders: list[str]) -> None:
    """The invariants every drill ends with (after `settle`), read straight from the database."""
    # Every order that got a 201 exists once, was debited once and is queued.
    ids = [uuid.UUID(order_id) for order_id in accepted_orders]
    rows = stack.sql("SELECT id, status, total_minor FROM orders.orders WHERE id = ANY($1::uuid[])", ids)
    assert len(rows) == len(set(ids)), "an accepted order is missing"
    assert {r["status"] for r in rows} <= {"queued", "claimed", "completed"}, Counter(
        r["status"] for r in rows
    )
    # Every order there is (also one whose 201 a fault swallowed) reached a final state by the saga's rules.
    statuses = Counter(r["status"] for r in stack.sql("SELECT status FROM orders.orders"))
    assert set(statuses) <= {"queued", "claimed", "completed", "rejected"}, statuses
    history = stack.sql(
        """SELECT o.id, o.status, array_agg(e.type ORDER BY e.created_at) AS types
           FROM orders.orders o JOIN orders.order_events e ON e.order_id = o.id GROUP BY o.id, o.status"""
    )
    for row in history:
        if row["status"] == "queued":
            assert list(row["types"]) == ["order.placed", "order.queued"], dict(row)
    debits = stack.sql(
        """SELECT o.id, o.status, o.total_minor, c.status AS charge, c.amount_minor AS charged,
                  (SELECT array_agg(t.amount_minor) FROM payments.wallet_transactions t
                    WHERE t.order_id = o.id AND t.entry_type = 'debit') AS debits
           FROM orders.orders o LEFT JOIN payments.order_charges c ON c.order_id = o.id"""
    )
    for row in debits:
        if row["status"] in ("queued", "claimed", "completed"):
            assert row["charge"] == "debited" and list(row["debits"] or []) == [-row["total_minor"]], dict(
                row
            )
        else:
            assert row["charge"] == "rejected" and not row["debits"], dict(row)

    # Every top-up whose ITN the simulator delivered is complete and credited once; none was given up on.
    deliveries = stack.deliveries()
    assert not [d for d in deliveries if d["gave_up"]], "an ITN was never answered with 200"
    delivered = [
        uuid.UUID(d["reference"]) for d in deliveries if d["delivered"] and d["payment_status"] == "COMPLETE"
    ]
    credits = stack.sql(
        """SELECT p.reference, p.status, p.wallet_credited, p.amount_minor,
                  (SELECT array_agg(t.amount_minor) FROM payments.wallet_transactions t
                    WHERE t.payment_id = p.id AND t.entry_type = 'credit') AS credits
           FROM payments.payments p WHERE p.reference = ANY($1::uuid[])""",
        delivered,
    )
    assert len(credits) == len(set(delivered))
    for row in credits:
        assert row["status"] == "complete" and row["wallet_credited"], dict(row)
        assert list(row["credits"] or []) == [row["amount_minor"]], dict(row)
    orphans = stack.sql(
        """SELECT count(*) FROM payments.wallet_transactions t
           LEFT JOIN payments.payments p ON p.id = t.payment_id
           WHERE t.entry_type = 'credit' AND (p.id IS NULL OR p.status <> 'complete')"""
    )
    assert orphans[0][0] == 0, "a credit without a complete payment"

    # Every wallet's balance is the sum of its ledger, and never below zero.
    wallets = stack.sql(
        """SELECT w.user_id, w.balance_minor, coalesce(sum(t.amount_minor), 0) AS ledger
           FROM payments.wallets w LEFT JOIN payments.wallet_transactions t ON t.user_id = w.user_id
           GROUP BY w.user_id, w.balance_minor"""
    )
    assert wallets, "no wallet at all"
    for row in wallets:
        assert row["balance_minor"] == row["ledger"] >= 0, dict(row)

    # Nothing waits in an outbox or was dead-lettered; each event was applied exactly once by its consumer.
    for schema in SCHEMAS:
        assert stack.sql(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL")[0][0] == 0, (  # noqa: S608 - schema names are constants
            schema
        )
        dead = stack.sql(f"SELECT consumer, event_type, error FROM {schema}.dead_letters")  # noqa: S608 - schema names are constants
        assert not dead, [dict(r) for r in dead]
    for event_type, schema in APPLIED_BY.items():
        publisher = event_type.split(".", 1)[0]
        published = {
            r[0]
            for r in stack.sql(f"SELECT id FROM {publisher}.outbox WHERE event_type = $1", event_type)  # noqa: S608 - schema names are constants
        }
        applied = [
            r[0]
            for r in stack.sql(f"SELECT event_id FROM {schema}.inbox WHERE event_type = $1", event_type)  # noqa: S608 - schema names are constants
        ]
        assert len(applied) == len(set(applied)), f"{event_type} applied twice"
        assert set(applied) == published, f"{event_type}: published {len(published)}, applied {len(applied)}"
