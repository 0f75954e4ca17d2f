"""Local infrastructure for Yummi: embedded Postgres/NATS/Valkey, the `make run` supervisor, test helpers."""

from .infra import (
    InfraError,
    InfraUrls,
    default_state_dir,
    drop_database,
    ensure_database,
    ensure_infra,
    repo_root,
    stop_infra,
    url_with_database,
)
from .processes import SERVICE_NAMES, ServiceGroup, StackError, start_services
from .tokens import dev_auth_headers, dev_token

__all__ = [
    "SERVICE_NAMES",
    "InfraError",
    "InfraUrls",
    "ServiceGroup",
    "StackError",
    "default_state_dir",
    "dev_auth_headers",
    "dev_token",
    "drop_database",
    "ensure_database",
    "ensure_infra",
    "repo_root",
    "start_services",
    "stop_infra",
    "url_with_database",
]
