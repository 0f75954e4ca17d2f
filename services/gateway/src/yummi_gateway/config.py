"""Edge settings only the gateway reads (beyond `yummi_common.settings.Settings`), and the body limits."""

from __future__ import annotations

import ipaddress
from functools import cached_property

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_BODY_LIMIT = 64 * 1024
CATALOG_IMPORT_BODY_LIMIT = 25 * 1024 * 1024


class GatewayConfig(BaseSettings):
    """`TRUSTED_PROXIES`: comma-separated IPs/CIDRs whose X-Forwarded-For we believe (default: none)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    trusted_proxies: str = ""
    dataset_upload_max_bytes: int = 512 * 1024 * 1024

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        _parse_networks(value)  # fail at start-up, not on the first ITN
        return value

    @cached_property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return _parse_networks(self.trusted_proxies)


def _parse_networks(value: str) -> tuple[IPNetwork, ...]:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    try:
        return tuple(ipaddress.ip_network(part, strict=False) for part in parts)
    except ValueError as exc:
        raise ValueError(f"TRUSTED_PROXIES holds an invalid IP or CIDR: {exc}") from exc
