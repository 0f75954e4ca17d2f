"""The ai schema: users' provider credentials (envelope-encrypted), usage rows and daily token budgets."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import UUID

from yummi_common.service import service_tables

SCHEMA = "ai"
metadata, messaging = service_tables(SCHEMA)

api_credentials = Table(
    "api_credentials",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("provider", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("key_hint", Text, nullable=False),  # e.g. "sk-…abcd": enough to recognise, never enough to use
    Column("enc_key_blob", LargeBinary, nullable=False),  # the key, AES-GCM under a per-key data key
    Column("wrapped_dek", LargeBinary, nullable=False),  # that data key, wrapped by the key-encryption key
    Column("kek_id", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used_at", DateTime(timezone=True)),
    Index("ix_api_credentials_user", "user_id"),
    Index("ix_api_credentials_kek", "kek_id"),
)

ai_usage = Table(
    "ai_usage",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("model", Text, nullable=False),
    Column(
        "prompt_sha256", Text, nullable=False
    ),  # hashes, not text: usage is auditable without keeping prompts
    Column("response_sha256", Text, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cost_micro_usd", BigInteger, nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("key_source", Text, nullable=False),  # server or user
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("key_source IN ('server', 'user')", name="ck_ai_usage_key_source"),
    CheckConstraint(
        "prompt_tokens >= 0 AND completion_tokens >= 0 AND cost_micro_usd >= 0",
        name="ck_ai_usage_non_negative",
    ),
    Index("ix_ai_usage_user_created", "user_id", "created_at"),
)

# One row per user and UTC day, locked while a call reserves: spent plus in flight never passes the limit.
ai_budget = Table(
    "ai_budget",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("used_tokens", BigInteger, nullable=False, server_default="0"),
    Column("reserved_tokens", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("used_tokens >= 0 AND reserved_tokens >= 0", name="ck_ai_budget_non_negative"),
)

# The calls in flight; one left behind by a crash stops counting once it expires.
ai_budget_reservations = Table(
    "ai_budget_reservations",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("day", Date, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("tokens >= 0", name="ck_ai_budget_reservations_tokens"),
    Index("ix_ai_budget_reservations_user_day", "user_id", "day", "expires_at"),
)
