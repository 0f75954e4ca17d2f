"""The reference runner (`yummi-runner`) against the running stack: claim, place, heartbeat, ack, log."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from yummi_devstack import ServiceGroup, dev_token
from yummi_orders.runner.client import GatewayClient
from yummi_orders.runner.journal import RunnerLog
from yummi_orders.runner.retailers import Placement, PlacementFailed
from yummi_orders.runner.runner import Runner, RunnerOptions

from .conftest import RUNNER_EMAIL, Stack
from .helpers import (
    available_products,
    balance,
    ensure_sample_catalog,
    extra_services,
    fund,
    order_of,
    place_order,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+)(.*)$")
RUNNER_TOKEN = dev_token("runner_cli", RUNNER_EMAIL)


@pytest.fixture(scope="module", autouse=True)
def catalog(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> None:
    ensure_sample_catalog(stack, tmp_path_factory.mktemp("runner-catalog"))


@pytest.fixture(autouse=True)
def empty_queue(stack: Stack) -> None:
    """Earlier modules may leave queued orders: finish them, so each test's runner meets only its own."""
    runner = stack.auth("runner_cli", RUNNER_EMAIL)
    while (claimed := stack.client.post("/v1/orders/next", headers=runner)).status_code == 200:
        order_id = claimed.json()["id"]
        acked = stack.client.post(f"/v1/orders/{order_id}/ack", json={"outcome": "completed"}, headers=runner)
        assert acked.status_code == 200, acked.text
    assert claimed.status_code == 204, claimed.text


def runner_cmd(gateway: str, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "yummi-runner"), "--gateway", gateway, *args]


def run_runner(
    gateway: str, log_path: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        runner_cmd(gateway, "--poll-seconds", "0.2", *args),
        env={**_env(), "YUMMI_RUNNER_TOKEN": RUNNER_TOKEN, "THIN_RUNNER_LOG_PATH": str(log_path)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _env() -> dict[str, str]:
    return dict(os.environ)


def log_steps(log_path: Path) -> list[tuple[str, str, str]]:
    """(order id, step, details) of every line, checking each line's shape on the way."""
    steps = []
    for line in log_path.read_text().splitlines():
        match = LINE.match(line)
        assert match, f"runner log line is not `<UTC time> <order id> <step> ...`: {line!r}"
        steps.append((match.group(2), match.group(3), match.group(4)))
    return steps


def dry_reference(order_id: str) -> str:
    return "DRY-" + order_id.replace("-", "")[:8].upper()


def test_runner_cli_completes_queued_orders_and_logs_every_step(stack: Stack, tmp_path: Path) -> None:
    shopper = stack.auth("runner_shopper", "runner-shopper@e2e.example")
    products = available_products(stack, 3)
    fund(stack, shopper, 3 * max(p["price_minor"] for p in products) + 1_000)
    orders = [place_order(stack, shopper, [p]) for p in products]
    for order in orders:
        wait_for_status(stack, shopper, order["id"], "queued")
    log_path = tmp_path / "logs" / "thin-runner-log.txt"  # the folder does not exist yet

    done = run_runner(stack.url, log_path, "--max-orders", "3")

    assert done.returncode == 0, done.stderr
    assert "claimed 3, completed 3" in done.stderr
    steps = log_steps(log_path)
    for order in orders:
        finished = order_of(stack, shopper, order["id"])
        assert finished["status"] == "completed"
        assert finished["retailer_reference"] == dry_reference(order["id"])
        assert [e["type"] for e in finished["events"]] == [
            "order.placed",
            "order.queued",
            "order.claimed",
            "order.completed",
        ]
        mine = [step for oid, step, _ in steps if oid == order["id"]]
        assert mine == ["claimed", "placing", "placed", "acked"]
    acked = [details for oid, step, details in steps if step == "acked"]
    assert all("outcome=completed" in d and "status=completed" in d for d in acked)

    idle = run_runner(stack.url, tmp_path / "idle.txt", "--once")  # nothing left: exits without claiming
    assert idle.returncode == 0 and "claimed 0" in idle.stderr
    assert (
        stack.client.post("/v1/orders/next", headers=stack.auth("runner_cli", RUNNER_EMAIL)).status_code
        == 204
    )


def test_runner_without_a_runner_account_or_token_refuses_to_run(stack: Stack, tmp_path: Path) -> None:
    shopper_token = dev_token("not_a_runner", "someone@e2e.example")
    refused = subprocess.run(
        runner_cmd(stack.url, "--once", "--token", shopper_token, "--log-path", str(tmp_path / "log.txt")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "refused this runner's token" in refused.stderr
    env = {k: v for k, v in _env().items() if k != "YUMMI_RUNNER_TOKEN"}
    no_token = subprocess.run(
        runner_cmd(stack.url, "--once"), env=env, capture_output=True, text=True, timeout=60
    )
    assert no_token.returncode == 2 and "no token" in no_token.stderr


class RefusingRetailer:
    """A retailer adapter that refuses every order, as a real one would when an item is out of stock."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def place(self, order: dict[str, Any]) -> Placement:
        self.seen.append(order["id"])
        raise PlacementFailed("out of stock: every line")


def test_a_plugged_in_retailer_that_refuses_fails_the_order_and_the_shopper_is_refunded(
    stack: Stack, tmp_path: Path
) -> None:
    shopper = stack.auth("refused_shopper", "refused-shopper@e2e.example")
    [product] = available_products(stack, 1)
    fund(stack, shopper, product["price_minor"] + 500)
    funded = balance(stack, shopper)["balance_minor"]
    order = place_order(stack, shopper, [product])
    wait_for_status(stack, shopper, order["id"], "queued")
    assert balance(stack, shopper)["balance_minor"] == funded - order["total_minor"]
    retailer = RefusingRetailer()

    async def once() -> Any:
        runner = Runner(
            client=GatewayClient(base_url=stack.url, token=RUNNER_TOKEN),
            retailer=retailer,
            log=RunnerLog(tmp_path / "log.txt"),
            options=RunnerOptions(once=True),
        )
        try:
            return await runner.run()
        finally:
            await runner.client.aclose()

    stats = asyncio.run(once())

    assert (stats.claimed, stats.failed, stats.completed) == (1, 1, 0)
    assert retailer.seen == [order["id"]]
    failed = order_of(stack, shopper, order["id"])
    assert failed["status"] == "failed"
    assert failed["events"][-1]["type"] == "order.failed"
    assert failed["events"][-1]["payload"]["reason"] == "out of stock: every line"
    refunded = wait_for(lambda: balance(stack, shopper), lambda b: b["balance_minor"] == funded)
    assert [t["entry_type"] for t in refunded["transactions"]] == ["refund", "debit", "credit"]
    steps = [step for _, step, _ in log_steps(tmp_path / "log.txt")]
    assert steps == ["claimed", "placing", "placement_failed", "acked"]


# --- a lease of two seconds: heartbeats keep it, a killed runner loses it ----------------------------------


@pytest.fixture(scope="module")
def short_lease(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceGroup]:
    """A second orders process granting 2-second leases (swept every 0.2 s) and a gateway in front of it."""
    with extra_services(
        stack,
        ["orders", "gateway"],
        tmp_path_factory.mktemp("short-lease-logs"),
        ORDER_LEASE_SECONDS="2",  # short, yet long enough for a heartbeat through a busy shared machine
        ORDER_LEASE_SWEEP_SECONDS="0.2",
        RATE_LIMIT_PER_MINUTE="100000",  # heartbeats every third of a second
    ) as group:
        yield group


def test_a_runner_killed_mid_lease_loses_the_order_and_another_runner_completes_it_once(
    stack: Stack, short_lease: ServiceGroup, tmp_path: Path
) -> None:
    shopper = stack.auth("lease_shopper", "lease-shopper@e2e.example")
    [product] = available_products(stack, 1)
    fund(stack, shopper, product["price_minor"] + 500)
    order = place_order(stack, shopper, [product])
    wait_for_status(stack, shopper, order["id"], "queued")
    paid = balance(stack, shopper)["balance_minor"]
    first_log, second_log = tmp_path / "first.txt", tmp_path / "second.txt"

    # The first runner takes 60 s to "place" the order, heartbeating its 2-second lease meanwhile.
    first = subprocess.Popen(
        runner_cmd(short_lease.gateway_url, "--once", "--dry-run-delay", "60"),
        env={**_env(), "YUMMI_RUNNER_TOKEN": RUNNER_TOKEN, "THIN_RUNNER_LOG_PATH": str(first_log)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: first_log.exists() and [s for o, s, _ in log_steps(first_log) if o == order["id"]],
            lambda steps: bool(steps) and "placing" in steps,
        )
        time.sleep(4.5)  # more than two leases: only the heartbeats keep the order claimed
        held = order_of(stack, shopper, order["id"])
        assert held["status"] == "claimed", held
        assert [s for _, s, _ in log_steps(first_log)].count("heartbeat") >= 4

        first.send_signal(signal.SIGKILL)  # the runner dies without a word
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)

    requeued = wait_for_status(stack, shopper, order["id"], "queued", timeout=10)
    assert [e["type"] for e in requeued["events"]][-1] == "order.requeued"
    assert requeued["events"][-1]["payload"]["attempts"] == 1

    second = run_runner(short_lease.gateway_url, second_log, "--once")

    assert second.returncode == 0, second.stderr
    done = order_of(stack, shopper, order["id"])
    assert done["status"] == "completed"
    assert done["retailer_reference"] == dry_reference(order["id"])
    assert [e["type"] for e in done["events"]] == [
        "order.placed",
        "order.queued",
        "order.claimed",
        "order.requeued",
        "order.claimed",
        "order.completed",
    ]
    assert [s for o, s, _ in log_steps(second_log) if o == order["id"]] == [
        "claimed",
        "placing",
        "placed",
        "acked",
    ]
    time.sleep(0.5)  # a late refund or second debit would show by now
    assert balance(stack, shopper)["balance_minor"] == paid
