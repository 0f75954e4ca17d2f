"""Tests that cross services (tests/e2e).

The session infrastructure lives in `yummi_devstack.pytest_plugin`, which the root pyproject.toml loads for
every pytest run (`-p yummi_devstack.pytest_plugin`), so services/*/tests and libs/*/tests share it:
given DATABASE_URL/REDIS_URL/NATS_URL or embedded (or Docker) servers, a fresh `yummi_test_<hex>` database
with every service migrated, a per-session NATS stream/subjects and Redis key prefix, all dropped at the end.
"""

from __future__ import annotations

import pytest

PLUGIN = "yummi_devstack.pytest_plugin"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(PLUGIN):
        raise pytest.UsageError(f"run pytest with the repo's pyproject.toml (it loads -p {PLUGIN})")
