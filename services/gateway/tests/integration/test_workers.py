"""`yummi-gateway serve` with GATEWAY_WORKERS=2: two processes on one port, /metrics adds them up, and
SIGTERM stops the whole group cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("yummi_infra")]

REQUESTS = 40
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    metrics_dir: Path
    log: Path


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    log = tmp_path / "gateway.log"
    env = {
        **os.environ,
        "GATEWAY_WORKERS": "2",
        "GATEWAY_PORT": str(port),
        "ENVIRONMENT": "test",
        "MIGRATE_ON_START": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_JSON": "true",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own console script
            [sys.executable, "-m", "yummi_gateway", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                httpx.get(f"{url}/metrics", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the gateway did not start:\n{log.read_text()[-4000:]}") from None
                time.sleep(0.3)
        yield Served(url=url, proc=proc, metrics_dir=metrics_dir, log=log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _worker_pids(metrics_dir: Path) -> set[str]:
    """The pids that wrote metric files (every worker sets yummi_build_info as it starts)."""
    return {m.group(1) for f in metrics_dir.glob("*.db") if (m := re.search(r"_(\d+)\.db$", f.name))}


def test_two_workers_answer_count_every_request_once_and_stop_on_sigterm(two_workers: Served) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while len(_worker_pids(two_workers.metrics_dir)) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)  # the second worker may still be starting
    assert len(_worker_pids(two_workers.metrics_dir)) == 2

    for _ in range(REQUESTS):
        # a connection per request, so the kernel spreads them over both workers' accept queues
        with httpx.Client(base_url=two_workers.url, timeout=10) as client:
            response = client.get("/v1/no-such-route")
        assert response.status_code == 404
        assert response.headers["x-request-id"]
        assert response.headers["x-content-type-options"] == "nosniff"

    metrics = httpx.get(f"{two_workers.url}/metrics", timeout=10).text
    counted = re.search(
        r'^yummi_gateway_http_requests_total\{method="GET",route="unmatched",status="404"\} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    assert counted is not None, metrics[:2000]
    assert float(counted.group(1)) == REQUESTS  # summed over the workers, whichever answers the scrape

    # SIGTERM stops the group: each worker runs its lifespan shutdown, the supervisor exits 0.
    two_workers.proc.send_signal(signal.SIGTERM)
    assert two_workers.proc.wait(60) == 0
    log = two_workers.log.read_text()
    assert log.count('"gateway started"') == 2
    assert log.count('"Application shutdown complete."') == 2
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{two_workers.url}/metrics", timeout=2)
