"""The realistic request mix against the gateway, and the price of the gateway hop against a direct app.

Without `--gateway`, it starts its own stack like `make run` (the given DATABASE_URL/REDIS_URL/NATS_URL, else
the embedded servers): a fresh database `yummi_loadmix_<hex>` with the 3,000-item sample catalog, its own NATS
stream and Redis key prefix, rate limits raised out of the way (RATE_LIMIT_*=1000000), PAYFAST_VALIDATE_URL
pointing at an always-VALID responder of its own (bench/common.py), and LOG_JSON=true as in production.
With `--gateway URL` it targets a running stack instead (which must accept dev tokens, have its rate limits
raised and confirm the ITNs it is sent: see docs/performance.md).

Phases, each with a warm-up that is not recorded:
1. mix: 70% catalog reads (random page, `q` search, one product), 15% `/v1/me` + `/v1/wallet/balance`,
   10% `POST /v1/orders` (Idempotency-Key, pre-funded users: debited and queued), 5% top-ups (initiate, then
   the ITN PayFast would send, signed with the payments package's own `sign`, posted to the gateway);
2. catalog: the catalog part of the mix alone, through the gateway;
3. direct: the same catalog load against bench/direct_app.py (same SQL, same JSON, one process, no hop);
   catalog and direct take turns in `--rounds` slices so both meet the same background load.
The report prints req/s, p50/p95/p99 per route, unexpected answers, CPU per process and per request, the
saga's state after the mix, and catalog-through-gateway throughput / direct throughput (and the same ratio
of CPU per request, which barely depends on what else runs on the machine).

    python bench/load_mix.py --duration 30 --concurrency 64            # what `make bench` runs
    python bench/load_mix.py --gateway http://127.0.0.1:8000 --database-url postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import importlib.util
import json
import math
import multiprocessing
import os
import queue as queue_module
import random
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402 - the bench folder is not a package
    REQUEST_TIMEOUT,
    Connection,
    CpuMeter,
    RouteStats,
    describe_speed,
    format_table,
    git_state,
    hotspots,
    layers,
    load_average,
    machine_facts,
    machine_speed,
    run_async,
    summarise,
)

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
HIGH_LIMIT = "1000000"
PAGE_LIMIT = 20  # a phone screen or two of products
PREFUND_MINOR = 900_000  # R9,000 each: below PAYFAST_MAX_AMOUNT_MINOR's default (R10,000)
TOPUP_MINOR = 5_000  # R50 per top-up during the run
MAX_ORDER_PRICE_MINOR = 10_000  # order cheap products so the pre-funded wallets last the run

# Operation weights in percent. A top-up is one operation of two requests (initiate, then the ITN).
MIX: dict[str, float] = {
    "catalog_random": 28,
    "catalog_search": 24,
    "product": 18,
    "me": 7.5,
    "wallet": 7.5,
    "order": 10,
    "topup": 5,
}
CATALOG_ONLY: dict[str, float] = {"catalog_random": 28, "catalog_search": 24, "product": 18}
ROUTE = {
    "catalog_random": "GET /v1/catalog?random=true",
    "catalog_search": "GET /v1/catalog?q=",
    "product": "GET /v1/products/{id}",
    "me": "GET /v1/me",
    "wallet": "GET /v1/wallet/balance",
    "order": "POST /v1/orders",
    "initiate": "POST /v1/payments/payfast/initiate",
    "itn": "POST /payments/payfast/itn",
}


def say(message: str) -> None:
    sys.stdout.write(f"bench | {message}\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------------------
# What the driver needs to know (picklable, handed to each worker process)


@dataclass
class Fixture:
    product_ids: list[str]  # UUIDs and retailer product_ids, for GET /v1/products/{id}
    order_products: list[str]  # cheap available products for orders
    search_terms: list[str]
    tokens: list[str]  # one dev token per pre-funded user
    merchant_id: str
    passphrase: str | None


@dataclass
class PhasePlan:
    name: str
    target: str
    weights: dict[str, float]
    concurrency: int
    rate: float  # 0: closed loop (each connection sends its next request when the last one answered)
    start_at: float  # time.time() of the warm-up's start, the same for every worker
    warmup: float
    duration: float
    seed: int
    client: str = "raw"  # raw: Connection; httpx: HttpxConnection


@dataclass
class WorkerResult:
    stats: dict[str, RouteStats] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    late_starts: int = 0  # open loop: arrivals started over 1 ms late (driver lag or no free connection)


# ---------------------------------------------------------------------------------------------------------
# The driver: one asyncio loop per worker process, one keep-alive connection per concurrent request


class HttpxConnection:
    """The same interface over an httpx.AsyncClient of its own (`--client httpx`, for comparison)."""

    def __init__(self, base_url: str) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._client = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT)

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        try:
            response = await self._client.request(method, target, headers=headers, content=body or None)
        except httpx.HTTPError as exc:
            return 0, repr(exc).encode()
        return response.status_code, response.content

    def close(self) -> None:
        asyncio.get_running_loop().create_task(self._client.aclose())


JSON_HEADERS = {"Content-Type": "application/json"}
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


class Driver:
    def __init__(self, plan: PhasePlan, fixture: Fixture, rng: random.Random) -> None:
        self.plan = plan
        self.fx = fixture
        self.rng = rng
        self.result = WorkerResult()
        self.measure_from = plan.start_at + plan.warmup
        self.measure_until = self.measure_from + plan.duration
        self.ops = list(plan.weights)
        self.cum_weights = []
        total = 0.0
        for op in self.ops:
            total += plan.weights[op]
            self.cum_weights.append(total)
        from yummi_payments.domain import payfast

        self.sign = payfast.sign

    def connection(self) -> Connection | HttpxConnection:
        return (
            HttpxConnection(self.plan.target) if self.plan.client == "httpx" else Connection(self.plan.target)
        )

    async def _call(
        self,
        conn: Connection | HttpxConnection,
        op: str,
        method: str,
        target: str,
        expected: tuple[int, ...],
        *,
        scheduled: float | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> tuple[int, bytes]:
        started_wall = time.time() if scheduled is None else scheduled
        started = time.perf_counter() - (time.time() - started_wall)
        status, data = await conn.request(method, target, headers or {}, body)
        if self.measure_from <= started_wall < self.measure_until:
            stats = self.result.stats.setdefault(ROUTE[op], RouteStats())
            ok = status in expected
            sample = "" if ok else f"{status}: {data[:200].decode(errors='replace')}"
            stats.record((time.perf_counter() - started) * 1000.0, status, ok, sample)
        return status, data

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.rng.choice(self.fx.tokens)}"}

    async def run_op(
        self, conn: Connection | HttpxConnection, op: str, scheduled: float | None = None
    ) -> None:
        rng = self.rng
        if op == "catalog_random":
            target = f"/v1/catalog?random=true&limit={PAGE_LIMIT}"
            await self._call(conn, op, "GET", target, (200,), scheduled=scheduled)
        elif op == "catalog_search":
            target = f"/v1/catalog?{urlencode({'q': rng.choice(self.fx.search_terms), 'limit': PAGE_LIMIT})}"
            await self._call(conn, op, "GET", target, (200,), scheduled=scheduled)
        elif op == "product":
            target = f"/v1/products/{quote(rng.choice(self.fx.product_ids), safe='')}"
            await self._call(conn, op, "GET", target, (200,), scheduled=scheduled)
        elif op == "me":
            await self._call(conn, op, "GET", "/v1/me", (200,), scheduled=scheduled, headers=self._auth())
        elif op == "wallet":
            await self._call(
                conn, op, "GET", "/v1/wallet/balance", (200,), scheduled=scheduled, headers=self._auth()
            )
        elif op == "order":
            lines = rng.sample(self.fx.order_products, rng.randint(1, 3))
            body = {
                "retailer": "woolworths",
                "items": [{"product_id": p, "quantity": rng.randint(1, 2)} for p in lines],
                "notes": "bench",
            }
            headers = {**self._auth(), **JSON_HEADERS, "Idempotency-Key": str(uuid.uuid4())}
            await self._call(
                conn,
                op,
                "POST",
                "/v1/orders",
                (201,),
                scheduled=scheduled,
                headers=headers,
                body=orjson.dumps(body),
            )
        elif op == "topup":
            await self.top_up(conn, scheduled)
        else:  # pragma: no cover - weights name only the ops above
            raise ValueError(op)

    async def top_up(self, conn: Connection | HttpxConnection, scheduled: float | None) -> None:
        """Initiate, then post the ITN PayFast would send for it (signed with the payments package's sign)."""
        headers = {**self._auth(), **JSON_HEADERS, "Idempotency-Key": str(uuid.uuid4())}
        body = orjson.dumps({"amount_minor": TOPUP_MINOR, "currency": "ZAR"})
        status, data = await self._call(
            conn, "initiate", "POST", "/v1/payments/payfast/initiate", (200, 201),
            scheduled=scheduled, headers=headers, body=body,
        )  # fmt: skip
        if status not in (200, 201):
            return
        form = itn_form(
            orjson.loads(data)["fields"], self.fx.merchant_id, self.fx.passphrase, self.sign, self.rng
        )
        await self._call(
            conn, "itn", "POST", "/payments/payfast/itn", (200,), headers=FORM_HEADERS, body=form
        )

    def pick(self) -> str:
        return self.ops[bisect.bisect_right(self.cum_weights, self.rng.random() * self.cum_weights[-1])]

    async def closed_loop(self) -> None:
        async def user() -> None:
            conn = self.connection()
            try:
                while time.time() < self.measure_until:
                    await self.run_op(conn, self.pick())
            finally:
                conn.close()

        await asyncio.gather(*(user() for _ in range(self.plan.concurrency)))

    async def open_loop(self) -> None:
        """Poisson arrivals at `rate`; latency counts from the arrival, so waiting for a connection shows."""
        idle: asyncio.Queue[Connection | HttpxConnection] = asyncio.Queue()
        for _ in range(self.plan.concurrency):
            idle.put_nowait(self.connection())
        tasks: set[asyncio.Task[None]] = set()
        next_at = time.time()

        async def one(op: str, scheduled: float) -> None:
            conn = await idle.get()
            try:
                if time.time() - scheduled > 0.001 and scheduled >= self.measure_from:
                    self.result.late_starts += 1
                await self.run_op(conn, op, scheduled)
            finally:
                idle.put_nowait(conn)

        while next_at < self.measure_until:
            delay = next_at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(self.pick(), next_at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += self.rng.expovariate(self.plan.rate)
        if tasks:
            await asyncio.gather(*tasks)
        while not idle.empty():
            idle.get_nowait().close()


def itn_form(
    fields: dict[str, str], merchant_id: str, passphrase: str | None, sign: Any, rng: random.Random
) -> bytes:
    """The form-encoded COMPLETE ITN for a checkout, with PayFast's field set, in PayFast's order."""
    gross = int(round(float(fields["amount"]) * 100))
    fee = -(gross * 35 // 1000 + 200)
    pairs = [
        ("m_payment_id", fields["m_payment_id"]),
        ("pf_payment_id", str(rng.randint(1_000_000, 9_999_999))),
        ("payment_status", "COMPLETE"),
        ("item_name", fields.get("item_name", "")),
        ("item_description", fields.get("item_description", "")),
        ("amount_gross", _rand(gross)),
        ("amount_fee", _rand(fee)),
        ("amount_net", _rand(gross + fee)),
        *[(f"custom_str{i}", "") for i in range(1, 6)],
        *[(f"custom_int{i}", "") for i in range(1, 6)],
        ("name_first", "Bench"),
        ("name_last", "Shopper"),
        ("email_address", fields.get("email_address", "bench@bench.example")),
        ("merchant_id", merchant_id),
    ]
    return urlencode([*pairs, ("signature", sign(pairs, passphrase))]).encode()


def _rand(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100}.{abs(minor) % 100:02d}"


async def _drive(plan: PhasePlan, fixture: Fixture) -> WorkerResult:
    driver = Driver(plan, fixture, random.Random(plan.seed))  # noqa: S311 - load, not secrets
    delay = plan.start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    cpu_task = asyncio.create_task(_cpu_at(driver.measure_from))
    if plan.rate > 0:
        await driver.open_loop()
    else:
        await driver.closed_loop()
    cpu_from, wall_from = await cpu_task
    # CPU per measured second (requests started in the window may finish a little after it)
    driver.result.cpu_seconds = (
        (time.process_time() - cpu_from) / max(time.time() - wall_from, 1e-9) * plan.duration
    )
    return driver.result


async def _cpu_at(moment: float) -> tuple[float, float]:
    await asyncio.sleep(max(moment - time.time(), 0))
    return time.process_time(), time.time()


def worker_main(plan: PhasePlan, fixture: Fixture, queue: Any) -> None:
    try:
        queue.put(("ok", run_async(_drive(plan, fixture))))
    except BaseException as exc:  # reported by the orchestrator
        queue.put(("error", repr(exc)))


def run_phase(
    plan: PhasePlan,
    fixture: Fixture,
    workers: int,
    meter: CpuMeter | None,
    profile: dict[str, int] | None,
    profile_dir: Path | None,
    native: bool = False,
) -> dict[str, Any]:
    """Run one phase across `workers` processes; aggregate their stats."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = []
    for i in range(workers):
        part = PhasePlan(
            **{
                **plan.__dict__,
                "concurrency": max(1, plan.concurrency // workers),
                "rate": plan.rate / workers,
                "seed": plan.seed * 1000 + i,
            }
        )
        proc = ctx.Process(target=worker_main, args=(part, fixture, queue), name=f"bench-driver-{i}")
        proc.start()
        procs.append(proc)
    load = f"{plan.rate:.0f} req/s open loop" if plan.rate else f"closed loop, {plan.concurrency} connections"
    say(
        f"phase {plan.name}: {plan.warmup:.0f}s warm-up, then {plan.duration:.0f}s measured ({load}, "
        f"{workers} driver process{'es' if workers > 1 else ''}) against {plan.target}"
    )
    spies = []
    cpu: dict[str, float] = {}
    measure_from = plan.start_at + plan.warmup
    time.sleep(max(measure_from - time.time(), 0))
    load_at_start = load_average()
    if meter is not None:
        meter.start()
    if profile and profile_dir is not None:
        spies = _start_profilers(profile, profile_dir, plan, native)
    time.sleep(max(measure_from + plan.duration - time.time(), 0))
    if meter is not None:
        cpu = meter.stop()
    load_at_end = load_average()
    results: list[WorkerResult] = []
    deadline = time.monotonic() + 120
    while len(results) < len(procs):
        try:
            status, payload = queue.get(timeout=1.0)
        except queue_module.Empty:
            if any(p.exitcode not in (None, 0) for p in procs) or time.monotonic() > deadline:
                raise RuntimeError(
                    "a driver process died without a result (see its traceback above)"
                ) from None
            continue
        if status != "ok":
            raise RuntimeError(f"a driver process failed: {payload}")
        results.append(payload)
    for proc in procs:
        proc.join(10)
    for spy in spies:
        spy.wait(60)
    stats: dict[str, RouteStats] = {}
    for result in results:
        for route, st in result.stats.items():
            stats.setdefault(route, RouteStats()).merge(st)
    driver_seconds = sum(r.cpu_seconds for r in results)
    cpu_seconds = {label: cores * plan.duration for label, cores in cpu.items()}
    if cpu:
        cpu_seconds["load generator (driver processes)"] = driver_seconds
    return {
        "stats": stats,
        "duration": plan.duration,
        "cpu_seconds": cpu_seconds,
        "driver_seconds": driver_seconds,
        "late_starts": sum(r.late_starts for r in results),
        "load_average": (load_at_start, load_at_end),
    }


def combine(name: str, target: str, slices: list[dict[str, Any]]) -> dict[str, Any]:
    """One phase's outcome from its measured slices: merged latencies, req/s over their summed time, CPU."""
    stats: dict[str, RouteStats] = {}
    cpu_seconds: dict[str, float] = {}
    for part in slices:
        for route, st in part["stats"].items():
            stats.setdefault(route, RouteStats()).merge(st)
        for label, seconds in part["cpu_seconds"].items():
            cpu_seconds[label] = cpu_seconds.get(label, 0.0) + seconds
    duration = sum(part["duration"] for part in slices)
    rows = summarise(stats, duration)
    requests = rows[-1]["count"] or 1
    cores = {label: seconds / duration for label, seconds in cpu_seconds.items()}
    per_request: dict[str, float] = {}
    if cores:
        ours = [k for k in cores if not k.startswith(("machine", "postgres (all"))]
        cores["not ours (other work on the machine)"] = max(
            cores["machine busy"] - sum(cores[k] for k in ours), 0
        )
        # CPU per request barely depends on what else runs on the machine: the steadiest price of a path
        per_request = {k: cpu_seconds[k] * 1000 / requests for k in ours if cpu_seconds[k] > 0}
        stack = [k for k in ours if not k.startswith(("load generator", "nats", "redis"))]
        per_request["stack total (excl. load generator, NATS, Redis)"] = sum(
            per_request.get(k, 0) for k in stack
        )
    return {
        "phase": name,
        "target": target,
        "seconds": duration,
        "slices": len(slices),
        "rows": rows,
        "errors": {route: st.error_samples for route, st in stats.items() if st.error_samples},
        "driver_cores": sum(part["driver_seconds"] for part in slices) / duration,
        "late_starts": sum(part["late_starts"] for part in slices),
        "cpu_cores": cores,
        "cpu_ms_per_request": per_request,
        "load_average": [part["load_average"] for part in slices],
    }


def _start_profilers(
    pids: dict[str, int], out_dir: Path, plan: PhasePlan, native: bool
) -> list[subprocess.Popen[bytes]]:
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        say("py-spy is not installed in this environment (.venv/bin/uv pip install py-spy): no profiles")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, pid in pids.items():
        out = out_dir / f"{plan.name}-{name}.speedscope.json"
        procs.append(
            subprocess.Popen(  # noqa: S603 - our own tool on our own children
                [
                    str(spy),
                    "record",
                    "--format",
                    "speedscope",
                    "--subprocesses",
                    "--rate",
                    "100",
                    "--duration",
                    str(int(plan.duration) - 1),
                    "--pid",
                    str(pid),
                    "--output",
                    str(out),
                    *(["--native"] if native else ["--nonblocking"]),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return procs


# ---------------------------------------------------------------------------------------------------------
# Setting the scene: a stack of our own (or the given one), users with money, what to ask for


@dataclass
class Scene:
    gateway: str
    database_url: str | None
    pids: dict[str, int] = field(default_factory=dict)
    processes: list[Any] = field(default_factory=list)  # stopped in reverse at the end
    cleanups: list[Any] = field(default_factory=list)
    log_dir: Path | None = None
    settings: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:  # one failed cleanup must not skip the others
                say(f"cleanup failed: {exc!r}")
        self.cleanups.clear()


def _free_port() -> int:
    from yummi_devstack.infra import free_port

    return int(free_port())


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s")
        time.sleep(0.2)


def _spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)  # noqa: S603
    log.close()
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_own_stack(args: argparse.Namespace, scene_log: Path) -> Scene:
    """Infrastructure (given or embedded), a fresh database with the sample catalog, the five services."""
    from yummi_devstack.infra import (
        default_state_dir,
        drop_database,
        ensure_database,
        url_with_database,
    )
    from yummi_devstack.processes import ChildProcess, executable, run_step, start_services
    from yummi_devstack.stack import infra_for_run, load_env, seed_sample_catalog

    env = load_env(ROOT)
    state_dir = default_state_dir(env)
    scene = Scene(gateway="", database_url=None, log_dir=scene_log)
    try:
        infra = contextlib.ExitStack()
        infra.enter_context(infra_for_run(env, state_dir, quiet=True))
        scene.cleanups.append(infra.close)
        token = secrets.token_hex(4)
        database_url = url_with_database(env["DATABASE_URL"], f"yummi_loadmix_{token}")
        ensure_database(database_url)
        if not args.keep_database:
            scene.cleanups.append(lambda: drop_database(database_url))
        scene.database_url = database_url
        responder_port = _free_port()
        for variable in ("GATEWAY", "CATALOG", "ORDERS", "PAYMENTS", "AI"):
            env.pop(f"{variable}_DATABASE_URL", None)
        settings = {
            "DATABASE_URL": database_url,
            "NATS_STREAM": f"LOADMIX{token.upper()}_EVENTS",
            "NATS_SUBJECT_PREFIX": f"loadmix{token}.events",
            "REDIS_KEY_PREFIX": f"loadmix{token}:",
            "ENVIRONMENT": "dev",
            "AUTH_DISABLE_VERIFICATION": "true",
            "LOG_JSON": "true",
            "LOG_LEVEL": args.log_level,
            "RATE_LIMIT_PER_MINUTE": HIGH_LIMIT,
            "RATE_LIMIT_IP_PER_MINUTE": HIGH_LIMIT,
            "RATE_LIMIT_AI_PER_MINUTE": HIGH_LIMIT,
            "PAYFAST_VALIDATE_URL": f"http://127.0.0.1:{responder_port}/eng/query/validate",
            "PAYFAST_VALID_HOSTS": "127.0.0.1",
            "PAYFAST_MERCHANT_ID": "",
            "PAYFAST_MERCHANT_KEY": "",
            "ADMIN_EMAILS": "admin@bench.example",
            "RUNNER_EMAILS": "runner@bench.example",
            "CATALOG_STORE_DIR": str(scene_log / "catalog-store"),
        }
        for name in ("PAYFAST_MERCHANT_ID", "PAYFAST_MERCHANT_KEY", "PAYFAST_PASSPHRASE"):
            env.pop(name, None)  # the public sandbox account, as in dev
        env.update({k: v for k, v in settings.items() if v != ""})
        scene.settings = {k: v for k, v in settings.items() if v != ""}
        scene.cleanups.append(lambda: _forget_events_and_keys(env))
        say(
            f"database {database_url.rsplit('/', 1)[-1]}: migrating the five services and seeding the catalog"
        )
        for service in ("gateway", "catalog", "orders", "payments", "ai"):
            run_step(
                f"{service}:migrate", [executable(f"yummi-{service}"), "migrate"], env, cwd=ROOT, echo=False
            )
        seed_sample_catalog(env, ROOT)

        responder = _spawn(
            [sys.executable, str(BENCH_DIR / "common.py"), "valid-responder", "--port", str(responder_port)],
            scene_log / "valid-responder.log",
        )
        scene.cleanups.append(lambda: _stop(responder))

        backends = ["catalog", "orders", "payments", "ai"]
        names = backends if args.gateway_workers > 1 else [*backends, "gateway"]
        say(f"starting {', '.join(names)} (logs in {scene_log})")
        group = start_services(env, names, scene_log, free_ports=True, echo=False, cwd=ROOT, timeout=240)
        scene.cleanups.append(group.stop)
        env.update(group.env)
        for name, child in group.processes.items():
            scene.pids[name] = child.pid
        if args.gateway_workers > 1:
            port = _free_port()
            env["GATEWAY_PORT"] = str(port)
            argv = [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "common:gateway_app",
                "--app-dir",
                str(BENCH_DIR),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.gateway_workers),
                "--no-access-log",
                "--no-server-header",
                "--log-level",
                "warning",
                "--lifespan",
                "on",
            ]
            if importlib.util.find_spec("uvloop"):
                argv += ["--loop", "uvloop"]
            gateway = ChildProcess(
                "gateway", argv, env, cwd=ROOT, echo=False, log_path=scene_log / "gateway.log"
            )
            scene.cleanups.append(lambda: gateway.signal_group(15) or gateway.wait(15))
            scene.pids["gateway"] = gateway.pid
            scene.gateway = f"http://127.0.0.1:{port}"
            _wait_http(f"{scene.gateway}/v1/health", 120)
        else:
            scene.gateway = group.gateway_url
        return scene
    except BaseException:
        scene.close()
        raise


def _forget_events_and_keys(env: dict[str, str]) -> None:
    """Delete the run's NATS stream and Redis keys (the database is dropped separately)."""

    async def forget() -> None:
        import nats
        from redis.asyncio import Redis

        if env.get("NATS_URL"):
            connection = await nats.connect(env["NATS_URL"], connect_timeout=5, max_reconnect_attempts=0)
            try:
                await connection.jetstream().delete_stream(env["NATS_STREAM"])
            except Exception:  # noqa: S110 - never created is fine
                pass
            finally:
                await connection.close()
        if env.get("REDIS_URL"):
            client = Redis.from_url(env["REDIS_URL"])
            try:
                keys = [
                    key async for key in client.scan_iter(match=f"{env['REDIS_KEY_PREFIX']}*", count=1000)
                ]
                for start in range(0, len(keys), 1000):
                    await client.delete(*keys[start : start + 1000])
            finally:
                await client.aclose()

    asyncio.run(forget())


def start_direct_app(database_url: str, log_dir: Path, scene: Scene) -> str:
    port = _free_port()
    proc = _spawn(
        [
            sys.executable,
            str(BENCH_DIR / "direct_app.py"),
            "--database-url",
            database_url,
            "--port",
            str(port),
        ],
        log_dir / "direct-app.log",
    )
    scene.cleanups.append(lambda: _stop(proc))
    url = f"http://127.0.0.1:{port}"
    _wait_http(f"{url}/healthz", 60, proc)
    scene.pids["direct app"] = proc.pid
    return url


async def prepare_fixture(gateway: str, users: int, seed: int) -> Fixture:
    """Read the catalog through the gateway, create and pre-fund the users, pick search terms."""
    from yummi_devstack.tokens import dev_token
    from yummi_payments.config import SANDBOX_MERCHANT_ID, SANDBOX_PASSPHRASE
    from yummi_payments.domain import payfast

    rng = random.Random(seed)  # noqa: S311 - load, not secrets
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=gateway, timeout=60.0, limits=limits) as client:
        products: list[dict[str, Any]] = []
        cursor = None
        while len(products) < 3000:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            response = await client.get("/v1/catalog", params=params)
            response.raise_for_status()
            page = response.json()
            products += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        if not products:
            raise RuntimeError("the catalog is empty: seed it first (make run seeds the sample catalog)")
        product_ids = [p["id"] for p in products] + [p["product_id"] for p in products]
        cheap = [
            p["product_id"] for p in products if p["available"] and p["price_minor"] <= MAX_ORDER_PRICE_MINOR
        ]
        search_terms = _search_terms([p["title"] for p in products], rng)

        tokens = [dev_token(f"bench_user_{i}", f"bench{i}@bench.example") for i in range(users)]
        merchant_id = os.environ.get("PAYFAST_MERCHANT_ID") or SANDBOX_MERCHANT_ID
        passphrase = os.environ.get("PAYFAST_PASSPHRASE", SANDBOX_PASSPHRASE) or None
        slots = asyncio.Semaphore(16)

        async def fund(token: str) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            async with slots:
                (await client.get("/v1/me", headers=headers)).raise_for_status()
                initiated = await client.post(
                    "/v1/payments/payfast/initiate",
                    headers=headers,
                    json={"amount_minor": PREFUND_MINOR, "currency": "ZAR"},
                )
                if initiated.status_code not in (200, 201):
                    raise RuntimeError(f"initiate answered {initiated.status_code}: {initiated.text[:300]}")
                form = itn_form(initiated.json()["fields"], merchant_id, passphrase, payfast.sign, rng)
                itn = await client.post(
                    "/payments/payfast/itn",
                    content=form,
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                if itn.status_code != 200:
                    raise RuntimeError(
                        f"the ITN answered {itn.status_code}: {itn.text[:300]} (does the stack's "
                        "PAYFAST_VALIDATE_URL confirm it, and PAYFAST_VALID_HOSTS include this address?)"
                    )

        started = time.monotonic()
        await asyncio.gather(*(fund(token) for token in tokens))

        async def credited(token: str) -> bool:
            async with slots:
                wallet = await client.get("/v1/wallet/balance", headers={"Authorization": f"Bearer {token}"})
            return wallet.status_code == 200 and wallet.json()["balance_minor"] >= PREFUND_MINOR

        pending = list(tokens)
        deadline = time.monotonic() + 120
        while pending:
            done = await asyncio.gather(*(credited(token) for token in pending))
            pending = [token for token, ok in zip(pending, done, strict=True) if not ok]
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} wallets were not credited within 120s")
            if pending:
                await asyncio.sleep(0.5)
        took = time.monotonic() - started
        say(
            f"{users} users created and funded R{PREFUND_MINOR // 100:,} each in {took:.1f}s; "
            f"{len(products)} products, {len(cheap)} orderable, {len(search_terms)} search terms"
        )
    return Fixture(
        product_ids=product_ids,
        order_products=cheap,
        search_terms=search_terms,
        tokens=tokens,
        merchant_id=merchant_id,
        passphrase=passphrase,
    )


def _search_terms(titles: list[str], rng: random.Random, count: int = 200) -> list[str]:
    """Words shoppers type: title words by frequency (common and rare), a few two-word queries, 15% typos."""
    words = Counter(w for title in titles for w in re.findall(r"[a-z]{4,}", title.lower()))
    vocabulary = [w for w, _ in words.most_common()]
    if not vocabulary:
        return ["milk"]
    terms = []
    for _ in range(count):
        word = vocabulary[min(int(rng.expovariate(1 / 40)), len(vocabulary) - 1)]
        roll = rng.random()
        if roll < 0.15 and len(word) > 4:  # a typo: the trigram (fuzzy) tier answers it
            i = rng.randrange(1, len(word) - 1)
            word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif roll < 0.25:
            word = f"{word} {rng.choice(vocabulary[:50])}"
        terms.append(word)
    return terms


def compare_shapes(gateway: str, direct: str, fixture: Fixture) -> str:
    """Ask both for the same products and searches; the bodies must be equal (random pages: the same keys)."""
    rng = random.Random(7)  # noqa: S311 - load, not secrets
    paths = [f"/v1/products/{quote(p, safe='')}" for p in rng.sample(fixture.product_ids, 5)]
    paths += [
        f"/v1/catalog?{urlencode({'q': q, 'limit': PAGE_LIMIT})}" for q in rng.sample(fixture.search_terms, 5)
    ]
    with httpx.Client(timeout=30) as client:
        for path in paths:
            a, b = client.get(gateway + path), client.get(direct + path)
            if a.status_code != b.status_code or a.json() != b.json():
                return f"DIFFERENT for {path}: {a.status_code} vs {b.status_code}"
        a, b = (
            client.get(url + f"/v1/catalog?random=true&limit={PAGE_LIMIT}").json()
            for url in (gateway, direct)
        )
        if set(a) != set(b) or set(a["items"][0]) != set(b["items"][0]):
            return "DIFFERENT keys for random pages"
    return f"identical ({len(paths)} product and search bodies compared, random pages have the same keys)"


async def saga_state(database_url: str) -> dict[str, Any]:
    """Order statuses, completed payments and the unpublished outbox rows of every schema."""
    import asyncpg

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        orders = {
            r["status"]: r["n"]
            for r in await conn.fetch("SELECT status, count(*) AS n FROM orders.orders GROUP BY status")
        }
        payments = {
            r["status"]: r["n"]
            for r in await conn.fetch("SELECT status, count(*) AS n FROM payments.payments GROUP BY status")
        }
        backlog = {}
        for schema in ("identity", "catalog", "orders", "payments", "ai"):
            unpublished = f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"  # noqa: S608
            backlog[schema] = await conn.fetchval(unpublished)
    finally:
        await conn.close()
    return {"orders": orders, "payments": payments, "outbox_unpublished": backlog}


def wait_for_saga(database_url: str, timeout: float = 90.0) -> dict[str, Any]:
    """Poll until no order is pending payment and every outbox is published; say how long it took."""
    started = time.monotonic()
    state = asyncio.run(saga_state(database_url))
    at_end = state
    while time.monotonic() - started < timeout:
        if not state["orders"].get("pending_payment") and not any(state["outbox_unpublished"].values()):
            break
        time.sleep(0.5)
        state = asyncio.run(saga_state(database_url))
    return {"at_end_of_run": at_end, "settled": state, "settle_seconds": round(time.monotonic() - started, 1)}


# ---------------------------------------------------------------------------------------------------------
# The report


def report(results: dict[str, Any]) -> str:
    lines = [f"# Load mix — {results['when']}", ""]
    m = results["machine"]
    lines += [
        f"- machine: {m['nproc']} cores, {m['cpu_model']}, {m['ram_gib']} GiB RAM, Python {m['python']}",
        f"- {describe_speed(results['speed'])}",
        f"- code: {results['git']}",
        f"- command: `{results['command']}`",
        f"- load average before: {results['load_before']}; after: {results['load_after']}",
        f"- stack: {results['stack']}",
        "",
    ]
    for phase in results["phases"]:
        how = f"{phase['seconds']:.0f}s measured" + (
            f" in {phase['slices']} slices" if phase["slices"] > 1 else ""
        )
        lines += [f"## {phase['phase']} ({phase['target']}, {how})", "", format_table(phase["rows"]), ""]
        windows = "; ".join(f"{start} → {end}" for start, end in phase["load_average"])
        lines.append(f"- load average at the start → end of each measured window: {windows}")
        if phase["late_starts"]:
            lines.append(
                f"- open loop: {phase['late_starts']} arrivals started > 1 ms late (driver lag, or no free "
                "connection)"
            )
        if phase["cpu_cores"]:
            cpu = ", ".join(
                f"{k} {v:.2f}"
                for k, v in sorted(phase["cpu_cores"].items(), key=lambda kv: -kv[1])
                if v >= 0.005
            )
            lines.append(f"- CPU, cores busy on average: {cpu}")
            per = ", ".join(
                f"{k} {v:.2f}" for k, v in sorted(phase["cpu_ms_per_request"].items(), key=lambda kv: -kv[1])
            )
            lines.append(f"- CPU ms per request: {per}")
        else:
            lines.append(f"- load generator: {phase['driver_cores']:.2f} cores")
        for route, samples in phase["errors"].items():
            lines.append(f"- unexpected answers on `{route}`: " + " | ".join(samples))
        lines.append("")
    if "saga" in results:
        saga = results["saga"]
        lines += [
            "## the saga after the mix",
            f"- at the end of the run: orders {saga['at_end_of_run']['orders']}, "
            f"outbox unpublished {saga['at_end_of_run']['outbox_unpublished']}",
            f"- settled after {saga['settle_seconds']}s: orders {saga['settled']['orders']}, "
            f"payments {saga['settled']['payments']}",
            "",
        ]
    if "shape_check" in results:
        lines += [f"direct app vs gateway JSON: {results['shape_check']}", ""]
    if "ratio" in results:
        lines += [
            f"**gateway-hop catalog throughput / direct: {results['ratio'] * 100:.0f}%** "
            f"({results['ratio_detail']})",
            "",
        ]
    if "cpu_ratio" in results:
        lines += [
            f"**CPU per request, direct / through the gateway: {results['cpu_ratio'] * 100:.0f}%** "
            f"({results['cpu_ratio_detail']}): near the throughput ratio on idle cores (both CPU-bound)",
            "",
        ]
    for name, spots in results.get("hotspots", {}).items():
        lines += [f"## hot spots: {name}", "", "| samples | layer |", "|---:|---|"]
        lines += [f"| {share * 100:.1f}% | {layer} |" for layer, share in results["layers"][name]]
        lines += ["", "| self | frame |", "|---:|---|"]
        lines += [f"| {share * 100:.1f}% | `{frame}` |" for frame, share in spots["self"][:12]]
        lines += ["", "| total | frame |", "|---:|---|"]
        lines += [f"| {share * 100:.1f}% | `{frame}` |" for frame, share in spots["total"][:12]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", help="a running stack's gateway URL (default: start a stack of our own)")
    parser.add_argument("--database-url", help="its database (the direct app and the saga check use it)")
    parser.add_argument("--direct", help="a running direct_app URL (default: start one on --database-url)")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=5.0, help="unrecorded seconds before each phase")
    parser.add_argument("--concurrency", type=int, default=64, help="connections (closed loop: in flight)")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: Poisson arrivals per second")
    parser.add_argument("--workers", type=int, default=1, help="driver processes (one asyncio loop each)")
    parser.add_argument(
        "--client", choices=["raw", "httpx"], default="raw", help="raw HTTP/1.1 connections or httpx clients"
    )
    parser.add_argument("--users", type=int, default=200, help="pre-funded users")
    parser.add_argument("--phases", default="mix,catalog,direct", help="which of mix,catalog,direct to run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="catalog and direct take turns in this many slices of the duration",
    )
    parser.add_argument(
        "--gateway-workers",
        type=int,
        default=1,
        help="own stack: >1 runs the gateway as `uvicorn --workers N` (an experiment)",
    )
    parser.add_argument("--log-level", default="INFO", help="own stack: the services' LOG_LEVEL")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="python",
        choices=["python", "native"],
        help="py-spy record the gateway, catalog, orders and payments during the mix (native: C frames too)",
    )
    parser.add_argument("--keep-database", action="store_true", help="own stack: keep yummi_loadmix_<hex>")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, help="where to write results (default bench/results/<time>)")
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    # SIGTERM unwinds like Ctrl-C, so the stack, the database and the helpers are always cleaned up
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = args.out or RESULTS_DIR / f"load-mix-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_facts(),
        "git": git_state(ROOT),
        "load_before": load_average(),
        "speed": machine_speed(),
        "phases": [],
    }
    say(f"load average before: {results['load_before']}")
    if args.gateway:
        scene = Scene(gateway=args.gateway.rstrip("/"), database_url=args.database_url, log_dir=out_dir)
        results["stack"] = f"given: {scene.gateway}"
    else:
        scene = start_own_stack(args, out_dir)
        how = (
            f"uvicorn --workers {args.gateway_workers}" if args.gateway_workers > 1 else "yummi-gateway serve"
        )
        results["stack"] = f"own, gateway as {how}; " + ", ".join(
            f"{k}={v}" for k, v in scene.settings.items() if k.startswith(("RATE_LIMIT", "LOG_", "PAYFAST"))
        )
    try:
        fixture = run_async(prepare_fixture(scene.gateway, args.users, args.seed))
        meter = None
        if scene.pids:
            labelled = {name: pid for name, pid in scene.pids.items()}
            database = urlsplit(scene.database_url or "").path.lstrip("/")
            meter = CpuMeter(
                labelled,
                by_name={
                    "postgres (our database's backends)": ("postgres", f" {database} " if database else "-"),
                    "postgres (all servers on the machine)": ("postgres", ""),
                    "nats-server (shared)": ("nats-server", ""),
                    "redis/valkey (shared)": ("redis-server|valkey-server", ""),
                },
            )

        def plan_for(phase: str, target: str, warmup: float, duration: float) -> PhasePlan:
            return PhasePlan(
                name=phase,
                target=target,
                weights=MIX if phase == "mix" else CATALOG_ONLY,
                concurrency=args.concurrency,
                rate=args.rate,
                start_at=time.time() + 3.0,
                warmup=warmup,
                duration=duration,
                seed=args.seed,
                client=args.client,
            )

        if "mix" in phases:
            profile: dict[str, int] | None = None
            if args.profile:
                profiled = ("gateway", "catalog", "orders", "payments")
                profile = {name: scene.pids[name] for name in profiled if name in scene.pids}
            plan = plan_for("mix", scene.gateway, args.warmup, args.duration)
            part = run_phase(plan, fixture, args.workers, meter, profile, out_dir, args.profile == "native")
            outcome = combine("mix", scene.gateway, [part])
            results["phases"].append(outcome)
            print(format_table(outcome["rows"]))
            if scene.database_url:
                results["saga"] = wait_for_saga(scene.database_url)
                say(f"saga settled in {results['saga']['settle_seconds']}s: {results['saga']['settled']}")

        targets = {}
        if "catalog" in phases:
            targets["catalog"] = scene.gateway
        if "direct" in phases:
            if scene.database_url or args.direct:
                targets["direct"] = args.direct or start_direct_app(scene.database_url or "", out_dir, scene)
                results["shape_check"] = compare_shapes(scene.gateway, targets["direct"], fixture)
                say(f"same JSON through the gateway and from the direct app: {results['shape_check']}")
                if meter is not None and "direct app" in scene.pids:
                    meter.pids = {**meter.pids, "direct app": scene.pids["direct app"]}
            else:
                say("no --database-url or --direct: skipping the direct phase")
        # The two catalog paths take turns in slices, so both see the same share of whatever else the machine
        # is doing (other engineers' test runs) rather than one getting a quiet minute and one a busy one.
        slices: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        rounds = max(1, args.rounds)
        for round_ in range(rounds):
            order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
            for name in order:
                warmup = args.warmup if round_ < 2 else min(args.warmup, 2.0)
                plan = plan_for(name, targets[name], warmup, args.duration / rounds)
                slices[name].append(run_phase(plan, fixture, args.workers, meter, None, None))
        for name, parts in slices.items():
            outcome = combine(name, targets[name], parts)
            results["phases"].append(outcome)
            print(format_table(outcome["rows"]))
        by_phase = {p["phase"]: p for p in results["phases"]}
        if "catalog" in by_phase and "direct" in by_phase:
            via = by_phase["catalog"]["rows"][-1]["rps"]
            direct = by_phase["direct"]["rows"][-1]["rps"]
            results["ratio"] = via / direct if direct else math.nan
            results["ratio_detail"] = f"{via:.0f} req/s through the gateway vs {direct:.0f} req/s direct"
            key = "stack total (excl. load generator, NATS, Redis)"
            via_cpu = by_phase["catalog"]["cpu_ms_per_request"].get(key)
            direct_cpu = by_phase["direct"]["cpu_ms_per_request"].get(key)
            if via_cpu and direct_cpu:
                results["cpu_ratio"] = direct_cpu / via_cpu
                results["cpu_ratio_detail"] = (
                    f"{via_cpu:.2f} CPU ms per request through the gateway (gateway + catalog + their "
                    f"Postgres backends) vs {direct_cpu:.2f} direct (app + its backends)"
                )
        if args.profile:
            profiles = sorted(out_dir.glob("mix-*.speedscope.json"))
            results["hotspots"] = {path.name: hotspots(path) for path in profiles}
            results["layers"] = {path.name: layers(path) for path in profiles}
    finally:
        results["load_after"] = load_average()
        scene.close()
    text = report(results)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out_dir / "report.md").write_text(text)
    print()
    print(text)
    say(f"written to {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
