"""The thin slice through the gateway, with every service running as its own process."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_gateway_health_reports_every_service(stack) -> None:
    response = stack.client.get("/v1/health")

    assert response.status_code == 200
    assert {"catalog", "orders", "payments", "ai"} <= set(response.json()["services"])
