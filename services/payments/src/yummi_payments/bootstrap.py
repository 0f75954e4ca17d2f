"""How the payments service is put together: its tables, migrations, servicer and event handlers."""

from __future__ import annotations

from pathlib import Path

from yummi_common.service import ServiceSpec
from yummi_payments.adapters.tables import messaging, metadata
from yummi_payments.entrypoints.cli import reconcile_command
from yummi_payments.entrypoints.consumers import subscriptions
from yummi_payments.entrypoints.grpc_server import register

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

SPEC = ServiceSpec(
    name="payments",
    metadata=metadata,
    tables=messaging,
    migrations_dir=MIGRATIONS_DIR,
    register=register,
    subscriptions=subscriptions,
    commands={"reconcile": reconcile_command},
)
