"""Child processes of the stack: the five services, their migrations and seeding, with prefixed output."""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from .infra import HOST, free_port, port_is_free

SERVICE_NAMES: tuple[str, ...] = ("catalog", "orders", "payments", "ai", "gateway")
GRPC_SERVICES: dict[str, tuple[str, int]] = {
    "catalog": ("CATALOG_GRPC_ADDR", 50051),
    "orders": ("ORDERS_GRPC_ADDR", 50052),
    "payments": ("PAYMENTS_GRPC_ADDR", 50053),
    "ai": ("AI_GRPC_ADDR", 50054),
}
DEFAULT_GATEWAY_PORT = 8000
STOP_GRACE_SECONDS = 10.0
_COLOURS = ("36", "33", "35", "32", "34", "31", "96", "93")
_print_lock = threading.Lock()


class StackError(RuntimeError):
    """A step or a service of the stack failed."""


class Interrupted(Exception):
    """A stop was requested (Ctrl-C / SIGTERM) while waiting."""


def executable(name: str) -> str:
    """A console script of this environment (`yummi-catalog`), preferring the running interpreter's bin/."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"`{name}` is not installed in this environment; run `make venv`")
    return found


class ChildProcess:
    """One child with merged stdout/stderr, echoed with a name prefix and/or written to a log file.

    Echoed output goes through a pipe and a reader thread here; output that only goes to a log file is
    written there by the child itself (no pipe, no thread, no CPU of this process per line: under load a
    service logs a line per request), and `tail` reads the file's end.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        cwd: Path | None = None,
        echo: bool = True,
        log_path: Path | None = None,
        tail_lines: int = 200,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self._echo = echo
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._log: IO[str] | None = None
        self._direct = log_path is not None and not echo
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        child_env = dict(env)
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        if self._direct:
            assert log_path is not None  # noqa: S101 - implied by _direct
            with open(log_path, "ab") as output:
                self.popen = self._spawn(child_env, output)
        else:
            if log_path is not None:
                # closed by the reader thread once the child's output ends
                self._log = open(log_path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
            self.popen = self._spawn(child_env, subprocess.PIPE)
        self._reader = threading.Thread(target=self._pump, name=f"output-{name}", daemon=True)
        self._reader.start()

    def _spawn(self, env: Mapping[str, str], output: Any) -> subprocess.Popen[bytes]:
        # A process group of its own: the supervisor decides when and how it stops
        return subprocess.Popen(
            self.argv,
            env=env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            process_group=0,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _prefix(self) -> str:
        label = f"{self.name:<8} |"
        if sys.stdout.isatty():
            colour = _COLOURS[sum(map(ord, self.name)) % len(_COLOURS)]
            return f"\033[{colour}m{label}\033[0m "
        return label + " "

    def _pump(self) -> None:
        if self.popen.stdout is None:
            return
        prefix = self._prefix()
        try:
            for raw in iter(self.popen.stdout.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                self._tail.append(line)
                if self._log is not None:
                    self._log.write(line + "\n")
                    self._log.flush()
                if self._echo:
                    with _print_lock:
                        sys.stdout.write(prefix + line + "\n")
                        sys.stdout.flush()
        finally:
            if self._log is not None:
                self._log.close()

    def poll(self) -> int | None:
        return self.popen.poll()

    def tail(self, lines: int = 30) -> list[str]:
        if self._direct and self.log_path is not None:
            return _last_lines(self.log_path, lines)
        self._reader.join(timeout=1.0)  # collect what the child wrote before exiting
        return list(self._tail)[-lines:]

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        code = self.popen.wait(timeout)
        self._reader.join(timeout=2.0)
        return code

    def respawn(self) -> ChildProcess:
        """A new child running the same command with the same env, cwd and log (this one must have exited)."""
        if self.poll() is None:
            raise StackError(f"{self.name} is still running")
        return ChildProcess(
            self.name, self.argv, self.env, cwd=self.cwd, echo=self._echo, log_path=self.log_path
        )


def _last_lines(path: Path, lines: int, chunk: int = 64 * 1024) -> list[str]:
    """The last `lines` lines of a (log) file, reading only its end."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - chunk))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def stop_processes(
    children: Iterable[ChildProcess], grace: float = STOP_GRACE_SECONDS, hurry: threading.Event | None = None
) -> dict[str, int]:
    """SIGTERM every child's group, SIGKILL those still alive after `grace` seconds (or once `hurry` is set);
    returns exit codes."""
    children = list(children)
    for child in children:
        if child.poll() is None:
            child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(child.poll() is None for child in children):
        if time.monotonic() >= deadline or (hurry is not None and hurry.is_set()):
            break
        time.sleep(0.05)
    for child in children:
        # also helpers the child left in its group (workers, reloaders)
        child.signal_group(signal.SIGKILL)
        child.wait()
    return {child.name: child.popen.returncode for child in children}


def run_step(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    stop_event: threading.Event | None = None,
    echo: bool = True,
) -> None:
    """Run one command to completion with prefixed output; raises StackError on a non-zero exit."""
    child = ChildProcess(name, argv, env, cwd=cwd, echo=echo)
    while child.poll() is None:
        if stop_event is not None and stop_event.wait(0.1):
            stop_processes([child])
            raise Interrupted
        elif stop_event is None:
            time.sleep(0.1)
    code = child.wait()
    if code != 0:
        tail = "" if echo else "\n" + "\n".join(child.tail())
        raise StackError(f"`{' '.join(argv)}` exited with {code}{tail}")


# ---------------------------------------------------------------------------------------------------------
# Health checks


def grpc_serving(address: str, timeout: float = 1.0) -> bool:
    """True when the standard gRPC health service at `address` reports the server SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local http URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


# ---------------------------------------------------------------------------------------------------------
# A group of running services


class ServiceGroup:
    """The running services; `stop()` ends them all (also as a context manager)."""

    def __init__(self, env: dict[str, str], log_dir: Path | None) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: dict[str, ChildProcess] = {}

    @property
    def gateway_url(self) -> str:
        return f"http://{HOST}:{self.env.get('GATEWAY_PORT', DEFAULT_GATEWAY_PORT)}"

    def address(self, name: str) -> str:
        """The gRPC address of a backend service (`127.0.0.1:port`)."""
        variable, port = GRPC_SERVICES[name]
        return self.env.get(variable) or f"{HOST}:{port}"

    def exited(self) -> ChildProcess | None:
        """The first service that is no longer running, if any."""
        return next((child for child in self.processes.values() if child.poll() is not None), None)

    def tails(self, lines: int = 30) -> dict[str, list[str]]:
        return {name: child.tail(lines) for name, child in self.processes.items()}

    def stop(self, grace: float = STOP_GRACE_SECONDS, hurry: threading.Event | None = None) -> dict[str, int]:
        """Stop every service: SIGTERM, then SIGKILL after `grace` seconds; returns exit codes."""
        return stop_processes(self.processes.values(), grace, hurry)

    def is_healthy(self, name: str) -> bool:
        """One health check of one service (gRPC health, or the gateway's /v1/health)."""
        if name == "gateway":
            return http_ok(f"{self.gateway_url}/v1/health")
        return grpc_serving(self.address(name))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """End one service abruptly (SIGKILL to its process group by default: no clean shutdown) and wait
        for it; returns its exit code. `restart(name)` starts it again."""
        child = self.processes[name]
        child.signal_group(sig)
        code = child.wait(STOP_GRACE_SECONDS)
        child.signal_group(signal.SIGKILL)  # helpers it left in its group
        return code

    def restart(
        self, name: str, *, timeout: float = 120.0, grace: float = STOP_GRACE_SECONDS
    ) -> ChildProcess:
        """Stop one service if it still runs (SIGTERM, SIGKILL after `grace`), start it again with the same
        command, env and port, and wait until it is healthy."""
        old = self.processes[name]
        if old.poll() is None:
            stop_processes([old], grace)
        else:
            old.signal_group(signal.SIGKILL)
            old.wait()
        port = int(self.env["GATEWAY_PORT"]) if name == "gateway" else _port_of(self.address(name))
        deadline = time.monotonic() + timeout
        while not port_is_free(port):  # the old listener's socket may linger for a moment
            if time.monotonic() > deadline:
                raise StackError(f"port {port} of {name} is still taken")
            time.sleep(0.05)
        self.processes[name] = old.respawn()
        _wait_until(self.is_healthy, self, [name], deadline, None)
        return self.processes[name]

    def pause(self, name: str) -> None:
        """Freeze one service (SIGSTOP): it keeps its port and connections but answers nothing until
        `resume`."""
        self.processes[name].signal_group(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """Let a paused service run again (SIGCONT)."""
        self.processes[name].signal_group(signal.SIGCONT)

    def __enter__(self) -> ServiceGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_until(
    check: Any, group: ServiceGroup, names: Sequence[str], deadline: float, stop_event: threading.Event | None
) -> None:
    pending = list(names)
    while pending:
        if stop_event is not None and stop_event.is_set():
            raise Interrupted
        dead = group.exited()
        if dead is not None:
            raise StackError(
                f"{dead.name} exited with {dead.poll()} while starting:\n" + "\n".join(dead.tail())
            )
        pending = [name for name in pending if not check(name)]
        if not pending:
            return
        if time.monotonic() > deadline:
            details = "\n".join(
                f"--- {name}:\n" + "\n".join(group.processes[name].tail(15)) for name in pending
            )
            raise StackError(f"not healthy in time: {', '.join(pending)}\n{details}")
        time.sleep(0.25)


def service_addresses(
    env: Mapping[str, str], names: Sequence[str] = SERVICE_NAMES, *, free_ports: bool = False
) -> dict[str, str]:
    """`env` plus the address variables of `names` (`CATALOG_GRPC_ADDR`, ..., `GATEWAY_PORT`): free ports when
    `free_ports`, else the values in `env` or the defaults."""
    child_env = dict(env)
    for name in names:
        if name == "gateway":
            continue
        variable, default_port = GRPC_SERVICES[name]
        if free_ports:
            child_env[variable] = f"{HOST}:{free_port()}"
        else:
            child_env.setdefault(variable, f"{HOST}:{default_port}")
    if "gateway" in names:
        if free_ports:
            child_env["GATEWAY_PORT"] = str(free_port())
        else:
            child_env.setdefault("GATEWAY_PORT", str(DEFAULT_GATEWAY_PORT))
    return child_env


def ensure_ports_free(env: Mapping[str, str], names: Sequence[str] = SERVICE_NAMES) -> None:
    """Fail when a service port is taken: a server left from an earlier run would answer our health checks."""
    taken = [
        f"{name} ({env[GRPC_SERVICES[name][0]]})"
        for name in names
        if name != "gateway" and not port_is_free(_port_of(env[GRPC_SERVICES[name][0]]))
    ]
    if "gateway" in names and not port_is_free(int(env["GATEWAY_PORT"])):
        taken.append(f"gateway (port {env['GATEWAY_PORT']})")
    if taken:
        raise StackError("ports already in use: " + ", ".join(taken) + " (is another stack running?)")


def start_services(
    env: Mapping[str, str],
    names: Sequence[str] = SERVICE_NAMES,
    log_dir: Path | None = None,
    *,
    free_ports: bool = True,
    echo: bool = False,
    timeout: float = 120.0,
    cwd: Path | None = None,
    stop_event: threading.Event | None = None,
) -> ServiceGroup:
    """Start `yummi-<name> serve` for each name and wait until each is healthy (gRPC health `Check`, or the
    gateway's `/v1/health`). With `free_ports` every started service gets a free port, and the addresses
    (`CATALOG_GRPC_ADDR`, ..., `GATEWAY_PORT`) are set in the children's env and in `group.env`."""
    unknown = set(names) - set(SERVICE_NAMES)
    if unknown:
        raise ValueError(f"unknown services: {sorted(unknown)}")
    child_env = service_addresses(env, names, free_ports=free_ports)
    backends = [name for name in SERVICE_NAMES if name in names and name != "gateway"]
    ensure_ports_free(child_env, names)

    group = ServiceGroup(child_env, log_dir)
    deadline = time.monotonic() + timeout
    try:
        for name in backends:
            group.processes[name] = ChildProcess(
                name,
                [executable(f"yummi-{name}"), "serve"],
                child_env,
                cwd=cwd,
                echo=echo,
                log_path=log_dir / f"{name}.log" if log_dir is not None else None,
            )
        _wait_until(lambda name: grpc_serving(group.address(name)), group, backends, deadline, stop_event)
        if "gateway" in names:
            group.processes["gateway"] = ChildProcess(
                "gateway",
                [executable("yummi-gateway"), "serve"],
                child_env,
                cwd=cwd,
                echo=echo,
                log_path=log_dir / "gateway.log" if log_dir is not None else None,
            )
            _wait_until(
                lambda _: http_ok(f"{group.gateway_url}/v1/health"), group, ["gateway"], deadline, stop_event
            )
    except BaseException:
        group.stop()
        raise
    return group
