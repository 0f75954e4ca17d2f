"""Load benchmark of order placement: `POST /v1/orders` through the gateway, and the saga's placed → queued.

By default it starts its own stack on the given servers (DATABASE_URL / REDIS_URL / NATS_URL) or the
embedded ones: a fresh `yummi_bench_<hex>` database, its own NATS stream and Redis prefix, the PayFast
simulator and the five services on free ports, all removed afterwards. Each simulated client is a shopper
funded once by a real top-up (checkout on the simulator, signed ITN, server confirmation). Then `--clients`
concurrent clients post orders of `--lines` lines for `--duration` seconds, and the script prints requests/s,
latency percentiles, errors, and the placed → queued time (order `created_at` → its `order.queued` event:
the debit round trip through NATS and payments) over a sample of the placed orders.

    .venv/bin/python bench/orders_load.py                          # own stack, 32 clients, 30 s
    .venv/bin/python bench/orders_load.py --duration 60 --clients 64
    .venv/bin/python bench/orders_load.py --rate 300                # open loop: 300 orders/s arrive
    .venv/bin/python bench/orders_load.py --gateway http://localhost:8000 --simulator http://127.0.0.1:8099

With `--gateway` the stack must already run with dev auth, an admin email `bench-admin@yummi.local` in
ADMIN_EMAILS (only when its catalog is empty), and payments pointed at the simulator given by `--simulator`
(PAYFAST_PROCESS_URL, PAYFAST_VALIDATE_URL, PAYFAST_VALID_HOSTS=127.0.0.1, and PAYFAST_MAX_AMOUNT_MINOR large
enough for the funding top-up). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402 - the bench folder is not a package
    Connection,
    CpuMeter,
    describe_speed,
    git_state,
    hotspots,
    load_average,
    machine_facts,
    machine_speed,
    percentile,
    run_async,
)

from yummi_devstack import SERVICE_NAMES, dev_token, drop_database, ensure_database, start_services
from yummi_devstack.infra import default_state_dir, free_port, repo_root, url_with_database
from yummi_devstack.processes import ServiceGroup
from yummi_devstack.stack import infra_for_run, migrate_all

ADMIN_EMAIL = "bench-admin@yummi.local"
FUNDING_MINOR = 50_000_000  # R500,000 per shopper: enough for every order of a long run
ROOT = repo_root()


@dataclass
class Sample:
    started: float
    seconds: float
    status: int
    client: int
    order_id: str | None = None


@dataclass
class Results:
    samples: list[Sample] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    placed_all: int = 0  # orders placed in the warm-up and the window


@dataclass
class SettledCpu:
    """CPU from the warm-up's start until no order waits for payment (the saga's deferred work counted)."""

    orders: int
    seconds: float
    cores: dict[str, float]
    settled: bool


def log(message: str) -> None:
    sys.stderr.write(f"bench | {message}\n")
    sys.stderr.flush()


# --- the stack ------------------------------------------------------------------------------------------


@dataclass
class OwnStack:
    gateway_url: str
    simulator_url: str
    services: ServiceGroup
    simulator: subprocess.Popen[bytes]
    database_url: str
    env: dict[str, str]


@contextlib.contextmanager
def own_stack(log_level: str, log_dir: Path) -> Iterator[OwnStack]:
    """Infrastructure (given or embedded), a fresh database, the simulator and the five services; cleanup."""
    env = {**os.environ}
    with (
        infra_for_run(env, default_state_dir(env), quiet=True),
        _services_on(env, log_level, log_dir) as stack,
    ):
        yield stack


@contextlib.contextmanager
def _services_on(env: dict[str, str], log_level: str, log_dir: Path) -> Iterator[OwnStack]:
    """A fresh database on the given servers, the simulator and the five services; cleanup."""
    tag = secrets.token_hex(4)
    database_url = url_with_database(env["DATABASE_URL"], f"yummi_bench_{tag}")
    sim_port = free_port()
    simulator_url = f"http://127.0.0.1:{sim_port}"
    env.update(
        {
            "DATABASE_URL": database_url,
            "NATS_STREAM": f"BENCH_{tag.upper()}_EVENTS",
            "NATS_SUBJECT_PREFIX": f"bench{tag}.events",
            "REDIS_KEY_PREFIX": f"bench{tag}:",
            "ENVIRONMENT": "test",
            "AUTH_DISABLE_VERIFICATION": "true",
            "ADMIN_EMAILS": ADMIN_EMAIL,
            "LOG_JSON": "true",  # as deployed (and as the load mix runs); the console renderer costs more
            "LOG_LEVEL": log_level,
            "PAYFAST_PROCESS_URL": f"{simulator_url}/eng/process",
            "PAYFAST_VALIDATE_URL": f"{simulator_url}/eng/query/validate",
            "PAYFAST_VALID_HOSTS": "127.0.0.1",
            "PAYFAST_MAX_AMOUNT_MINOR": str(FUNDING_MINOR),
            "RATE_LIMIT_PER_MINUTE": "10000000",
            "RATE_LIMIT_IP_PER_MINUTE": "10000000",
        }
    )
    for variable in ("GATEWAY", "CATALOG", "ORDERS", "PAYMENTS", "AI"):
        env.pop(f"{variable}_DATABASE_URL", None)
    ensure_database(database_url)
    simulator = None
    services = None
    try:
        log(f"migrating {database_url.rsplit('/', 1)[-1]} ...")
        migrate_all(env, ROOT)
        simulator_log = (log_dir / "simulator.log").open("w")
        simulator = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
            [sys.executable, "-m", "yummi_payments.simulator", "--port", str(sim_port)],
            stdout=simulator_log,
            stderr=simulator_log,
        )
        log("starting the services ...")
        services = start_services(env, SERVICE_NAMES, log_dir, timeout=240)
        wait_http(f"{simulator_url}/simulator/notifications")
        yield OwnStack(services.gateway_url, simulator_url, services, simulator, database_url, env)
    finally:
        if services is not None:
            services.stop()
        if simulator is not None:
            simulator.terminate()
            simulator.wait(10)
        drop_database(database_url)
        with contextlib.suppress(Exception):
            asyncio.run(_delete_stream(env["NATS_URL"], env["NATS_STREAM"]))


async def _delete_stream(nats_url: str, stream: str) -> None:
    import nats

    connection = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        await connection.jetstream().delete_stream(stream)
    finally:
        await connection.close()


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- preparing shoppers --------------------------------------------------------------------------------


def ensure_catalog(client: httpx.Client, tmp_dir: Path) -> None:
    """Import the sample catalog when the live catalog is empty."""
    page = client.get("/v1/catalog", params={"limit": 1}).json()
    if page.get("items"):
        return
    out = tmp_dir / "catalog.json"
    subprocess.run(  # noqa: S603 - this interpreter, the repo's generator
        [
            sys.executable,
            str(ROOT / "scripts/generate_sample_catalog.py"),
            "--count",
            "2000",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    response = client.post(
        "/v1/admin/catalog/import",
        content=out.read_bytes(),
        headers={
            "Authorization": f"Bearer {dev_token('bench_admin', ADMIN_EMAIL)}",
            "Content-Type": "application/json",
        },
    )
    response.raise_for_status()


def cheap_products(client: httpx.Client, count: int) -> list[dict[str, Any]]:
    items = client.get("/v1/catalog", params={"limit": 500, "available": "true"}).json()["items"]
    items = [i for i in items if i["retailer"] == "woolworths"]
    if len(items) < count:
        raise SystemExit(f"the catalog has fewer than {count} available woolworths products")
    return sorted(items, key=lambda i: i["price_minor"])[: max(count * 4, count)]


async def fund(client: httpx.AsyncClient, simulator_url: str, headers: dict[str, str], amount: int) -> None:
    """One real top-up: initiate, pay on the simulator's page (it posts the ITN), wait for the credit."""
    initiated = await client.post(
        "/v1/payments/payfast/initiate", json={"amount_minor": amount, "currency": "ZAR"}, headers=headers
    )
    initiated.raise_for_status()
    body = initiated.json()
    async with httpx.AsyncClient(timeout=30) as browser:
        page = await browser.post(body["action_url"], data=body["fields"])
        page.raise_for_status()
        pay_path = re.search(r'action="(/eng/process/[^"]+/pay)"', page.text)
        if not pay_path:
            raise RuntimeError("the simulator's checkout page has no Pay form")
        await browser.post(simulator_url + pay_path.group(1), data={"payment_status": "COMPLETE"})
    for _ in range(300):
        status = await client.get(
            "/v1/payments/payfast/status", params={"reference": body["reference"]}, headers=headers
        )
        if status.status_code == 200 and status.json()["wallet_credited"]:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"top-up {body['reference']} was not credited")


# --- the load ------------------------------------------------------------------------------------------


async def drive(
    gateway_url: str,
    *,
    users: list[dict[str, str]],
    products: list[dict[str, Any]],
    clients: int,
    lines: int,
    duration: float,
    warmup: float,
    seed: int,
    meter: CpuMeter,
    profile: dict[str, tuple[int, Path]],
    rate: float = 0.0,
) -> tuple[Results, dict[str, float]]:
    """`clients` loops posting orders until the deadline; what the measured window saw, and CPU cores used.

    With `rate` (open loop) orders arrive at that mean rate (Poisson) whatever the answers, and `clients`
    connections take them in turn: a latency counts from the arrival, so time waiting for a free client
    (the stack falling behind) is part of it.
    """
    results = Results()
    cores: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    begin = loop.time() + warmup
    end = begin + duration

    arrivals: asyncio.Queue[float | None] = asyncio.Queue()

    async def arrive() -> None:
        rng = random.Random(seed)  # noqa: S311 - load shape, not secrets
        due = loop.time()
        while due < end:
            await asyncio.sleep(max(0.0, due - loop.time()))
            arrivals.put_nowait(due)
            due += rng.expovariate(rate)
        for _ in range(clients):
            arrivals.put_nowait(None)

    async def next_order() -> float | None:
        if rate:
            return await arrivals.get()
        now = loop.time()
        return now if now < end else None

    async def one_client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)  # noqa: S311 - load shape, not secrets
        headers = {**users[index % len(users)], "Content-Type": "application/json"}
        conn = Connection(gateway_url)  # one keep-alive connection per client, like a phone
        try:
            while (now := await next_order()) is not None:
                chosen = rng.sample(products, lines)
                body = {
                    "retailer": "woolworths",
                    "items": [{"product_id": p["product_id"], "quantity": rng.randint(1, 3)} for p in chosen],
                }
                status, data = await conn.request("POST", "/v1/orders", headers, orjson.dumps(body))
                elapsed = loop.time() - now  # from the arrival: waiting for this client counts
                order_id = orjson.loads(data).get("id") if status == 201 else None
                if status == 0:
                    results.failures[data.decode(errors="replace")[:60]] += 1
                if status == 201:
                    results.placed_all += 1
                if now >= begin:
                    results.samples.append(Sample(now - begin, elapsed, status, index, order_id))
                    if status not in (0, 201):
                        results.failures[f"HTTP {status}"] += 1
        finally:
            conn.close()

    async def measure() -> None:
        await asyncio.sleep(max(0.0, begin - loop.time()))
        await asyncio.to_thread(meter.start)
        own_cpu = time.process_time()  # this process alone: the services are its children
        spies = start_profilers(profile, duration)
        await asyncio.sleep(max(0.0, end - loop.time()))
        cores["driver"] = (time.process_time() - own_cpu) / duration
        cores.update(await asyncio.to_thread(meter.stop))
        for spy in spies:
            await asyncio.to_thread(spy.wait, 60)

    feeders = [arrive()] if rate else []
    await asyncio.gather(measure(), *feeders, *(one_client(i) for i in range(clients)))
    return results, cores


def start_profilers(profile: dict[str, tuple[int, Path]], duration: float) -> list[subprocess.Popen[bytes]]:
    """py-spy on each (pid, output file) for the measured window: speedscope profiles, sampled at 100 Hz."""
    spy = Path(sys.executable).parent / "py-spy"
    if profile and not spy.exists():
        log("py-spy is not installed (it is in requirements-dev.txt): no profiles")
        return []
    return [
        subprocess.Popen(  # noqa: S603 - py-spy of this environment on our own children
            [
                str(spy),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(duration))),
                "--rate",
                "100",
                "--format",
                "speedscope",
                "--output",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, out in profile.values()
    ]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def saga_latencies(
    gateway_url: str, placed: list[tuple[str, dict[str, str]]], *, wait: float
) -> tuple[list[float], Counter[str]]:
    """placed → queued seconds of each sampled order, once none of them waits for payment any more."""
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:

        async def settled(order_id: str, headers: dict[str, str]) -> dict[str, Any]:
            deadline = time.monotonic() + wait
            while True:
                async with gate:
                    order = (await client.get(f"/v1/orders/{order_id}", headers=headers)).json()
                if order["status"] != "pending_payment" or time.monotonic() > deadline:
                    return dict(order)
                await asyncio.sleep(0.5)

        orders = await asyncio.gather(*(settled(oid, headers) for oid, headers in placed))
    for order in orders:
        outcomes[order["status"]] += 1
        queued = [e for e in order.get("events", []) if e["type"] == "order.queued"]
        if queued:
            placed_at = parse_time(order["created_at"])
            latencies.append((parse_time(queued[0]["created_at"]) - placed_at).total_seconds())
    return latencies, outcomes


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"p50 {percentile(ordered, 0.50):.1f}  p90 {percentile(ordered, 0.90):.1f}  "
        f"p99 {percentile(ordered, 0.99):.1f}  max {ordered[-1]:.1f}  mean {statistics.fmean(ordered):.1f}"
    )


async def wait_settled(database_url: str, within: float) -> bool:
    """Wait until no order of the stack waits for payment (read from its database); False on timeout."""
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM orders.orders WHERE status = 'pending_payment'"
            )
            if waiting == 0:
                return True
            await asyncio.sleep(0.1)
        return False
    finally:
        await conn.close()


async def saga_stages(database_url: str, order_ids: list[str]) -> dict[str, list[float]]:
    """Where the saga's time goes, from the stack's own database: placed → debited (orders relay, NATS, the
    payments consumer) and debited → queued (payments relay, NATS, the orders consumer), in seconds."""
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            """
            SELECT o.created_at AS placed, c.created_at AS debited, e.created_at AS queued
            FROM orders.orders o
            JOIN payments.order_charges c ON c.order_id = o.id
            JOIN orders.order_events e ON e.order_id = o.id AND e.type = 'order.queued'
            WHERE o.id = ANY($1::uuid[])
            """,
            order_ids,
        )
    finally:
        await conn.close()
    return {
        "placed -> debited": [(r["debited"] - r["placed"]).total_seconds() for r in rows],
        "debited -> queued": [(r["queued"] - r["debited"]).total_seconds() for r in rows],
    }


def report(
    results: Results,
    cores: dict[str, float],
    latencies: list[float],
    outcomes: Counter[str],
    args: Any,
    load_before: str,
    profiles: dict[str, Path],
    stages: dict[str, list[float]],
    settled: SettledCpu | None = None,
) -> None:
    window = args.duration
    ok = [s for s in results.samples if s.status == 201]
    facts = machine_facts()
    print()
    print(
        f"machine: {facts['nproc']} x {facts['cpu_model']}, {facts['ram_gib']} GiB RAM, "
        f"Python {facts['python']}"
    )
    print(describe_speed(args.speed))
    print(f"code: {git_state(ROOT)}; load average before: {load_before}, after: {load_average()}")
    print(
        f"POST /v1/orders: {args.clients} clients"
        + (f", open loop at {args.rate:g} orders/s" if args.rate else "")
        + f", {args.lines} lines, {window:.0f} s measured "
        f"after {args.warmup:.0f} s warm-up"
    )
    print(f"  requests      {len(results.samples)}  ({len(results.samples) / window:.1f}/s)")
    print(f"  placed (201)  {len(ok)}  ({len(ok) / window:.1f} orders/s)")
    print(f"  errors        {len(results.samples) - len(ok)}  {dict(results.failures) or ''}")
    if ok:
        print(f"  latency ms    {_ms([s.seconds * 1000 for s in ok])}")
    print(f"placed -> queued over {sum(outcomes.values())} sampled orders: {dict(outcomes)}")
    if latencies:
        print(f"  ms            {_ms([x * 1000 for x in latencies])}")
    for stage, values in stages.items():
        if values:
            print(f"  {stage}: ms  {_ms([x * 1000 for x in values])}")
    if cores:
        used = ", ".join(
            f"{label} {value:.2f}" for label, value in sorted(cores.items(), key=lambda kv: -kv[1])
        )
        print(f"CPU cores used in the window: {used}")
        ours = {k: v for k, v in cores.items() if not k.startswith("machine")}
        if ok:
            # CPU per order hardly depends on what else runs on the machine: the steadiest figure here
            per_order = {k: v * window * 1000 / len(ok) for k, v in ours.items()}
            stack = sum(v for k, v in per_order.items() if k != "driver")
            shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_order.items(), key=lambda kv: -kv[1]))
            print(f"CPU ms per placed order: {shown}; stack without the driver {stack:.2f}")
            capacity = facts["nproc"] * 1000 / stack
            print(f"  => {facts['nproc']} cores could place at most ~{capacity:.0f} orders/s")
    if settled is not None and settled.orders:
        per_order = {
            k: v * settled.seconds * 1000 / settled.orders
            for k, v in settled.cores.items()
            if not k.startswith("machine") and k != "driver"
        }
        shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_order.items(), key=lambda kv: -kv[1]))
        state = "every order settled" if settled.settled else "NOT settled in time"
        print(
            f"CPU ms per order over warm-up + window + saga drain ({settled.orders} orders, "
            f"{settled.seconds:.1f} s, {state}): {shown}; stack {sum(per_order.values()):.2f}"
        )
    for label, path in profiles.items():
        if path.exists():
            print(f"hot spots of {label} (share of samples, self time):")
            for frame, share in hotspots(path, 12)["self"]:
                print(f"  {share * 100:5.1f}%  {frame}")


async def bench(
    gateway_url: str,
    simulator_url: str,
    args: Any,
    meter: CpuMeter,
    profile: dict[str, tuple[int, Path]],
    database_url: str | None = None,
) -> None:
    with httpx.Client(base_url=gateway_url, timeout=60) as client, tempfile.TemporaryDirectory() as tmp:
        ensure_catalog(client, Path(tmp))
        products = cheap_products(client, args.lines)
    users = [
        {"Authorization": f"Bearer {dev_token(f'bench_{args.seed}_{i}', f'bench{i}@yummi.local')}"}
        for i in range(args.users)
    ]
    log(f"funding {len(users)} shoppers through the simulator ...")
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as client:
        gate = asyncio.Semaphore(8)

        async def funded(headers: dict[str, str]) -> None:
            async with gate:
                await fund(client, simulator_url, headers, args.funding)

        await asyncio.gather(*(funded(h) for h in users))
    load_before = load_average()
    log(f"driving {args.clients} clients for {args.warmup:.0f}+{args.duration:.0f} s ...")
    whole = CpuMeter(meter.pids, by_name=meter.by_name) if database_url and meter.pids else None
    if whole is not None:
        await asyncio.to_thread(whole.start)
    whole_started = time.monotonic()
    results, cores = await drive(
        gateway_url,
        users=users,
        products=products,
        clients=args.clients,
        lines=args.lines,
        duration=args.duration,
        warmup=args.warmup,
        seed=args.seed,
        meter=meter,
        profile=profile,
        rate=args.rate,
    )
    settled = None
    if whole is not None and database_url:
        log("waiting for the saga of every placed order ...")
        done = await wait_settled(database_url, args.settle_seconds)
        seconds = time.monotonic() - whole_started
        settled = SettledCpu(results.placed_all, seconds, await asyncio.to_thread(whole.stop), done)
    placed = [(s.order_id, users[s.client % len(users)]) for s in results.samples if s.order_id]
    sample = random.Random(args.seed).sample(placed, min(args.latency_sample, len(placed)))  # noqa: S311
    log(f"reading the saga of {len(sample)} orders ...")
    latencies, outcomes = await saga_latencies(gateway_url, sample, wait=args.settle_seconds)
    profiles = {label: out for label, (_, out) in profile.items()}
    stages = await saga_stages(database_url, [oid for oid, _ in sample]) if database_url else {}
    report(results, cores, latencies, outcomes, args, load_before, profiles, stages, settled)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gateway", help="use this running stack instead of starting one")
    parser.add_argument("--simulator", help="with --gateway: the PayFast simulator its payments service uses")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds (default 30)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (default 3)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="open loop: orders arriving per second (default: closed loop)"
    )
    parser.add_argument(
        "--users", type=int, default=32, help="funded shoppers the clients share (default 32)"
    )
    parser.add_argument("--lines", type=int, default=5, help="lines per order (default 5)")
    parser.add_argument("--funding", type=int, default=FUNDING_MINOR, help="each shopper's top-up, in cents")
    parser.add_argument("--latency-sample", type=int, default=2000, help="orders whose saga is timed")
    parser.add_argument("--settle-seconds", type=float, default=120.0, help="how long to wait for the saga")
    parser.add_argument("--log-level", default="INFO", help="the services' LOG_LEVEL when started here")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy the services (own stack only) during the window; speedscope files go to DIR",
    )
    args = parser.parse_args(argv)
    args.speed = machine_speed()  # before anything of the run starts: this machine, today
    if args.gateway:
        if not args.simulator:
            parser.error("--gateway needs --simulator (the shoppers are funded through it)")
        run_async(bench(args.gateway, args.simulator, args, CpuMeter({}), {}))
        return 0
    log_dir = Path(tempfile.mkdtemp(prefix="yummi-bench-logs-"))
    with own_stack(args.log_level, log_dir) as stack:
        log(f"stack up: {stack.gateway_url} (service logs in {log_dir})")
        pids = {name: child.pid for name, child in stack.services.processes.items()}
        database = stack.database_url.rsplit("/", 1)[-1]
        meter = CpuMeter(pids, by_name={"postgres": ("postgres", database)})
        profile: dict[str, tuple[int, Path]] = {}
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            profile = {name: (pid, args.profile / f"{name}.speedscope.json") for name, pid in pids.items()}
        run_async(bench(stack.gateway_url, stack.simulator_url, args, meter, profile, stack.database_url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
