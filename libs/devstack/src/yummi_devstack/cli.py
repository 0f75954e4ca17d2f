"""Command line of the dev stack: `python -m yummi_devstack run|migrate|infra|stop|status|token`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from .infra import InfraError, default_state_dir, repo_root, running_servers, stop_infra
from .stack import load_env, migrate_stack, prepare_infra, run_stack
from .tokens import DEV_EMAIL, DEV_SUB, dev_token


def _claim(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _infra() -> int:
    env = load_env(repo_root())
    try:
        urls = prepare_infra(env, default_state_dir(env), quiet=True)
    except InfraError as exc:
        sys.stderr.write(f"devstack | error: {exc}\n")
        return 1
    for variable, url in urls.items():
        if variable in urls.embedded:
            print(f"export {variable}={shlex.quote(url)}")
    return 0


def _stop() -> int:
    state_dir = default_state_dir(load_env(repo_root()))
    stopped = stop_infra(state_dir)
    print(f"stopped: {', '.join(stopped)}" if stopped else f"no embedded servers running under {state_dir}")
    return 0


def _status() -> int:
    state_dir = default_state_dir(load_env(repo_root()))
    running = running_servers(state_dir)
    if not running:
        print(f"no embedded servers running under {state_dir}")
    for name, record in running.items():
        print(f"{name:<8} pid {record.pid:<8} port {record.port}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yummi-devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="infrastructure, migrations, sample catalog and all five services")
    commands.add_parser("migrate", help="ensure infrastructure and migrate every service")
    commands.add_parser("infra", help="ensure embedded servers; print `export ...` lines for the shell")
    commands.add_parser("stop", help="stop the embedded servers of the state folder")
    commands.add_parser("status", help="list the embedded servers running from the state folder")
    token = commands.add_parser("token", help="print an unsigned dev JWT")
    token.add_argument("--sub", default=DEV_SUB)
    token.add_argument("--email", default=DEV_EMAIL)
    token.add_argument(
        "--claim",
        action="append",
        type=_claim,
        default=[],
        metavar="KEY=VALUE",
        help="extra claim; VALUE is parsed as JSON when it is JSON",
    )
    args = parser.parse_args(argv)

    if args.command == "run":
        return run_stack()
    if args.command == "migrate":
        return migrate_stack()
    if args.command == "infra":
        return _infra()
    if args.command == "stop":
        return _stop()
    if args.command == "status":
        return _status()
    print(dev_token(args.sub, args.email, **dict(args.claim)))
    return 0
