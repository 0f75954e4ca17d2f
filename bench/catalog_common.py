"""What the catalog benchmarks share: the machine's description, a stack to run against, the 100k catalog."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yummi_catalog.entrypoints.admin_cli import AdminClient
from yummi_devstack import (
    ServiceGroup,
    default_state_dir,
    dev_token,
    drop_database,
    ensure_database,
    start_services,
    url_with_database,
)
from yummi_devstack.infra import plain_postgres_url, run_coroutine
from yummi_devstack.stack import infra_for_run

ROOT = Path(__file__).resolve().parents[1]
ADMIN_EMAIL = "bench-admin@yummi.local"
CACHE = Path(tempfile.gettempdir()) / "yummi-bench"


def machine() -> dict[str, Any]:
    """nproc, CPU model, RAM and the load average right now (the numbers mean little without them)."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram_gb = 0.0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = int(line.split()[1]) / 1024 / 1024
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gb": round(ram_gb, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def catalog_file(count: int, seed: int = 42) -> Path:
    """The generator's catalog of `count` items (made once, then reused from the temp folder)."""
    path = CACHE / f"catalog-{count}-seed{seed}.json"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(  # noqa: S603 - the repo's own generator
            [
                sys.executable,
                str(ROOT / "scripts/generate_sample_catalog.py"),
                "--count",
                str(count),
                "--seed",
                str(seed),
                "--out",
                str(path),
            ],
            check=True,
        )
    return path


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateway", help="a running gateway's URL (default: start gateway + catalog here)")
    parser.add_argument(
        "--token", default=os.environ.get("YUMMI_ADMIN_TOKEN"), help="an admin token for --gateway"
    )
    parser.add_argument("--keep", action="store_true", help="keep the stack's database afterwards")


@dataclass
class BenchStack:
    url: str
    token: str
    database_url: str | None  # the catalog's database (None: unknown, for a given --gateway)
    services: ServiceGroup | None = None

    def admin(self) -> AdminClient:
        return AdminClient(self.url, self.token, timeout=120.0)

    def catalog_pid(self) -> int | None:
        if self.services is None or "catalog" not in self.services.processes:
            return None
        return int(self.services.processes["catalog"].popen.pid)


@contextlib.contextmanager
def bench_stack(args: argparse.Namespace) -> Iterator[BenchStack]:
    """The given gateway, or gateway + catalog started here on a fresh database (dropped afterwards).

    Postgres/Redis/NATS come from DATABASE_URL/REDIS_URL/NATS_URL, else the embedded servers.
    """
    if args.gateway:
        if not args.token:
            raise SystemExit("--gateway needs --token (or YUMMI_ADMIN_TOKEN)")
        yield BenchStack(args.gateway.rstrip("/"), args.token, os.environ.get("CATALOG_DATABASE_URL"))
        return
    env = {**os.environ}
    with infra_for_run(env, default_state_dir(env), quiet=True) as urls, _catalog_stack(args, urls) as stack:
        yield stack


@contextlib.contextmanager
def _catalog_stack(args: argparse.Namespace, urls: Any) -> Iterator[BenchStack]:
    """A fresh database on the given servers, the catalog and the gateway; cleanup."""
    tag = secrets.token_hex(4)
    database_url = url_with_database(urls["DATABASE_URL"], f"yummi_bench_{tag}")
    ensure_database(database_url)
    work = Path(tempfile.mkdtemp(prefix="yummi-bench-"))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": urls["REDIS_URL"],
        "NATS_URL": urls["NATS_URL"],
        "NATS_STREAM": f"BENCH_{tag.upper()}",
        "NATS_SUBJECT_PREFIX": f"bench{tag}.events",
        "REDIS_KEY_PREFIX": f"bench{tag}:",
        "ENVIRONMENT": "dev",  # migrate on start
        "AUTH_DISABLE_VERIFICATION": "true",
        "ADMIN_EMAILS": ADMIN_EMAIL,
        "LOG_JSON": "false",
        "LOG_LEVEL": "WARNING",
        "CATALOG_STORE_DIR": str(work / "store"),
        # A benchmark is one client hammering the API: the per-IP and per-user limits would only measure 429s.
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "RATE_LIMIT_IP_PER_MINUTE": "100000000",
    }
    for variable in ("CATALOG_DATABASE_URL", "GATEWAY_DATABASE_URL"):
        env.pop(variable, None)
    started = time.monotonic()
    services = start_services(env, ["catalog", "gateway"], work / "logs", timeout=180)
    print(f"stack up in {time.monotonic() - started:.1f}s (logs: {work / 'logs'})", file=sys.stderr)
    try:
        yield BenchStack(services.gateway_url, dev_token("bench_admin", ADMIN_EMAIL), database_url, services)
    finally:
        services.stop()
        if not args.keep:
            drop_database(database_url)


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds each process has used so far (processes on this machine only)."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[pid] = (int(fields[11]) + int(fields[12])) / tick
    return used


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two `cpu_seconds` readings (a process new since `before` counts in full)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def backend_pids(database_url: str | None, application_name: str) -> list[int]:
    """The Postgres backends serving one application (empty when Postgres is not local or unreachable)."""
    if not database_url:
        return []
    import asyncpg

    async def query() -> list[int]:
        conn = await asyncpg.connect(plain_postgres_url(database_url))
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = $1",
                application_name,
            )
            return [int(row["pid"]) for row in rows]
        finally:
            await conn.close()

    with contextlib.suppress(Exception):
        return [pid for pid in run_coroutine(query()) if Path(f"/proc/{pid}").exists()]
    return []


def peak_rss_mb(pid: int | None) -> float | None:
    """The process's peak resident memory so far (VmHWM), in MB."""
    if pid is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def import_through_upload(
    admin: AdminClient, path: Path, *, activate: bool, stack: BenchStack | None = None
) -> dict[str, Any]:
    """Create → upload → complete → poll until ready (→ activate): the phases' seconds and the result.

    Given the stack, also the CPU seconds the catalog process and its Postgres backends spent meanwhile:
    a measure of work that, unlike wall time, hardly depends on what else the machine is doing.
    """
    catalog = [pid for pid in [stack.catalog_pid() if stack else None] if pid]
    database_url = stack.database_url if stack else None
    catalog_before = cpu_seconds(catalog)
    postgres_before = cpu_seconds(backend_pids(database_url, "yummi-catalog"))
    started = time.perf_counter()
    created = admin.create_dataset(name=path.name)
    uploaded_at = time.perf_counter()
    checksum = admin.upload(created["upload"], path)
    completed_at = time.perf_counter()
    admin.complete(created["id"], checksum)
    indexing_from = time.perf_counter()
    dataset = admin.wait_until_settled(created["id"], poll_interval=0.05)
    ready_at = time.perf_counter()
    if dataset["status"] != "ready":
        raise SystemExit(f"the import ended {dataset['status']}: {dataset.get('error')}")
    catalog_cpu = cpu_used(catalog_before, cpu_seconds(catalog))
    postgres_cpu = cpu_used(postgres_before, cpu_seconds(backend_pids(database_url, "yummi-catalog")))
    if activate:
        dataset = admin.activate(created["id"])
    return {
        "catalog_cpu_s": catalog_cpu,
        "postgres_cpu_s": postgres_cpu,
        "dataset_id": created["id"],
        "version": dataset["version"],
        "items": dataset["item_count"],
        "bytes": path.stat().st_size,
        "create_s": uploaded_at - started,
        "upload_s": completed_at - uploaded_at,
        "complete_s": indexing_from - completed_at,
        "indexing_s": ready_at - indexing_from,
        "total_s": ready_at - started,
    }
