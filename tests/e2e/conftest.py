"""End to end: the five services as real processes on free ports, reached over HTTP through the gateway."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from yummi_devstack import SERVICE_NAMES, ServiceGroup, start_services
from yummi_devstack.pytest_plugin import SessionInfra
from yummi_devstack.tokens import dev_auth_headers

SERVICES_START_TIMEOUT = 100.0  # below the per-test timeout, so a slow start fails with the services' logs


@dataclass
class Stack:
    url: str
    client: httpx.Client
    services: ServiceGroup

    def auth(
        self, sub: str = "user_e2e", email: str | None = "e2e@example.com", **claims: Any
    ) -> dict[str, str]:
        """Headers carrying a dev token for that user."""
        return dev_auth_headers(sub, email, **claims)


@pytest.fixture(scope="session")
def stack(yummi_infra: SessionInfra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("service-logs")
    services = start_services(dict(os.environ), SERVICE_NAMES, log_dir, timeout=SERVICES_START_TIMEOUT)
    try:
        with httpx.Client(base_url=services.gateway_url, timeout=30.0) as client:
            yield Stack(url=services.gateway_url, client=client, services=services)
    finally:
        services.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, Stack):
        # the services' own last words, next to the failing assertion
        for name, lines in stack.services.tails(40).items():
            report.sections.append((f"{name} (last lines)", "\n".join(lines)))
    return report
