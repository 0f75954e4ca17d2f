"""How the ai service is put together: its tables, migrations, servicer and event handlers."""

from __future__ import annotations

from pathlib import Path

from yummi_ai.adapters.tables import messaging, metadata
from yummi_ai.entrypoints.consumers import subscriptions
from yummi_ai.entrypoints.grpc_server import register
from yummi_common.service import ServiceSpec

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

SPEC = ServiceSpec(
    name="ai",
    metadata=metadata,
    tables=messaging,
    migrations_dir=MIGRATIONS_DIR,
    register=register,
    subscriptions=subscriptions,
)
