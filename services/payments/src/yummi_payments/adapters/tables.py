"""The payments schema: wallets with their append-only ledger, order charges, PayFast payments and audits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from yummi_common.service import service_tables

SCHEMA = "payments"
metadata, messaging = service_tables(SCHEMA)

ENTRY_TYPES = ("credit", "debit", "refund", "chargeback", "adjustment")
PAYMENT_STATUSES = ("pending", "complete", "cancelled", "failed")
CHARGE_STATUSES = ("debited", "rejected", "refunded", "closed_before_debit")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _timestamps() -> list[Column[Any]]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


wallets = Table(
    "wallets",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("currency", Text, nullable=False, server_default=text("'ZAR'")),
    # A cache of sum(wallet_transactions.amount_minor), updated in the transaction that writes each entry.
    Column("balance_minor", BigInteger, nullable=False, server_default=text("0")),
    Column("debits_blocked", Boolean, nullable=False, server_default=text("false")),
    *_timestamps(),
)

wallet_transactions = Table(
    "wallet_transactions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), ForeignKey(wallets.c.user_id), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("balance_after_minor", BigInteger, nullable=False),
    Column("entry_type", Text, nullable=False),
    # What caused the entry (`payment:<id>`, `order:<id>:debit`, ...): one entry per cause, ever.
    Column("cause_key", Text, nullable=False, unique=True),
    Column("order_id", UUID(as_uuid=True)),
    Column("payment_id", UUID(as_uuid=True)),
    Column("note", Text, nullable=False, server_default=text("''")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(_in("entry_type", ENTRY_TYPES), name="ck_wallet_transactions_entry_type"),
    CheckConstraint("amount_minor <> 0", name="ck_wallet_transactions_amount_nonzero"),
    Index("ix_wallet_transactions_user_created", "user_id", "created_at", "id"),
)

order_charges = Table(
    "order_charges",
    metadata,
    Column("order_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text),
    Column("debit_transaction_id", UUID(as_uuid=True)),
    Column("refund_transaction_id", UUID(as_uuid=True)),
    *_timestamps(),
    CheckConstraint(_in("status", CHARGE_STATUSES), name="ck_order_charges_status"),
    Index("ix_order_charges_user", "user_id"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("reference", UUID(as_uuid=True), nullable=False, unique=True),  # PayFast's m_payment_id
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("payfast_status", Text),
    Column("pf_payment_id", Text),
    Column("wallet_credited", Boolean, nullable=False, server_default=text("false")),
    Column("last_itn_payload", JSONB),
    *_timestamps(),
    Column("completed_at", DateTime(timezone=True)),
    CheckConstraint(_in("status", PAYMENT_STATUSES), name="ck_payments_status"),
    CheckConstraint("amount_minor > 0", name="ck_payments_amount_positive"),
    Index("ix_payments_user_created", "user_id", "created_at"),
    Index("ix_payments_pending", "created_at", postgresql_where=text("status = 'pending'")),
)

itn_audit = Table(
    "itn_audit",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("reference", Text),  # as posted: it may not even be a UUID
    Column("payment_id", UUID(as_uuid=True)),
    Column("client_ip", Text, nullable=False),
    Column("outcome", Text, nullable=False),  # credited, recorded, duplicate, rejected, unavailable
    Column("reason", Text),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_itn_audit_reference", "reference"),
)

chargebacks = Table(
    "chargebacks",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("payment_id", UUID(as_uuid=True), ForeignKey(payments.c.id), nullable=False, unique=True),
    Column("reference", UUID(as_uuid=True), nullable=False),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("admin_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("transaction_id", UUID(as_uuid=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_chargebacks_user", "user_id"),
)
