"""PayFast over the network: which addresses may send ITNs (resolved, cached) and the server confirmation."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable
from typing import Protocol

import httpx

from yummi_common.errors import Unavailable
from yummi_common.logging import get_logger
from yummi_payments.config import PayfastConfig
from yummi_payments.domain.payfast import ItnError

log = get_logger(__name__)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ItnVerifier(Protocol):
    """The two ITN checks that need the network."""

    async def check_source(self, client_ip: str) -> None: ...

    async def confirm(self, param_string: str) -> None: ...


def parse_client_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The caller's address, with IPv4-mapped IPv6 (::ffff:a.b.c.d) folded to IPv4; ItnError when unusable."""
    try:
        ip = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError as exc:
        raise ItnError("untrusted_source", "client address is not an IP address") from exc
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _literal_network(entry: str) -> IpNetwork | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


class SourceHosts:
    """PAYFAST_VALID_HOSTS as networks: literal IPs/CIDRs as given, host names resolved (timeout, cache).

    A failed lookup keeps the last good answer; with no answer at all the check cannot run (Unavailable).
    """

    def __init__(self, entries: Iterable[str], *, timeout: float, ttl: float) -> None:
        self._static: list[IpNetwork] = []
        self._names: list[str] = []
        for entry in entries:
            network = _literal_network(entry)
            if network is not None:
                self._static.append(network)
            else:
                self._names.append(entry.lower())
        self._timeout = timeout
        self._ttl = ttl
        self._cache: dict[str, tuple[float, frozenset[IpNetwork]]] = {}
        self._lock = asyncio.Lock()

    async def networks(self) -> list[IpNetwork]:
        """Every network an ITN may come from, resolving stale names first."""
        async with self._lock:
            now = time.monotonic()
            stale = [n for n in self._names if n not in self._cache or self._cache[n][0] <= now]
            if stale:
                results = await asyncio.gather(*(self._resolve(n) for n in stale))
                for name, resolved in zip(stale, results, strict=True):
                    if resolved:
                        self._cache[name] = (now + self._ttl, resolved)
                    elif name in self._cache:
                        log.warning("payfast host lookup failed; keeping the last answer", host=name)
            known = list(self._static)
            for _expires, nets in self._cache.values():
                known.extend(nets)
            return known

    async def _resolve(self, name: str) -> frozenset[IpNetwork]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(name, None, type=socket.SOCK_STREAM), timeout=self._timeout
            )
        except (OSError, TimeoutError) as exc:
            log.warning("payfast host lookup failed", host=name, error=str(exc) or type(exc).__name__)
            return frozenset()
        return frozenset(ipaddress.ip_network(info[4][0]) for info in infos)

    async def allows(self, client_ip: str) -> bool:
        ip = parse_client_ip(client_ip)
        networks = await self.networks()
        if not networks:
            raise Unavailable("cannot resolve PayFast's hosts to check the ITN source")
        return any(ip.version == net.version and ip in net for net in networks)


class PayfastItnVerifier:
    """The real network checks: the source address and PayFast's /eng/query/validate."""

    def __init__(self, config: PayfastConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._config = config
        self._hosts = SourceHosts(
            config.valid_hosts, timeout=config.dns_timeout_seconds, ttl=config.dns_cache_seconds
        )
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        # One client for the process: building a TLS context per ITN cost a third of the service's CPU.
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._config.validate_timeout_seconds,
                transport=self._transport,
                follow_redirects=False,
            )
        return self._client

    async def check_source(self, client_ip: str) -> None:
        """Check 2: the ITN came from one of PayFast's addresses."""
        if not await self._hosts.allows(client_ip):
            raise ItnError("untrusted_source", "ITN did not come from a PayFast address")

    async def confirm(self, param_string: str) -> None:
        """Check 4: PayFast itself confirms the ITN (answers VALID); a network failure is Unavailable."""
        try:
            response = await self._http().post(
                self._config.validate_url,
                content=param_string.encode("utf-8"),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        except httpx.HTTPError as exc:
            log.warning("payfast server confirmation unreachable", error=str(exc) or type(exc).__name__)
            raise Unavailable("PayFast server confirmation is unavailable") from exc
        if response.status_code >= 500:
            raise Unavailable("PayFast server confirmation is unavailable")
        if response.status_code != 200 or response.text.strip() != "VALID":
            raise ItnError("not_confirmed", "PayFast did not confirm the ITN")
