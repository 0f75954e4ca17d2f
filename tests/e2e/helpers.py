"""Shared steps of the end-to-end tests: sample catalog, funded shoppers, polling, extra service processes."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from yummi_devstack import ServiceGroup, start_services

from .conftest import ADMIN_EMAIL, SERVICES_START_TIMEOUT, Stack

ROOT = Path(__file__).resolve().parents[2]
# The same file test_thin_slice.py imports: importing it again is idempotent, whichever module runs first.
CATALOG_ARGS = ("--count", "400", "--seed", "7")


def wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], *, timeout: float = 20.0) -> Any:
    """Poll `fetch` until `done` holds (events cross NATS asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        time.sleep(0.1)


def ensure_sample_catalog(stack: Stack, tmp_dir: Path) -> None:
    """Import the suite's sample catalog (400 woolworths items, seed 7) as the admin."""
    out = tmp_dir / "catalog.json"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts/generate_sample_catalog.py"), *CATALOG_ARGS, "--out", str(out)],
        check=True,
        capture_output=True,
    )
    response = stack.client.post(
        "/v1/admin/catalog/import",
        content=out.read_bytes(),
        headers={**stack.auth("admin_e2e", ADMIN_EMAIL), "Content-Type": "application/json"},
    )
    assert response.status_code in (200, 201), response.text


def available_products(stack: Stack, count: int) -> list[dict[str, Any]]:
    items = stack.client.get("/v1/catalog", params={"limit": 100, "available": "true"}).json()["items"]
    assert len(items) >= count, "the sample catalog is not imported"
    return list(items[:count])


def pay_on_simulator(stack: Stack, initiated: dict[str, Any], *, status: str = "COMPLETE") -> None:
    """Post the signed checkout form to the simulator's hosted page and press Pay (it then sends the ITN)."""
    with httpx.Client(timeout=30) as browser:
        page = browser.post(initiated["action_url"], data=initiated["fields"])
        assert page.status_code == 200, page.text
        pay_path = re.search(r'action="(/eng/process/[^"]+/pay)"', page.text)
        assert pay_path, page.text
        paid = browser.post(stack.payfast_url + pay_path.group(1), data={"payment_status": status})
        assert paid.status_code in (200, 303), paid.text


def fund(
    stack: Stack, headers: dict[str, str], amount_minor: int, *, client: httpx.Client | None = None
) -> str:
    """A real top-up: initiate, pay on the simulator, wait for the wallet credit; returns the reference."""
    http = client or stack.client
    initiated = http.post(
        "/v1/payments/payfast/initiate",
        json={"amount_minor": amount_minor, "currency": "ZAR"},
        headers=headers,
    )
    assert initiated.status_code in (200, 201), initiated.text
    pay_on_simulator(stack, initiated.json())
    reference = str(initiated.json()["reference"])
    wait_for(
        lambda: http.get("/v1/payments/payfast/status", params={"reference": reference}, headers=headers),
        lambda r: r.status_code == 200 and r.json()["wallet_credited"],
    )
    return reference


def place_order(stack: Stack, headers: dict[str, str], products: Sequence[dict[str, Any]]) -> dict[str, Any]:
    response = stack.client.post(
        "/v1/orders",
        json={
            "retailer": "woolworths",
            "items": [{"product_id": p["product_id"], "quantity": 1} for p in products],
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def order_of(stack: Stack, headers: dict[str, str], order_id: str) -> dict[str, Any]:
    response = stack.client.get(f"/v1/orders/{order_id}", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_for_status(
    stack: Stack, headers: dict[str, str], order_id: str, status: str, *, timeout: float = 20.0
) -> dict[str, Any]:
    return dict(
        wait_for(lambda: order_of(stack, headers, order_id), lambda o: o["status"] == status, timeout=timeout)
    )


def balance(stack: Stack, headers: dict[str, str]) -> dict[str, Any]:
    response = stack.client.get("/v1/wallet/balance", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Rows of one SQL query on the session database (to check what an API does not show)."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


@contextmanager
def extra_services(
    stack: Stack, names: Sequence[str], log_dir: Path, **settings: str
) -> Iterator[ServiceGroup]:
    """More processes of some services (free ports, other settings) beside the stack, reaching the rest of it.

    They share the stack's database and NATS stream, like replicas with their own configuration.
    """
    env = {**stack.services.env, **settings}
    group = start_services(env, names, log_dir, timeout=SERVICES_START_TIMEOUT)
    try:
        yield group
    finally:
        group.stop()
