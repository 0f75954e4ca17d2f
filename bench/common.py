"""Benchmark helpers: latency statistics and tables, machine facts, CPU accounting, an always-VALID PayFast
confirmation responder, a scratch payments database for in-process benchmarks, and a hot-spot summary of
py-spy speedscope profiles.

`python bench/common.py valid-responder --port 8199` runs the responder; `python bench/common.py hotspots
FILE.json` prints the top frames of a speedscope profile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import secrets
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# ---------------------------------------------------------------------------------------------------------
# The load generators' HTTP client

REQUEST_TIMEOUT = 30.0


def run_async(coro: Any) -> Any:
    if importlib.util.find_spec("uvloop"):
        import uvloop

        if hasattr(uvloop, "run"):
            return uvloop.run(coro)
        uvloop.install()
    return asyncio.run(coro)


class Connection:
    """One keep-alive HTTP/1.1 connection, spoken directly over asyncio streams.

    About 0.02 ms of CPU per request (the whole driver: 0.1-0.3 ms), against about 1 ms for an
    httpx.AsyncClient and about 6 ms when 64 requests share one httpx pool: on 2 cores the load generator
    leaves the CPU to the stack it measures.
    """

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._host_header = f"Host: {parts.netloc}\r\n".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one request and read the whole answer; (0, reason) when the connection failed."""
        reused = self._writer is not None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await self._exchange(method, target, headers, body)
        except (ConnectionError, asyncio.IncompleteReadError, OSError, ValueError) as exc:
            self.close()
            if reused and not isinstance(exc, ValueError):
                # the server may have closed an idle keep-alive connection: one fresh try
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT):
                        return await self._exchange(method, target, headers, body)
                except (
                    ConnectionError,
                    asyncio.IncompleteReadError,
                    OSError,
                    ValueError,
                    TimeoutError,
                ) as again:
                    self.close()
                    return 0, repr(again).encode()
            return 0, repr(exc).encode()
        except TimeoutError:
            self.close()
            return 0, b"timeout"

    async def _exchange(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None  # noqa: S101 - set together with the writer
        head = [f"{method} {target} HTTP/1.1\r\n".encode(), self._host_header]
        head += [f"{name}: {value}\r\n".encode() for name, value in headers.items()]
        if body or method != "GET":
            head.append(f"Content-Length: {len(body)}\r\n".encode())
        self._writer.write(b"".join(head) + b"\r\n" + body)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self._reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                chunk = await self._reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            data = b"".join(parts)
        else:
            data = await self._reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


# ---------------------------------------------------------------------------------------------------------
# Latency statistics


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0.0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class RouteStats:
    """What one route did in the measured window: latencies (ms), status counts, unexpected answers."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def merge(self, other: RouteStats) -> None:
        self.latencies_ms.extend(other.latencies_ms)
        self.statuses.update(other.statuses)
        self.errors += other.errors
        for sample in other.error_samples:
            if len(self.error_samples) < 5 and sample not in self.error_samples:
                self.error_samples.append(sample)

    def record(self, latency_ms: float, status: int, ok: bool, sample: str = "") -> None:
        self.latencies_ms.append(latency_ms)
        self.statuses[status] += 1
        if not ok:
            self.errors += 1
            if sample and len(self.error_samples) < 5 and sample not in self.error_samples:
                self.error_samples.append(sample)


def summarise(stats: dict[str, RouteStats], duration: float) -> list[dict[str, Any]]:
    """One row per route (and a total): count, req/s, p50/p95/p99/max in ms, errors."""
    rows = []
    everything: list[float] = []
    total_errors = 0
    for route in sorted(stats, key=lambda name: -len(stats[name].latencies_ms)):
        st = stats[route]
        values = sorted(st.latencies_ms)
        everything.extend(values)
        total_errors += st.errors
        rows.append(_row(route, values, st.errors, duration, dict(st.statuses)))
    rows.append(_row("TOTAL", sorted(everything), total_errors, duration, {}))
    return rows


def _row(
    route: str, values: list[float], errors: int, duration: float, statuses: dict[int, int]
) -> dict[str, Any]:
    return {
        "route": route,
        "count": len(values),
        "rps": len(values) / duration if duration else 0.0,
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "max": values[-1] if values else 0.0,
        "errors": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def format_table(rows: Iterable[dict[str, Any]]) -> str:
    """A Markdown table of summarise() rows."""
    lines = [
        "| route | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = f"**{r['route']}**" if r["route"] == "TOTAL" else f"`{r['route']}`"
        lines.append(
            f"| {name} | {r['count']} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} "
            f"| {r['max']:.1f} | {r['errors']} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# The machine


def machine_facts() -> dict[str, Any]:
    """nproc, CPU model, RAM, load average, Python: what a reader needs to weigh the numbers."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def machine_speed(rounds: int = 5) -> dict[str, float]:
    """Two fixed workloads, best of `rounds`, timed where the benchmark runs (before its stack starts):
    `python_ms` (encode and decode a 100-row catalog page as JSON 200 times, pure interpreter work) and
    `roundtrip_us` (one byte each way over a loopback TCP connection, both ends in this thread: the system
    calls every hop of the stack pays). The same code measured on two days differs by as much as these do:
    weigh runs of different days through them.
    """
    import socket

    page = [
        {"id": f"p{i:04d}", "name": "Full Cream Milk 2 L", "price_minor": 3299 + i, "tags": ["dairy"]}
        for i in range(100)
    ]
    python_ms = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(200):
            json.loads(json.dumps(page))
        python_ms = min(python_ms, (time.perf_counter() - started) * 1000)
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    roundtrip_us = float("inf")
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(2000):
                client.sendall(b"x")
                server.recv(1)
                server.sendall(b"x")
                client.recv(1)
            roundtrip_us = min(roundtrip_us, (time.perf_counter() - started) / 2000 * 1e6)
    finally:
        for sock in (client, server, listener):
            sock.close()
    return {"python_ms": round(python_ms, 1), "roundtrip_us": round(roundtrip_us, 1)}


def describe_speed(speed: dict[str, float]) -> str:
    return (
        f"machine speed before the run: {speed['python_ms']} ms of reference Python work, "
        f"{speed['roundtrip_us']} us per loopback round trip (lower is faster)"
    )


@contextlib.contextmanager
def scratch_payments_database() -> Iterator[str]:
    """A fresh `yummi_bench_<hex>` database on DATABASE_URL's server with the payments schema, made this
    process's DATABASE_URL (settings read again); dropped when the block ends. For in-process benchmarks."""
    from yummi_common import migrations
    from yummi_common.settings import get_settings
    from yummi_devstack.infra import drop_database, ensure_database, url_with_database
    from yummi_payments.bootstrap import MIGRATIONS_DIR

    url = url_with_database(os.environ["DATABASE_URL"], f"yummi_bench_{secrets.token_hex(4)}")
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        ensure_database(url)
        migrations.upgrade(settings=get_settings(), service="payments", script_location=MIGRATIONS_DIR)
        yield url
    finally:
        drop_database(url)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def git_state(root: Path) -> str:
    """The commit and whether the work tree had uncommitted changes (others edit it in parallel)."""
    try:
        commit = subprocess.run(  # noqa: S603
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}{' + uncommitted changes' if dirty else ''}"


# ---------------------------------------------------------------------------------------------------------
# CPU accounting


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat", encoding="utf-8") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


class CpuMeter:
    """CPU seconds used by labelled processes between start() and stop(), sampled twice a second so that
    short-lived processes (pool overflow connections' Postgres backends, uvicorn workers) are counted too.

    `pids`: label -> a process whose whole tree is counted (a service and its children).
    `by_name`: label -> (process name or names joined by "|", text its command line must hold), machine-wide,
    e.g. the Postgres backends serving one database ("postgres: 15/main: postgres yummi_loadmix_x ...").
    """

    def __init__(self, pids: dict[str, int], by_name: dict[str, tuple[str, str]] | None = None) -> None:
        self.pids = pids
        self.by_name = by_name or {}
        self._first: dict[str, dict[int, float]] = {}
        self._last: dict[str, dict[int, float]] = {}
        self._machine_before = (0.0, 0.0)
        self._wall = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> dict[str, dict[int, float]]:
        import psutil

        def used(proc: Any) -> float:
            t = proc.cpu_times()
            return float(t.user + t.system)

        seen: dict[str, dict[int, float]] = {}
        for label, pid in self.pids.items():
            per_pid = seen.setdefault(label, {})
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in tree:
                try:
                    per_pid[proc.pid] = used(proc)
                except psutil.Error:
                    pass
        if self.by_name:
            procs = list(psutil.process_iter(["name", "cmdline", "cpu_times"]))
            for label, (name, holds) in self.by_name.items():
                per_pid = seen.setdefault(label, {})
                for proc in procs:
                    info = proc.info
                    if info["name"] not in name.split("|") or info["cpu_times"] is None:
                        continue
                    if holds and holds not in " ".join(info["cmdline"] or ()):
                        continue
                    per_pid[proc.pid] = float(info["cpu_times"].user + info["cpu_times"].system)
        return seen

    def _merge(self, sample: dict[str, dict[int, float]], *, initial: bool = False) -> None:
        for label, per_pid in sample.items():
            first = self._first.setdefault(label, {})
            last = self._last.setdefault(label, {})
            for pid, value in per_pid.items():
                # a process born inside the window spent all its CPU inside it
                first.setdefault(pid, value if initial else 0.0)
                last[pid] = value

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._merge(self._sample())

    def start(self) -> None:
        self._first, self._last = {}, {}
        self._merge(self._sample(), initial=True)
        self._machine_before = machine_cpu_seconds()
        self._wall = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """Cores used on average per label, plus `machine busy` and `machine capacity`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._merge(self._sample())
        wall = max(time.monotonic() - self._wall, 1e-9)
        busy, total = machine_cpu_seconds()
        cores = {}
        for label, last in self._last.items():
            first = self._first[label]
            cores[label] = sum(max(value - first[pid], 0.0) for pid, value in last.items()) / wall
        cores["machine busy"] = (busy - self._machine_before[0]) / wall
        cores["machine capacity"] = (total - self._machine_before[1]) / wall
        return cores


# ---------------------------------------------------------------------------------------------------------
# An always-VALID PayFast server confirmation


async def _answer_valid(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read one HTTP request (headers + Content-Length body) per turn, answer `VALID`, keep the connection."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1].strip() or 0)
            if length:
                await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nVALID")
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def serve_valid(host: str, port: int) -> None:
    server = await asyncio.start_server(_answer_valid, host, port)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------------------------------------------------
# Hot spots of a speedscope profile (py-spy record --format speedscope)


def hotspots(path: Path, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """The frames with the most self and total (inclusive) time, as shares of all samples."""
    doc = json.loads(path.read_text())
    frames = doc["shared"]["frames"]
    self_time: Counter[int] = Counter()
    total_time: Counter[int] = Counter()
    grand = 0.0
    for profile in doc["profiles"]:
        if profile.get("type") != "sampled":
            continue
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            grand += weight
            if stack:
                self_time[stack[-1]] += weight
            for frame in set(stack):
                total_time[frame] += weight

    def name(index: int) -> str:
        f = frames[index]
        where = f.get("file", "")
        for marker in ("site-packages/", "/src/", "/lib/python3"):
            if marker in where:
                where = where.split(marker, 1)[1]
                break
        return f"{f['name']} ({where}:{f.get('line', '?')})"

    grand = grand or 1.0
    return {
        "self": [(name(i), w / grand) for i, w in self_time.most_common(top)],
        "total": [(name(i), w / grand) for i, w in total_time.most_common(top)],
    }


# Layers a sample is charged to: the innermost frame whose file (or name) holds one of the markers decides.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("idle: waiting in a thread pool", ("threading.py", "queue.py")),
    ("idle: event loop poll", ("selectors.py",)),
    ("Redis client (redis-py)", ("redis/",)),
    ("gRPC (grpc.aio)", ("grpc/", "grpc_health", "yummi_common/grpc_")),
    ("protobuf", ("google/protobuf",)),
    ("logging (structlog + logging)", ("structlog/", "logging/__init__", "yummi_common/logging")),
    (
        "OpenTelemetry + metrics",
        ("opentelemetry/", "prometheus_client/", "yummi_common/telemetry", "metrics.py"),
    ),
    ("asyncpg", ("asyncpg/",)),
    ("SQLAlchemy", ("sqlalchemy/", "greenlet")),
    ("JSON (orjson, serialisers)", ("orjson", "serializers.py", "responses.py", "json/")),
    ("HTTP server (uvicorn, h11)", ("uvicorn/", "h11/", "httptools")),
    ("FastAPI / Starlette / anyio / pydantic", ("fastapi/", "starlette/", "anyio/", "pydantic")),
    ("NATS client", ("nats/",)),
    ("httpx / ssl (outgoing HTTP)", ("httpx/", "httpcore/", "ssl.py", "h2/")),
    ("gateway middleware + routes", ("yummi_gateway/",)),
    ("service code (yummi_*)", ("yummi_",)),
    ("asyncio (loop, transports)", ("asyncio/",)),
)


def layers(path: Path) -> list[tuple[str, float]]:
    """Share of a profile's samples per layer (see LAYERS); the rest is `other` (native code of the loop)."""
    doc = json.loads(path.read_text())
    frames = doc["shared"]["frames"]
    charge: dict[int, str] = {}
    for index, frame in enumerate(frames):
        where = f"{frame.get('file', '')}:{frame['name']}"
        for layer, markers in LAYERS:
            if any(marker in where for marker in markers):
                charge[index] = layer
                break
    totals: Counter[str] = Counter()
    grand = 0.0
    for profile in doc["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            grand += weight
            layer = next((charge[i] for i in reversed(stack) if i in charge), "other (native loop, process)")
            totals[layer] += weight
    grand = grand or 1.0
    return [(layer, weight / grand) for layer, weight in totals.most_common()]


def gateway_app() -> Any:
    """The gateway for `uvicorn --factory --workers N common:gateway_app` (settings from the environment)."""
    from yummi_common.logging import configure_logging
    from yummi_common.settings import get_settings
    from yummi_gateway.app import create_app

    settings = get_settings()
    configure_logging(service="gateway", json=settings.log_json, level=settings.log_level)
    return create_app(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    responder = sub.add_parser("valid-responder", help="answer VALID to every POST (PayFast check 4)")
    responder.add_argument("--host", default="127.0.0.1")
    responder.add_argument("--port", type=int, required=True)
    spots = sub.add_parser("hotspots", help="top frames of a speedscope profile")
    spots.add_argument("files", nargs="+", type=Path)
    spots.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    if args.command == "valid-responder":
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(serve_valid(args.host, args.port))
        return 0
    for path in args.files:
        result = hotspots(path, args.top)
        print(f"## {path}")
        print("### layers")
        for layer, share in layers(path):
            print(f"{share * 100:5.1f}%  {layer}")
        for kind in ("self", "total"):
            print(f"### {kind}")
            for frame, share in result[kind]:
                print(f"{share * 100:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
