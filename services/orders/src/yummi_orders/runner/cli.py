"""`yummi-runner`: the reference runner's command line (see `yummi-runner --help`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from yummi_orders.runner.client import GatewayClient
from yummi_orders.runner.journal import RunnerLog
from yummi_orders.runner.retailers import load_retailer
from yummi_orders.runner.runner import FatalRunnerError, Runner, RunnerOptions, RunnerStats

DEFAULT_GATEWAY = "http://localhost:8000"
DEFAULT_LOG_PATH = "data/thin-runner-log.txt"
TOKEN_ENV = "YUMMI_RUNNER_TOKEN"  # noqa: S105 - the variable's name, not a secret
LOG_PATH_ENV = "THIN_RUNNER_LOG_PATH"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yummi-runner",
        description="Claim queued orders from the gateway, place them at the retailer and acknowledge them.",
        epilog=(
            f"The token comes from --token or ${TOKEN_ENV}; in dev mint one with "
            "`python -m yummi_devstack token --email <an address in RUNNER_EMAILS>`. "
            f"Each step is appended to ${LOG_PATH_ENV} (default {DEFAULT_LOG_PATH})."
        ),
    )
    parser.add_argument(
        "--gateway", default=DEFAULT_GATEWAY, help=f"gateway base URL (default {DEFAULT_GATEWAY})"
    )
    parser.add_argument("--token", default=None, help=f"runner bearer token (default ${TOKEN_ENV})")
    parser.add_argument("--once", action="store_true", help="handle at most one order, then exit")
    parser.add_argument(
        "--max-orders", type=_positive_int, default=None, metavar="N", help="exit after N orders"
    )
    parser.add_argument("--retailer", default=None, help="claim only this retailer's orders")
    parser.add_argument(
        "--poll-seconds",
        type=_positive_float,
        default=2.0,
        help="wait between claims while the queue is empty",
    )
    parser.add_argument(
        "--heartbeat-seconds",
        type=_positive_float,
        default=None,
        help="heartbeat interval (default: a third of the lease the gateway grants)",
    )
    parser.add_argument(
        "--retailer-adapter",
        default="dry-run",
        metavar="dry-run|module:Class",
        help="how orders are placed (default dry-run: pretend, answer a DRY-<id> reference)",
    )
    parser.add_argument(
        "--dry-run-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="how long a dry-run placement takes",
    )
    parser.add_argument("--log-path", default=None, help=f"runner log file (default ${LOG_PATH_ENV})")
    return parser


async def run_runner(runner: Runner) -> RunnerStats:
    """Run until done; the first SIGINT/SIGTERM finishes the order in hand, a second one stops at once."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal() -> None:
        if runner.stop.is_set() and task is not None:
            task.cancel()
        runner.stop.set()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    try:
        return await runner.run()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await runner.client.aclose()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        sys.stderr.write(f"yummi-runner: no token: pass --token or set {TOKEN_ENV}\n")
        return 2
    try:
        retailer = load_retailer(args.retailer_adapter, dry_run_delay=args.dry_run_delay)
    except (ValueError, ImportError, AttributeError) as exc:
        sys.stderr.write(f"yummi-runner: cannot load the retailer adapter: {exc}\n")
        return 2
    log = RunnerLog(args.log_path or os.environ.get(LOG_PATH_ENV) or DEFAULT_LOG_PATH)
    runner = Runner(
        client=GatewayClient(base_url=args.gateway, token=token),
        retailer=retailer,
        log=log,
        options=RunnerOptions(
            poll_seconds=args.poll_seconds,
            once=args.once,
            max_orders=args.max_orders,
            retailer=args.retailer,
            heartbeat_seconds=args.heartbeat_seconds,
        ),
    )
    try:
        stats = asyncio.run(run_runner(runner))
    except FatalRunnerError as exc:
        sys.stderr.write(f"yummi-runner: {exc}\n")
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.stderr.write("yummi-runner: stopped\n")
        return 130
    sys.stderr.write(
        f"yummi-runner: claimed {stats.claimed}, completed {stats.completed}, failed {stats.failed}, "
        f"abandoned {stats.abandoned}\n"
    )
    return 0
