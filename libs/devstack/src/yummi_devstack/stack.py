"""`make run` and `make migrate`: infrastructure, migrations, the sample catalog and the five services."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

from .infra import SERVERS, InfraError, InfraUrls, default_state_dir, ensure_infra, repo_root, stop_infra
from .processes import (
    SERVICE_NAMES,
    STOP_GRACE_SECONDS,
    Interrupted,
    StackError,
    ensure_ports_free,
    executable,
    run_step,
    service_addresses,
    start_services,
)
from .tokens import dev_token

MIGRATION_ORDER = ("gateway", "catalog", "orders", "payments", "ai")
SAMPLE_CATALOG = Path("data") / "sample-catalog.json"
SERVICES_START_TIMEOUT = 240.0
DEV_DEFAULTS = {
    "ENVIRONMENT": "dev",
    "AUTH_DISABLE_VERIFICATION": "true",
    "LOG_JSON": "false",
    # dev tokens for these emails get the admin and runner roles (override in .env)
    "ADMIN_EMAILS": "admin@yummi.local",
    "RUNNER_EMAILS": "runner@yummi.local",
}


def say(message: str) -> None:
    sys.stdout.write(f"devstack | {message}\n")
    sys.stdout.flush()


def redact(url: str) -> str:
    """The URL with its password hidden, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def load_env(root: Path) -> dict[str, str]:
    """The process environment over the values of `<root>/.env` (the environment wins)."""
    values: dict[str, str] = {}
    dotenv_path = root / ".env"
    if dotenv_path.is_file():
        from dotenv import dotenv_values

        values = {key: value for key, value in dotenv_values(dotenv_path).items() if value is not None}
    return {**values, **os.environ}


@contextlib.contextmanager
def stop_signals(stop: threading.Event, hurry: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set `stop`; a second one sets `hurry` (skip the grace period)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            hurry.set()
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def prepare_infra(env: dict[str, str], state_dir: Path, *, quiet: bool = False) -> InfraUrls:
    """Ensure embedded servers for the URLs missing from `env`, put their URLs into `env` and say so."""
    report = say if not quiet else (lambda message: sys.stderr.write(f"devstack | {message}\n"))
    for name, (variable, _, _) in SERVERS.items():
        if env.get(variable):
            report(f"{name:<8} given: {variable}={redact(env[variable])}")
    missing = [name for name, (variable, _, _) in SERVERS.items() if not env.get(variable)]
    if missing:
        report(f"ensuring embedded {', '.join(missing)} under {state_dir} ...")
    started_at = time.monotonic()
    urls = ensure_infra(state_dir, env)
    for name, (variable, _, _) in SERVERS.items():
        if variable in urls.embedded:
            how = "started" if name in urls.started else "reused"
            report(f"{name:<8} {how}: {variable}={urls[variable]}")
    if missing:
        report(f"infrastructure ready in {time.monotonic() - started_at:.1f}s")
    env.update(urls)
    return urls


@contextlib.contextmanager
def infra_for_run(env: dict[str, str], state_dir: Path, *, quiet: bool = False) -> Iterator[InfraUrls]:
    """`prepare_infra` for one run (a benchmark, a script): the embedded servers it had to start are stopped
    when the block ends; left running they would hold their ports, and a later `make run` refuses to start."""
    urls = prepare_infra(env, state_dir, quiet=quiet)
    try:
        yield urls
    finally:
        if urls.started:
            stop_infra(state_dir, urls.started)


def migrate_all(env: Mapping[str, str], root: Path, stop: threading.Event | None = None) -> None:
    """`yummi-<service> migrate` for every service, in order; stops at the first failure."""
    for service in MIGRATION_ORDER:
        run_step(
            f"{service}:migrate", [executable(f"yummi-{service}"), "migrate"], env, cwd=root, stop_event=stop
        )


def seed_sample_catalog(env: Mapping[str, str], root: Path, stop: threading.Event | None = None) -> None:
    """Generate data/sample-catalog.json when missing and load it when the catalog is empty."""
    catalog_file = root / SAMPLE_CATALOG
    if not catalog_file.exists():
        generator = root / "scripts" / "generate_sample_catalog.py"
        if not generator.is_file():
            raise StackError(f"{generator} is missing: cannot create {SAMPLE_CATALOG}")
        catalog_file.parent.mkdir(parents=True, exist_ok=True)
        run_step(
            "sample-data",
            [sys.executable, str(generator), "--out", str(catalog_file)],
            env,
            cwd=root,
            stop_event=stop,
        )
    run_step(
        "catalog:seed",
        [executable("yummi-catalog"), "seed", "--if-empty", str(catalog_file)],
        env,
        cwd=root,
        stop_event=stop,
    )


def _print_welcome(gateway_url: str) -> None:
    token = dev_token()
    say("")
    say(f"Yummi is up: {gateway_url}   (health: {gateway_url}/v1/health)")
    say("A dev token (unsigned; accepted while AUTH_DISABLE_VERIFICATION=true):")
    say(f"  TOKEN={token}")
    say(f'  curl -H "Authorization: Bearer $TOKEN" {gateway_url}/v1/me')
    say("  (other users: .venv/bin/python -m yummi_devstack token --sub user_2 --email you@example.com)")
    say("Ctrl-C stops everything.")
    say("")


def run_stack() -> int:
    """Everything `make run` does; returns the process exit code (0 after Ctrl-C/SIGTERM)."""
    root = repo_root()
    env = load_env(root)
    state_dir = default_state_dir(env)
    stop, hurry = threading.Event(), threading.Event()
    started: frozenset[str] = frozenset()
    group = None
    code = 0
    with stop_signals(stop, hurry):
        try:
            ensure_ports_free(service_addresses(env), SERVICE_NAMES)
            urls = prepare_infra(env, state_dir)
            started = urls.started
            for key, value in DEV_DEFAULTS.items():
                env.setdefault(key, value)
            if stop.is_set():
                raise Interrupted
            migrate_all(env, root, stop)
            seed_sample_catalog(env, root, stop)
            say("starting " + ", ".join(SERVICE_NAMES) + " ...")
            group = start_services(
                env,
                SERVICE_NAMES,
                None,
                free_ports=False,
                echo=True,
                cwd=root,
                timeout=SERVICES_START_TIMEOUT,
                stop_event=stop,
            )
            _print_welcome(group.gateway_url)
            while not stop.wait(0.5):
                dead = group.exited()
                if dead is not None:
                    say(f"{dead.name} exited unexpectedly with {dead.poll()}; its last lines:")
                    for line in dead.tail(30):
                        say(f"  {dead.name} | {line}")
                    code = 1
                    break
        except Interrupted:
            pass
        except (StackError, InfraError) as exc:
            say(f"error: {exc}")
            code = 1
        finally:
            if group is not None:
                say("stopping services ...")
                codes = group.stop(STOP_GRACE_SECONDS, hurry)
                say("services stopped: " + ", ".join(f"{name}={rc}" for name, rc in codes.items()))
            if started:
                say(f"stopping embedded {', '.join(sorted(started))} ...")
                stop_infra(state_dir, started)
    say("stopped cleanly" if code == 0 else "stopped after a failure")
    return code


def migrate_stack() -> int:
    """Everything `make migrate` does: ensure infrastructure, migrate every service, stop what was started."""
    root = repo_root()
    env = load_env(root)
    state_dir = default_state_dir(env)
    stop, hurry = threading.Event(), threading.Event()
    started: frozenset[str] = frozenset()
    code = 0
    with stop_signals(stop, hurry):
        try:
            started = prepare_infra(env, state_dir).started
            migrate_all(env, root, stop)
            say("all migrations applied")
        except Interrupted:
            code = 130
        except (StackError, InfraError) as exc:
            say(f"error: {exc}")
            code = 1
        finally:
            if started:
                stop_infra(state_dir, started)
    return code
