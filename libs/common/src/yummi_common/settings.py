"""The one settings class: every name of the design's settings table, read from the environment or `.env`."""

from __future__ import annotations

import base64
import ipaddress
from functools import cached_property, lru_cache
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "test", "staging", "prod"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SERVICES = ("gateway", "catalog", "orders", "payments", "ai")
SCHEMAS = {
    "gateway": "identity",
    "catalog": "catalog",
    "orders": "orders",
    "payments": "payments",
    "ai": "ai",
}
DEFAULT_GRPC_PORTS = {"catalog": 50051, "orders": 50052, "payments": 50053, "ai": 50054}


def normalise_database_url(url: str) -> str:
    """Turn `postgres://` / `postgresql://` URLs into the asyncpg dialect SQLAlchemy needs."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def _split_csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """A comma-separated list of IPs/CIDRs (`TRUSTED_PROXIES`) as networks."""
    try:
        return tuple(ipaddress.ip_network(part, strict=False) for part in _split_csv(value))
    except ValueError as exc:
        raise ValueError(f"TRUSTED_PROXIES holds an invalid IP or CIDR: {exc}") from exc


class Settings(BaseSettings):
    """Configuration shared by all services; outside dev/test it refuses insecure or missing values."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Environment = "dev"
    version: str = Field(default="0.1.0", alias="YUMMI_VERSION")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/yummi"
    gateway_database_url: str | None = None
    catalog_database_url: str | None = None
    orders_database_url: str | None = None
    payments_database_url: str | None = None
    ai_database_url: str | None = None
    # Per process: five services at 10 + 0 open at most 50 of Postgres' default 100 connections (see db.py).
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)  # waiting for a free pooled connection
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)  # opening a new connection
    db_pool_recycle_seconds: int = Field(default=1800, ge=-1)  # replace older connections (-1: never)

    redis_url: str | None = None
    redis_key_prefix: str = "yummi:"
    nats_url: str | None = None
    nats_stream: str = "YUMMI_EVENTS"
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)  # 3 on a three-node NATS cluster
    nats_subject_prefix: str = "yummi.events"
    # Events a process handles side by side, over all its consumers (each its own transaction + inbox row,
    # holding a pooled connection: keep it below DB_POOL_SIZE + DB_MAX_OVERFLOW).
    consumer_concurrency: int = Field(default=8, ge=1, le=256)
    # How long a batch-capable consumer lets events gather before each fetch, and how long the relay lets the
    # rows its process committed gather before publishing them: a few milliseconds of latency for fewer,
    # larger batches (fewer statements, round trips and acks per event). 0 turns it off.
    consumer_batch_linger_seconds: float = Field(default=0.01, ge=0, le=1)
    outbox_publish_linger_seconds: float = Field(default=0.005, ge=0, le=1)

    catalog_grpc_addr: str = "127.0.0.1:50051"
    orders_grpc_addr: str = "127.0.0.1:50052"
    payments_grpc_addr: str = "127.0.0.1:50053"
    ai_grpc_addr: str = "127.0.0.1:50054"
    grpc_deadline_seconds: float = 5.0
    gateway_port: int = 8000
    # Gateway processes (uvicorn workers) sharing the port; more than 1 serves /metrics in multiprocess mode.
    gateway_workers: int = Field(default=1, ge=1, le=64)
    # Public catalog pages kept at the edge (dropped at every activation; 0 turns the cache off).
    gateway_catalog_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    gateway_catalog_cache_mb: int = Field(default=32, ge=0, le=4096)
    migrate_on_start: bool | None = None  # default: only in dev

    auth_disable_verification: bool = False
    clerk_issuer: str | None = None
    clerk_audience: str | None = None
    clerk_authorized_parties: str = ""
    clerk_jwks_url: str | None = None
    clerk_webhook_secret: str | None = None
    admin_emails: str = ""
    runner_emails: str = ""
    cors_allowed_origins: str = ""
    trusted_proxies: str = ""  # IPs/CIDRs of our own proxies: only their X-Forwarded-For is believed
    dataset_upload_max_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    # A dataset still `uploading` this long after it was created is failed and its file deleted.
    dataset_upload_ttl_seconds: int = Field(default=24 * 3600, ge=60)

    payfast_merchant_id: str | None = None
    payfast_merchant_key: str | None = None
    payfast_passphrase: str | None = None
    payfast_mode: Literal["sandbox", "live"] = "sandbox"
    payfast_notify_url: str | None = None
    payfast_return_url: str | None = None
    payfast_cancel_url: str | None = None
    payfast_validate_url: str | None = None
    payfast_valid_hosts: str | None = None
    payfast_process_url: str | None = None  # hosted checkout override (the local simulator)
    payfast_max_amount_minor: int = 1_000_000  # R10,000
    payfast_skip_server_confirmation: bool = False  # honoured only when ENVIRONMENT=dev
    payfast_dns_timeout_seconds: float = 2.0
    payfast_dns_cache_seconds: float = 300.0
    payfast_validate_timeout_seconds: float = 10.0
    payfast_app_return_url: str = "yummi://payfast/return"
    payfast_app_cancel_url: str = "yummi://payfast/cancel"

    openai_api_key: str | None = None
    openai_base_url: str | None = None
    ai_model_allowlist: str = "gpt-4o-mini,gpt-4.1-mini"
    ai_default_model: str = "gpt-4o-mini"
    ai_daily_token_limit: int = 50_000
    ai_features: str = "complete,basket_suggestions"
    ai_max_tokens_cap: int = Field(default=1024, ge=1, le=128_000)
    # One provider call with its retries; the gateway's gRPC deadline for AI is derived from it (see below).
    ai_total_deadline_seconds: float = Field(default=30.0, gt=0, le=300)
    ai_attempt_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    ai_max_attempts: int = Field(default=4, ge=1, le=10)
    ai_verify_keys_on_create: bool = False

    secrets_master_key: str | None = None
    secrets_master_key_previous: str | None = None  # still readable while `yummi-ai rotate-kek` re-wraps
    kms_key_id: str | None = None

    rate_limit_per_minute: int = Field(default=120, gt=0)
    rate_limit_ai_per_minute: int = Field(default=20, gt=0)
    rate_limit_ip_per_minute: int = Field(default=60, gt=0)

    log_json: bool = True
    log_level: str = "INFO"
    sentry_dsn: str | None = None
    sentry_traces_sample_rate: float = 0.0
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    otel_traces_sampler_arg: float = Field(default=1.0, ge=0.0, le=1.0)  # share of new traces kept
    # Prometheus /metrics of a gRPC service: unset = its gRPC port + 1000 (catalog 51051), 0 = off.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_refresh_seconds: float = 15.0  # how often gauges read from the database (outbox backlog) refresh

    catalog_store_dir: str = (
        ".state/catalog-store"  # the local dataset file store (relative to the working dir)
    )
    # Object storage for dataset files (S3, or R2/MinIO by endpoint URL); unset bucket = the local store.
    # Credentials come from the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...).
    catalog_s3_bucket: str | None = None
    catalog_s3_endpoint_url: str | None = None
    catalog_s3_region: str | None = None
    catalog_s3_upload_expires_seconds: int = Field(default=3600, ge=60, le=7 * 86400)
    catalog_retain_versions: int = Field(default=5, ge=0)  # non-live versions kept for rollback
    # How long a catalog replica serves the live version it read before reading it again (an activation
    # anywhere also tells every replica at once over NATS; this bounds the wait when that message is missed).
    catalog_live_refresh_seconds: float = Field(default=2.0, gt=0)
    # Indexing runs a dataset may start before it is failed: each one a process stopped part-way (a crash, an
    # OOM kill, a deploy) counts, so a file that kills the catalog every time cannot crash-loop its replicas.
    catalog_index_max_attempts: int = Field(default=3, ge=1, le=100)

    thin_slice_enabled: bool = True
    thin_runner_log_path: str = "data/thin-runner-log.txt"
    order_lease_seconds: int = 300
    # Live products an orders process keeps for pricing (dropped at every activation; 0: ask every time).
    orders_catalog_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    order_max_attempts: int = 5
    order_lease_sweep_seconds: float = 5.0

    @field_validator(
        "database_url",
        "gateway_database_url",
        "catalog_database_url",
        "orders_database_url",
        "payments_database_url",
        "ai_database_url",
    )
    @classmethod
    def _normalise_url(cls, value: str | None) -> str | None:
        return normalise_database_url(value) if value else value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxy_networks(cls, value: str) -> str:
        parse_networks(value)  # fail at start-up, not on the first forwarded request
        return value

    @model_validator(mode="after")
    def _refuse_insecure_outside_dev(self) -> Settings:
        if self.environment in ("dev", "test"):
            return self
        problems: list[str] = []
        if self.auth_disable_verification:
            problems.append("AUTH_DISABLE_VERIFICATION=true is only allowed in dev/test")
        required = {
            "REDIS_URL": self.redis_url,
            "NATS_URL": self.nats_url,
            "OPENAI_API_KEY": self.openai_api_key,
            "PAYFAST_MERCHANT_ID": self.payfast_merchant_id,
            "PAYFAST_MERCHANT_KEY": self.payfast_merchant_key,
            "PAYFAST_NOTIFY_URL": self.payfast_notify_url,
            "PAYFAST_RETURN_URL": self.payfast_return_url,
            "PAYFAST_CANCEL_URL": self.payfast_cancel_url,
            "CLERK_ISSUER": self.clerk_issuer,
        }
        problems += [
            f"{name} is required in {self.environment}" for name, value in required.items() if not value
        ]
        if not self.kms_key_id and not _is_real_master_key(self.secrets_master_key):
            problems.append("SECRETS_MASTER_KEY (base64 of 32 random bytes) or KMS_KEY_ID is required")
        if problems:
            raise ValueError("refusing to start: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _check_ai(self) -> Settings:
        if self.ai_default_model not in self.ai_models:
            raise ValueError(f"AI_DEFAULT_MODEL {self.ai_default_model!r} is not in AI_MODEL_ALLOWLIST")
        for name, value in (
            ("SECRETS_MASTER_KEY", self.secrets_master_key),
            ("SECRETS_MASTER_KEY_PREVIOUS", self.secrets_master_key_previous),
        ):
            if value and not _is_master_key_shape(value):
                raise ValueError(f"{name} must be the base64 of 32 bytes")
        return self

    # Derived views: one place that knows how comma lists and per-service overrides work.
    def database_url_for(self, service: str) -> str:
        """The URL a service uses: its own `<SERVICE>_DATABASE_URL` or the shared `DATABASE_URL`."""
        own = getattr(self, f"{service}_database_url", None)
        return own or self.database_url

    def grpc_addr_for(self, service: str) -> str:
        return str(getattr(self, f"{service}_grpc_addr"))

    def metrics_port_for(self, service: str) -> int | None:
        """Where a gRPC service serves /metrics: `METRICS_PORT`, else its gRPC port + 1000; None when off."""
        if self.metrics_port is not None:
            return self.metrics_port or None
        grpc_port = int(self.grpc_addr_for(service).rsplit(":", 1)[-1])
        port = grpc_port + 1000
        return port if grpc_port and port <= 65535 else None

    @property
    def should_migrate_on_start(self) -> bool:
        return self.environment == "dev" if self.migrate_on_start is None else self.migrate_on_start

    @property
    def admin_email_set(self) -> frozenset[str]:
        return frozenset(e.lower() for e in _split_csv(self.admin_emails))

    @property
    def runner_email_set(self) -> frozenset[str]:
        return frozenset(e.lower() for e in _split_csv(self.runner_emails))

    @property
    def authorized_parties(self) -> list[str]:
        return _split_csv(self.clerk_authorized_parties)

    @property
    def cors_origins(self) -> list[str]:
        return _split_csv(self.cors_allowed_origins)

    @cached_property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def ai_models(self) -> list[str]:
        return _split_csv(self.ai_model_allowlist)

    @property
    def ai_feature_set(self) -> frozenset[str]:
        return frozenset(_split_csv(self.ai_features))

    @property
    def ai_grpc_deadline_seconds(self) -> float:
        """The gateway's deadline for AI calls: the service's own total deadline plus room to answer."""
        return self.ai_total_deadline_seconds + 15.0

    @property
    def dev_auth_allowed(self) -> bool:
        return self.auth_disable_verification and self.environment in ("dev", "test")


def _is_master_key_shape(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except ValueError:
        return False


def _is_real_master_key(value: str | None) -> bool:
    if not value:
        return False
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return len(raw) == 32 and len(set(raw)) > 4


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
