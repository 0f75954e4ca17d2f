"""Wallets and their ledger, order charges, PayFast payments, ITN and chargeback audits, messaging tables.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from yummi_common.migrations import create_messaging_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def upgrade() -> None:
    create_messaging_tables(op, SCHEMA)
    op.create_table(
        "wallets",
        sa.Column("user_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("currency", sa.Text, nullable=False, server_default=sa.text("'ZAR'")),
        sa.Column("balance_minor", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("debits_blocked", sa.Boolean, nullable=False, server_default=sa.text("false")),
        *_timestamps(),
        schema=SCHEMA,
    )
    op.create_table(
        "wallet_transactions",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=True), sa.ForeignKey(f"{SCHEMA}.wallets.user_id"), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("balance_after_minor", sa.BigInteger, nullable=False),
        sa.Column("entry_type", sa.Text, nullable=False),
        sa.Column("cause_key", sa.Text, nullable=False, unique=True),
        sa.Column("order_id", UUID(as_uuid=True)),
        sa.Column("payment_id", UUID(as_uuid=True)),
        sa.Column("note", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "entry_type IN ('credit', 'debit', 'refund', 'chargeback', 'adjustment')",
            name="ck_wallet_transactions_entry_type",
        ),
        sa.CheckConstraint("amount_minor <> 0", name="ck_wallet_transactions_amount_nonzero"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_wallet_transactions_user_created",
        "wallet_transactions",
        ["user_id", "created_at", "id"],
        schema=SCHEMA,
    )
    # The ledger is append-only: the database itself refuses edits and deletes of entries.
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.refuse_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'wallet_transactions is append-only';
        END;
        $$
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER wallet_transactions_append_only
            BEFORE UPDATE OR DELETE ON {SCHEMA}.wallet_transactions
            FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_ledger_change()
        """
    )
    op.create_table(
        "order_charges",
        sa.Column("order_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=True), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("debit_transaction_id", UUID(as_uuid=True)),
        sa.Column("refund_transaction_id", UUID(as_uuid=True)),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('debited', 'rejected', 'refunded', 'closed_before_debit')",
            name="ck_order_charges_status",
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_order_charges_user", "order_charges", ["user_id"], schema=SCHEMA)
    op.create_table(
        "payments",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("reference", UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("user_id", UUID(as_uuid=True), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("payfast_status", sa.Text),
        sa.Column("pf_payment_id", sa.Text),
        sa.Column("wallet_credited", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("last_itn_payload", JSONB),
        *_timestamps(),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "status IN ('pending', 'complete', 'cancelled', 'failed')", name="ck_payments_status"
        ),
        sa.CheckConstraint("amount_minor > 0", name="ck_payments_amount_positive"),
        schema=SCHEMA,
    )
    op.create_index("ix_payments_user_created", "payments", ["user_id", "created_at"], schema=SCHEMA)
    op.create_index(
        "ix_payments_pending",
        "payments",
        ["created_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "itn_audit",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("reference", sa.Text),
        sa.Column("payment_id", UUID(as_uuid=True)),
        sa.Column("client_ip", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("ix_itn_audit_reference", "itn_audit", ["reference"], schema=SCHEMA)
    op.create_table(
        "chargebacks",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "payment_id",
            UUID(as_uuid=True),
            sa.ForeignKey(f"{SCHEMA}.payments.id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("reference", UUID(as_uuid=True), nullable=False),
        sa.Column("user_id", UUID(as_uuid=True), nullable=False),
        sa.Column("admin_id", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("transaction_id", UUID(as_uuid=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("ix_chargebacks_user", "chargebacks", ["user_id"], schema=SCHEMA)


def downgrade() -> None:
    for table in ("chargebacks", "itn_audit", "payments", "order_charges"):
        op.drop_table(table, schema=SCHEMA)
    op.execute(f"DROP TRIGGER IF EXISTS wallet_transactions_append_only ON {SCHEMA}.wallet_transactions")
    op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.refuse_ledger_change()")
    for table in ("wallet_transactions", "wallets", "dead_letters", "inbox", "outbox"):
        op.drop_table(table, schema=SCHEMA)
