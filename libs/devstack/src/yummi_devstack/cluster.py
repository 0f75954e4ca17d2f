"""Past one machine, on one machine: a three-node NATS JetStream cluster and replicated services on loopback.

`NatsCluster` runs nats-server processes (the embedded binary) with routes between them, distinct server names
and a store folder each; a node can be stopped and started again on the same ports and store, as a crashed or
rolled pod would. `start_replicas` runs several processes of every service, each on its own port, with the
clients of a service (the gateway, orders and ai calling catalog) given every replica's address as one
`ipv4:` target, so gRPC's round_robin spreads the calls.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .infra import HOST, InfraError, _spawn, _tail, free_port, nats_server_bin, port_is_free
from .processes import GRPC_SERVICES, SERVICE_NAMES, STOP_GRACE_SECONDS, ServiceGroup, start_services

NATS_START_TIMEOUT = 60.0
NATS_STOP_TIMEOUT = 15.0


def _free_ports(count: int, *, spare_offset: int | None = None) -> list[int]:
    """`count` distinct free ports; with `spare_offset`, each port + offset is free too (a metrics port)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port in ports:
            continue
        if spare_offset is not None:
            spare = port + spare_offset
            if spare > 65535 or spare in ports or not port_is_free(spare):
                continue
        ports.append(port)
    return ports


def _http_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    """Status and JSON body of a GET (status 0 when nothing answered)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local http URL
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


@dataclass
class NatsNode:
    """One nats-server of the cluster: its ports, store folder, config file and (while running) process."""

    name: str
    port: int
    cluster_port: int
    http_port: int
    store_dir: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        """/healthz: the node serves clients and its JetStream (meta group, streams, consumers) is current."""
        status, _ = _http_json(f"{self.monitor_url}/healthz")
        return status == 200

    def jsz(self) -> dict[str, Any]:
        """The node's JetStream report (/jsz); empty when it does not answer."""
        status, body = _http_json(f"{self.monitor_url}/jsz")
        return body if status == 200 and isinstance(body, dict) else {}


class NatsCluster:
    """`size` nats-server processes with JetStream, one route mesh, named `{name}-1`... (a context manager).

    Every node keeps its ports and store folder for the life of the object, so `stop_node` then `start_node`
    is a restart of the same member, which catches up from the others.
    """

    def __init__(self, state_dir: Path, *, size: int = 3, name: str = "yummi") -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.state_dir = Path(state_dir).resolve()
        self.name = name
        ports = _free_ports(3 * size)
        self.nodes = [
            NatsNode(
                name=f"{name}-{index + 1}",
                port=ports[3 * index],
                cluster_port=ports[3 * index + 1],
                http_port=ports[3 * index + 2],
                store_dir=self.state_dir / f"{name}-{index + 1}" / "jetstream",
                config_path=self.state_dir / f"{name}-{index + 1}" / "nats.conf",
                log_path=self.state_dir / f"{name}-{index + 1}" / "nats.log",
            )
            for index in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated: the form NATS_URL takes for a cluster."""
        return ",".join(self.urls)

    def _config(self, node: NatsNode) -> str:
        routes = ", ".join(
            f'"nats-route://{HOST}:{other.cluster_port}"' for other in self.nodes if other is not node
        )
        return (
            f'server_name: "{node.name}"\n'
            f'listen: "{HOST}:{node.port}"\n'
            f'http: "{HOST}:{node.http_port}"\n'
            f'jetstream {{\n  store_dir: "{node.store_dir}"\n}}\n'
            f'cluster {{\n  name: "{self.name}"\n  listen: "{HOST}:{node.cluster_port}"\n'
            f"  routes: [{routes}]\n}}\n"
        )

    def start(self, timeout: float = NATS_START_TIMEOUT) -> NatsCluster:
        """Start every node and wait until each is healthy and the cluster has a JetStream meta leader."""
        try:
            for index in range(len(self.nodes)):
                self._spawn(index)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, index: int) -> None:
        node = self.nodes[index]
        if node.running:
            return
        taken = [port for port in (node.port, node.cluster_port, node.http_port) if not port_is_free(port)]
        if taken:
            raise InfraError(f"ports {taken} of NATS node {node.name} are taken by another program")
        node.store_dir.mkdir(parents=True, exist_ok=True)
        node.config_path.write_text(self._config(node))
        node.process = _spawn(
            [str(nats_server_bin()), "-c", str(node.config_path)], node.log_path, node.config_path.parent
        )

    def meta_leader(self) -> str | None:
        """The server name of the JetStream meta leader, as a running node reports it."""
        for node in self.nodes:
            if node.running:
                leader = node.jsz().get("meta_cluster", {}).get("leader")
                if leader:
                    return str(leader)
        return None

    def wait_healthy(self, timeout: float = NATS_START_TIMEOUT) -> None:
        """Wait until every running node reports healthy and a meta leader is known."""
        deadline = time.monotonic() + timeout
        while True:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise InfraError(
                        f"NATS node {node.name} exited with {node.process.returncode}; "
                        f"{node.log_path}:\n{_tail(node.log_path)}"
                    )
            running = [node for node in self.nodes if node.running]
            if running and all(node.healthy() for node in running) and self.meta_leader():
                return
            if time.monotonic() > deadline:
                details = "\n".join(f"--- {node.name}:\n{_tail(node.log_path, 15)}" for node in self.nodes)
                raise InfraError(f"the NATS cluster was not healthy within {timeout:.0f}s\n{details}")
            time.sleep(0.2)

    def stop_node(self, index: int, *, kill: bool = False, timeout: float = NATS_STOP_TIMEOUT) -> None:
        """Stop one node: SIGTERM (a clean shutdown) or, with `kill`, SIGKILL (a crash)."""
        node = self.nodes[index]
        proc = node.process
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        node.process = None

    def start_node(self, index: int, timeout: float = NATS_START_TIMEOUT) -> None:
        """Start a stopped node again (same ports and store) and wait until the cluster is healthy."""
        self._spawn(index)
        self.wait_healthy(timeout)

    def stop(self) -> None:
        for index in range(len(self.nodes)):
            with contextlib.suppress(Exception):
                self.stop_node(index)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------------------
# Replicated services


def replica_target(addresses: Sequence[str]) -> str:
    """One gRPC target for several `host:port` replicas (`ipv4:a:1,b:2`), which round_robin spreads over."""
    return "ipv4:" + ",".join(addresses)


@dataclass
class ReplicaSet:
    """Every process of a replicated stack: `groups[name]` holds one ServiceGroup per replica."""

    env: dict[str, str]
    addresses: dict[str, list[str]]  # backend service -> its replicas' gRPC addresses
    groups: dict[str, list[ServiceGroup]] = field(default_factory=dict)

    @property
    def gateway_urls(self) -> list[str]:
        return [group.gateway_url for group in self.groups.get("gateway", [])]

    def metrics_urls(self, name: str) -> list[str]:
        """The /metrics URL of each replica of a backend service (its gRPC port + 1000)."""
        return [
            f"http://{address.rsplit(':', 1)[0]}:{int(address.rsplit(':', 1)[1]) + 1000}/metrics"
            for address in self.addresses[name]
        ]

    def tails(self, lines: int = 30) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for groups in self.groups.values():
            for index, group in enumerate(groups):
                for child_name, tail in group.tails(lines).items():
                    out[f"{child_name}-{index + 1}"] = tail
        return out

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the gateways first, then the backends, each tier side by side."""
        tiers = [["gateway"], [name for name in self.groups if name != "gateway"]]
        for names in tiers:
            groups = [group for name in names for group in self.groups.get(name, [])]
            if groups:
                with ThreadPoolExecutor(len(groups)) as pool:
                    list(pool.map(lambda group: group.stop(grace), groups))

    def __enter__(self) -> ReplicaSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_replicas(
    env: Mapping[str, str],
    *,
    replicas: int = 2,
    gateways: int = 2,
    names: Sequence[str] = SERVICE_NAMES,
    log_dir: Path | None = None,
    timeout: float = 180.0,
) -> ReplicaSet:
    """Start `replicas` processes of each backend service and `gateways` gateways, all from `env`.

    Each replica listens on a free port of its own (and serves /metrics on that port + 1000); every client of
    a service reaches all its replicas through one `ipv4:` target; backend replica i is told gateway i's port.
    Backends start side by side, then the gateways. Migrations: give MIGRATE_ON_START=false and migrate first,
    or let the replicas queue on the per-schema migration lock.
    """
    backends = [name for name in SERVICE_NAMES if name in names and name != "gateway"]
    ports = iter(_free_ports(replicas * len(backends), spare_offset=1000))
    addresses = {name: [f"{HOST}:{next(ports)}" for _ in range(replicas)] for name in backends}
    gateway_ports = _free_ports(gateways) if "gateway" in names else [int(env.get("GATEWAY_PORT", 8000))]
    client_env = dict(env)
    for name in backends:
        client_env[GRPC_SERVICES[name][0]] = replica_target(addresses[name])
    replica_set = ReplicaSet(env=client_env, addresses=addresses)
    stop_event = threading.Event()

    def start_one(name: str, index: int, own: Mapping[str, str]) -> tuple[str, ServiceGroup]:
        group = start_services(
            {**client_env, **own},
            [name],
            log_dir / f"{name}-{index + 1}" if log_dir is not None else None,
            free_ports=False,
            timeout=timeout,
            stop_event=stop_event,
        )
        return name, group

    def start_tier(jobs: list[tuple[str, int, dict[str, str]]]) -> None:
        if not jobs:
            return
        errors: list[BaseException] = []
        with ThreadPoolExecutor(len(jobs)) as pool:
            futures = [pool.submit(start_one, *job) for job in jobs]
            for future in futures:
                try:
                    name, group = future.result()
                except BaseException as exc:  # noqa: BLE001 - the first error is raised below
                    errors.append(exc)
                    stop_event.set()  # the others stop waiting
                    continue
                replica_set.groups.setdefault(name, []).append(group)
        if errors:
            raise errors[0]

    try:
        start_tier(
            [
                (
                    name,
                    index,
                    {
                        GRPC_SERVICES[name][0]: addresses[name][index],
                        # like start_services, a backend knows a gateway's port (payments derives the local
                        # PayFast notify and return URLs from it): replica i is told of gateway i
                        "GATEWAY_PORT": str(gateway_ports[index % len(gateway_ports)]),
                    },
                )
                for name in backends
                for index in range(replicas)
            ]
        )
        if "gateway" in names:
            start_tier(
                [("gateway", index, {"GATEWAY_PORT": str(gateway_ports[index])}) for index in range(gateways)]
            )
    except BaseException:
        replica_set.stop()
        raise
    return replica_set


@contextlib.contextmanager
def replicated_stack(env: Mapping[str, str], **kwargs: Any) -> Iterator[ReplicaSet]:
    """`start_replicas` as a context manager that stops every process on the way out."""
    replica_set = start_replicas(env, **kwargs)
    try:
        yield replica_set
    finally:
        replica_set.stop()
