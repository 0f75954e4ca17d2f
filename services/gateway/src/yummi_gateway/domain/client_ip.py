"""The true client IP behind our own proxies: the right-most X-Forwarded-For hop we do not trust."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _is_trusted(ip: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in trusted)


def resolve_client_ip(peer: str, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]) -> str:
    """The socket peer, unless it is a trusted proxy: then walk X-Forwarded-For from the right."""
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return client  # garbage from outside: stop at the last address our proxies vouched for
        client = hop
        if not _is_trusted(hop, trusted):
            return hop
    return client
