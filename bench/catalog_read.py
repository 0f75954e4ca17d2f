"""Benchmark: GET /v1/catalog?limit=100 through the gateway at 64 concurrent connections, on 100,000 products.

    .venv/bin/python bench/catalog_read.py [--connections 64] [--duration 20] [--tool wrk|httpx]
    .venv/bin/python bench/catalog_read.py --gateway http://host:8000 --token T   # a running stack

Two workloads: `random=true` (a random sample each time) and `q=` rotating through grocery searches, typos
included. It loads the 100k catalog first when the live version is smaller (the stack it starts is empty).
`wrk` (Debian package `wrk`) generates the load when installed: one thread, little CPU, which matters on a
small machine where the client shares the cores with the server; otherwise an asyncio + httpx client does.
Reported: requests/s, p50/p90/p99 latency, and non-2xx responses or errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog_common import (  # noqa: E402 - the bench folder is not a package
    BenchStack,
    add_stack_arguments,
    bench_stack,
    catalog_file,
    import_through_upload,
    machine,
)

QUERIES = (
    "milk", "bananas", "bananna", "chiken breast", "greek yoghurt", "yogurt", "rooibos", "boerewors",
    "cheddar", "brown bread", "free range eggs", "apples", "tomatos", "coffee beans", "biltong", "butter",
    "basmati rice", "chocolate", "orange juice", "beef mince", "avocado", "baby spinach", "peanut butter",
    "sausages", "potatos", "muesli", "tea", "chips", "salmon", "mayonaise", "woolworths", "oat milk",
    "cheese",
)  # fmt: skip

WRK_SCRIPT = """
local paths = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "seconds": %%.3f, "p50_ms": %%.2f, "p90_ms": %%.2f, "p99_ms": %%.2f, '
    .. '"max_ms": %%.2f, "non_2xx": %%d, "errors": %%d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def workloads() -> dict[str, list[str]]:
    return {
        "random=true": ["/v1/catalog?" + urlencode({"limit": 100, "random": "true"})],
        "q (rotating)": ["/v1/catalog?" + urlencode({"limit": 100, "q": q}) for q in QUERIES],
    }


def ensure_catalog(stack: BenchStack, items: int) -> dict[str, Any]:
    """Make a catalog of at least `items` products live (importing the generated one when needed)."""
    with stack.admin() as admin:
        source = admin._json("GET", "/v1/admin/catalog/source")
        if (source.get("item_count") or 0) >= items:
            return {"version": source["dataset_version"], "items": source["item_count"], "imported": False}
        result = import_through_upload(admin, catalog_file(items), activate=True)
        return {"version": result["version"], "items": result["items"], "imported": True}


def run_wrk(base: str, paths: list[str], connections: int, seconds: int) -> dict[str, Any]:
    lua = WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", script.name, base]
    output = subprocess.run(  # noqa: S603 - wrk from PATH (the Debian package), our own arguments
        command,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(script.name).unlink()
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    result["rps"] = result["requests"] / result["seconds"]
    return result


async def run_httpx(base: str, paths: list[str], connections: int, seconds: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10.0) as client:
        deadline = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal failures
            n = offset
            while time.perf_counter() < deadline:
                n += 1
                started = time.perf_counter()
                try:
                    response = await client.get(paths[n % len(paths)])
                    ok = response.status_code < 300
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                failures += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(connections)))
        elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": cuts[49] * 1e3,
        "p90_ms": cuts[89] * 1e3,
        "p99_ms": cuts[98] * 1e3,
        "max_ms": max(latencies) * 1e3,
        "non_2xx": failures,
        "errors": 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--items", type=int, default=100_000, help="products in the live catalog (default 100k)"
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=20, help="seconds per workload (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per workload (default 3)")
    parser.add_argument("--tool", choices=("wrk", "httpx"), default="wrk" if shutil.which("wrk") else "httpx")
    parser.add_argument("--json", type=Path, help="also write the results here")
    add_stack_arguments(parser)
    args = parser.parse_args()

    results: dict[str, Any] = {
        "machine_before": machine(),
        "tool": args.tool,
        "connections": args.connections,
    }
    with bench_stack(args) as stack:
        results["catalog"] = ensure_catalog(stack, args.items)
        for name, paths in workloads().items():
            for seconds, keep in ((args.warmup, False), (args.duration, True)):
                if args.tool == "wrk":
                    measured = run_wrk(stack.url, paths, args.connections, seconds)
                else:
                    measured = asyncio.run(run_httpx(stack.url, paths, args.connections, seconds))
                if keep:
                    results[name] = measured
    results["loadavg_after"] = machine()["loadavg"]
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def report(r: dict[str, Any]) -> None:
    m = r["machine_before"]
    print(f"machine: {m['nproc']} cpu ({m['cpu']}), {m['ram_gb']} GB RAM, python {m['python']}")
    print(f"load average before/after: {m['loadavg']} / {r['loadavg_after']}")
    print(
        f"catalog: {r['catalog']['items']:,} products live ({r['catalog']['version']}); load: {r['tool']}, "
        f"{r['connections']} connections"
    )
    print("| GET /v1/catalog?limit=100 | requests/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for name in workloads():
        x = r[name]
        print(
            f"| {name} | {x['rps']:.0f} | {x['p50_ms']:.1f} | {x['p90_ms']:.1f} | {x['p99_ms']:.1f} | "
            f"{x['max_ms']:.0f} | {x['non_2xx']} | {x['errors']} |"
        )


if __name__ == "__main__":
    sys.exit(main())
