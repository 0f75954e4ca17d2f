"""Session infrastructure for every pytest run in the monorepo (`-p yummi_devstack.pytest_plugin`).

Before any conftest or test module is imported (so before any service reads its settings) it:
- takes DATABASE_URL/REDIS_URL/NATS_URL from the environment, else starts throw-away containers when a Docker
  engine answers and testcontainers is installed, else starts (or reuses) the embedded servers;
- creates a fresh database `yummi_test_<hex>` on that Postgres and points DATABASE_URL at it;
- isolates events and keys: NATS_SUBJECT_PREFIX=t<hex>.events, NATS_STREAM=T<HEX>_EVENTS,
  REDIS_KEY_PREFIX=t<hex>:;
- sets ENVIRONMENT=test, AUTH_DISABLE_VERIFICATION=true, LOG_JSON=false;
- runs `yummi-<service> migrate` for the five services;
and at the end drops the database, the NATS stream and the session's Redis keys, and stops what it started.

YUMMI_TEST_INFRA=off skips all of it (unit tests); YUMMI_TEST_SERVICES (comma-separated) limits the migrated
services. Tests under `tests/unit|integration|e2e/` folders get the matching marker.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Before any test imports grpc: no fork handlers in this process. Tests start servers (initdb, postgres as
# its own user) with fork + exec while earlier tests' gRPC channels still have threads; gRPC's fork handlers
# then skip preparing, and the child once died in them (SIGSEGV) before it reached exec.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from .infra import (  # noqa: E402 - after the environment above
    SERVERS,
    default_state_dir,
    drop_database,
    ensure_database,
    ensure_infra,
    run_coroutine,
    stop_infra,
    url_with_database,
)
from .processes import executable

MIGRATED_SERVICES = ("gateway", "catalog", "orders", "payments", "ai")
_PER_SERVICE_DATABASE_URLS = tuple(f"{name.upper()}_DATABASE_URL" for name in MIGRATED_SERVICES)
_FOLDER_MARKERS = ("unit", "integration", "e2e")


@dataclass
class SessionInfra:
    """What the session runs against; `database_url` is the fresh per-session database."""

    database_url: str
    redis_url: str
    nats_url: str
    nats_stream: str
    nats_subject_prefix: str
    redis_key_prefix: str
    source: dict[str, str] = field(default_factory=dict)  # URL variable -> given | docker | embedded
    _cleanups: list[Callable[[], object]] = field(default_factory=list, repr=False)


_session: SessionInfra | None = None


def _wanted(args: list[str]) -> bool:
    if os.environ.get("YUMMI_TEST_INFRA", "").lower() in {"off", "0", "false", "no"}:
        return False
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return False  # the controller prepared everything; workers inherit its environment
    return not any(arg in {"-h", "--help", "--version", "-V", "--markers", "--fixtures"} for arg in args)


def _docker_answers() -> bool:
    if shutil.which("docker") is None or os.environ.get("YUMMI_TEST_DOCKER", "").lower() in {"off", "0"}:
        return False
    try:
        subprocess.run(["docker", "info"], capture_output=True, timeout=3, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    try:
        import testcontainers  # noqa: F401
    except ImportError:
        return False
    return True


def _start_containers(missing: list[str], cleanups: list[Callable[[], object]]) -> dict[str, str]:
    """Postgres, Redis and NATS (JetStream) containers for the missing URL variables."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    urls: dict[str, str] = {}
    if "DATABASE_URL" in missing:
        from testcontainers.postgres import PostgresContainer

        postgres = PostgresContainer(
            "postgres:16-alpine",
            username="postgres",
            password="postgres",  # noqa: S106 - throw-away container
            dbname="postgres",
            driver=None,
        )
        postgres.start()
        cleanups.append(postgres.stop)
        host, port = postgres.get_container_host_ip(), postgres.get_exposed_port(5432)
        urls["DATABASE_URL"] = f"postgresql://postgres:postgres@{host}:{port}/postgres"
    if "REDIS_URL" in missing:
        from testcontainers.redis import RedisContainer

        redis = RedisContainer("redis:7-alpine")
        redis.start()
        cleanups.append(redis.stop)
        urls["REDIS_URL"] = f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
    if "NATS_URL" in missing:
        nats = DockerContainer("nats:2.10-alpine").with_command("-js").with_exposed_ports(4222)
        nats.start()
        cleanups.append(nats.stop)
        wait_for_logs(nats, "Server is ready", timeout=60)
        urls["NATS_URL"] = f"nats://{nats.get_container_host_ip()}:{nats.get_exposed_port(4222)}"
    return urls


def _migrate(services: list[str], env: dict[str, str]) -> None:
    """`yummi-<service> migrate` for each service, side by side; fails the session with their output."""
    try:
        commands = {service: [executable(f"yummi-{service}"), "migrate"] for service in services}
    except Exception as exc:
        raise pytest.UsageError(f"{exc} (YUMMI_TEST_SERVICES limits which services are migrated)") from exc
    running = {
        service: subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for service, argv in commands.items()
    }
    failures = []
    for service, proc in running.items():
        output, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failures.append(
                f"--- yummi-{service} migrate exited with {proc.returncode}:\n"
                + output.decode(errors="replace")[-4000:]
            )
    if failures:
        raise pytest.UsageError("migrations failed for the test database\n" + "\n".join(failures))


async def _delete_stream(nats_url: str, stream: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    connection = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        with contextlib.suppress(NotFoundError):
            await connection.jetstream().delete_stream(stream)
    finally:
        await connection.close()


async def _delete_keys(redis_url: str, prefix: str) -> None:
    try:
        from redis.asyncio import Redis
    except ImportError:
        return
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


def prepare_session() -> SessionInfra:
    """Servers, a fresh database and migrated schemas; mutates os.environ (see the module docstring)."""
    cleanups: list[Callable[[], object]] = []
    env = os.environ
    source = {variable: "given" for variable, _, _ in SERVERS.values() if env.get(variable)}
    missing = [variable for variable, _, _ in SERVERS.values() if not env.get(variable)]
    urls: dict[str, str] = {}
    try:
        if missing and _docker_answers():
            urls = _start_containers(missing, cleanups)
            source.update(dict.fromkeys(urls, "docker"))
        elif missing:
            state_dir = default_state_dir(env)
            embedded = ensure_infra(state_dir, env)
            if embedded.started:
                cleanups.append(lambda: stop_infra(state_dir, embedded.started))
            urls = {variable: embedded[variable] for variable in embedded.embedded}
            source.update(dict.fromkeys(urls, "embedded"))
        server_url = urls.get("DATABASE_URL") or env["DATABASE_URL"]
        token = secrets.token_hex(4)
        database_url = url_with_database(server_url, f"yummi_test_{token}")
        ensure_database(database_url)
        cleanups.append(lambda: drop_database(database_url))

        infra = SessionInfra(
            database_url=database_url,
            redis_url=urls.get("REDIS_URL") or env["REDIS_URL"],
            nats_url=urls.get("NATS_URL") or env["NATS_URL"],
            nats_stream=f"T{token.upper()}_EVENTS",
            nats_subject_prefix=f"t{token}.events",
            redis_key_prefix=f"t{token}:",
            source=source,
            _cleanups=cleanups,
        )
        cleanups.append(lambda: run_coroutine(_delete_stream(infra.nats_url, infra.nats_stream)))
        cleanups.append(lambda: run_coroutine(_delete_keys(infra.redis_url, infra.redis_key_prefix)))
        for variable in _PER_SERVICE_DATABASE_URLS:
            env.pop(variable, None)  # every service uses the session database
        env.update(
            {
                "DATABASE_URL": infra.database_url,
                "REDIS_URL": infra.redis_url,
                "NATS_URL": infra.nats_url,
                "NATS_SUBJECT_PREFIX": infra.nats_subject_prefix,
                "NATS_STREAM": infra.nats_stream,
                "REDIS_KEY_PREFIX": infra.redis_key_prefix,
                "ENVIRONMENT": "test",
                "AUTH_DISABLE_VERIFICATION": "true",
                "LOG_JSON": "false",
            }
        )
        selected = os.environ.get("YUMMI_TEST_SERVICES")
        services = list(MIGRATED_SERVICES)
        if selected is not None:
            services = [name.strip() for name in selected.split(",") if name.strip()]
        _migrate(services, dict(env))
    except BaseException:
        _run_cleanups(cleanups)
        raise
    return infra


def _run_cleanups(cleanups: list[Callable[[], object]]) -> None:
    for cleanup in reversed(cleanups):
        try:
            cleanup()
        except Exception as exc:  # one failed cleanup must not skip the others
            sys.stderr.write(f"yummi test infra: cleanup failed: {exc!r}\n")
    cleanups.clear()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    global _session
    if _session is not None or not _wanted(args):
        return
    _session = prepare_session()
    session = _session

    def finish() -> None:
        global _session
        _run_cleanups(session._cleanups)
        _session = None

    early_config.add_cleanup(finish)


def pytest_report_header(config: pytest.Config) -> list[str]:
    if _session is None:
        return ["yummi test infra: off"]
    where = ", ".join(f"{variable}={how}" for variable, how in _session.source.items())
    return [
        f"yummi test infra: database {_session.database_url.rsplit('/', 1)[-1]}, "
        f"stream {_session.nats_stream} ({where})"
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).parts
        for marker in _FOLDER_MARKERS:
            with contextlib.suppress(ValueError, IndexError):
                if parts[parts.index("tests") + 1] == marker:
                    item.add_marker(marker)


@pytest.fixture(scope="session")
def yummi_infra() -> Iterator[SessionInfra]:
    """The session's servers, database and isolation prefixes (skips when YUMMI_TEST_INFRA=off)."""
    if _session is None:
        pytest.skip("test infrastructure is off (YUMMI_TEST_INFRA=off)")
    yield _session
