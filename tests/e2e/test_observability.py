"""Operability through the real processes: one trace from `POST /v1/orders` through catalog pricing, the
outbox relay and the wallet consumer; Prometheus metrics on the gateway and on every gRPC service; log lines
that name the trace and the user, not the email."""

from __future__ import annotations

import re
import secrets
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import ADMIN_EMAIL, Stack
from .otlp_collector import CollectedSpan, OtlpCollector

SMALL_CATALOG = (
    b'[{"product_id": "obs-1", "title": "Observed Milk 1L", "price": "21.99", "retailer": "woolworths"},'
    b' {"product_id": "obs-2", "title": "Observed Bread", "price": 17, "retailer": "woolworths"}]'
)


def _eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        time.sleep(0.1)


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - the stack's local port
        return str(response.read().decode())


def _metrics_url(stack: Stack, service: str) -> str:
    """A gRPC service serves /metrics on its gRPC port + 1000 (METRICS_PORT unset)."""
    port = int(stack.services.address(service).rsplit(":", 1)[1]) + 1000
    return f"http://127.0.0.1:{port}/metrics"


def _value(text: str, name: str, **labels: str) -> float:
    """The value of the first sample of `name` whose labels include `labels` (0 when there is none)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def product(stack: Stack) -> dict[str, Any]:
    """A product of the live catalog (a tiny catalog is imported when none is live yet)."""
    items = stack.client.get("/v1/catalog", params={"limit": 1, "available": "true"}).json().get("items")
    if not items:
        imported = stack.client.post(
            "/v1/admin/catalog/import",
            content=SMALL_CATALOG,
            headers={**stack.auth("admin_obs", ADMIN_EMAIL), "Content-Type": "application/json"},
        )
        assert imported.status_code in (200, 201), imported.text
        items = stack.client.get("/v1/catalog", params={"limit": 1, "available": "true"}).json()["items"]
    return dict(items[0])


@pytest.fixture(scope="module")
def traced_order(stack: Stack, product: dict[str, Any]) -> dict[str, Any]:
    """An order placed under a trace we started (so its id is known); without funds it ends `rejected`."""
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    user = f"obs_{secrets.token_hex(4)}"
    headers = {
        **stack.auth(user, f"{user}@e2e.example"),
        "traceparent": f"00-{trace_id}-{parent_id}-01",
        "X-Request-ID": f"obs-{trace_id[:12]}",
    }
    response = stack.client.post(
        "/v1/orders",
        json={"retailer": product["retailer"], "items": [{"product_id": product["id"], "quantity": 2}]},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    order = response.json()
    final = _eventually(
        lambda: (
            (o := stack.client.get(f"/v1/orders/{order['id']}", headers=headers).json())["status"]
            == "rejected"
            and o
        )
    )
    return {"trace_id": trace_id, "parent_id": parent_id, "user": user, "order": final, "headers": headers}


def _one(spans: list[CollectedSpan], service: str, kind: str, name: str | None = None) -> CollectedSpan:
    found = [s for s in spans if s.service == service and s.kind == kind and (name is None or s.name == name)]
    assert found, f"no {kind} span {name or ''} from {service}: {sorted((s.service, s.name) for s in spans)}"
    return found[0]


def test_placing_an_order_is_one_trace_through_catalog_the_relay_and_the_wallet_consumer(
    traced_order: dict[str, Any], otlp_collector: OtlpCollector
) -> None:
    trace_id = traced_order["trace_id"]
    wanted = {
        ("yummi-gateway", "SERVER"),
        ("yummi-orders", "SERVER"),
        ("yummi-catalog", "SERVER"),
        ("yummi-orders", "PRODUCER"),
        ("yummi-payments", "CONSUMER"),
        ("yummi-payments", "PRODUCER"),
    }
    spans = otlp_collector.wait_for(
        trace_id,
        lambda spans: (
            wanted <= {(s.service, s.kind) for s in spans}
            and any(s.name == "process payments.wallet.debit_rejected" for s in spans)
        ),
    )

    edge = _one(spans, "yummi-gateway", "SERVER", "POST /v1/orders")
    assert edge.parent_span_id == traced_order["parent_id"], "the gateway continues the caller's traceparent"
    assert edge.attributes["http.route"] == "/v1/orders"
    place = _one(spans, "yummi-orders", "SERVER", "yummi.orders.v1.OrdersService/PlaceOrder")
    call = _one(spans, "yummi-gateway", "CLIENT", "yummi.orders.v1.OrdersService/PlaceOrder")
    assert place.parent_span_id == call.span_id
    pricing = _one(spans, "yummi-catalog", "SERVER")
    pricing_call = _one(spans, "yummi-orders", "CLIENT", pricing.name)
    assert pricing.parent_span_id == pricing_call.span_id
    publish = _one(spans, "yummi-orders", "PRODUCER", "publish orders.order.placed")
    debit = _one(spans, "yummi-payments", "CONSUMER", "process orders.order.placed")
    assert debit.parent_span_id == publish.span_id
    assert debit.attributes["messaging.destination.name"].endswith(".orders.order.placed")
    answer = _one(spans, "yummi-payments", "PRODUCER", "publish payments.wallet.debit_rejected")
    outcome = _one(spans, "yummi-orders", "CONSUMER", "process payments.wallet.debit_rejected")
    assert outcome.parent_span_id == answer.span_id
    # The database work of the wallet consumer is in the trace too.
    sql = [s for s in spans if s.service == "yummi-payments" and s.kind == "CLIENT"]
    assert any(s.name.split()[0] in ("SELECT", "INSERT", "UPDATE") for s in sql), [s.name for s in sql]


def test_the_access_log_line_names_the_trace_request_and_user_but_not_the_email(
    stack: Stack, traced_order: dict[str, Any]
) -> None:
    log_path = stack.services.processes["gateway"].log_path
    assert log_path is not None

    def line() -> str | None:
        rid = traced_order["headers"]["X-Request-ID"]
        return next(
            (row for row in log_path.read_text().splitlines() if rid in row and "route=/v1/orders " in row),
            None,
        )

    found = _eventually(line)
    assert f"trace_id={traced_order['trace_id']}" in found
    assert re.search(r"user_id=[0-9a-f-]{36}", found), found
    assert "status=201" in found and "ms=" in found
    assert "@e2e.example" not in found


def test_the_gateway_exposes_http_and_grpc_client_metrics(stack: Stack, traced_order: dict[str, Any]) -> None:
    text = stack.client.get("/metrics").text

    assert (
        _value(text, "yummi_gateway_http_requests_total", method="POST", route="/v1/orders", status="201")
        >= 1
    )
    assert _value(text, "yummi_gateway_http_request_duration_seconds_count", route="/v1/orders") >= 1
    assert _value(text, "yummi_grpc_client_handled_total", grpc_method="PlaceOrder", grpc_code="OK") >= 1
    assert _value(text, "yummi_db_pool_max_connections", pool="gateway") > 0
    assert _value(text, "yummi_build_info", service="gateway") == 1
    assert "process_resident_memory_bytes" in text


def test_every_grpc_service_serves_metrics_on_its_own_port(
    stack: Stack, traced_order: dict[str, Any]
) -> None:
    for service in ("catalog", "orders", "payments", "ai"):
        text = _scrape(_metrics_url(stack, service))
        assert _value(text, "yummi_build_info", service=service) == 1, service
        assert f'yummi_db_pool_connections{{pool="{service}",state="in_use"}}' in text, service

    orders = _scrape(_metrics_url(stack, "orders"))
    assert _value(orders, "yummi_grpc_server_handled_total", grpc_method="PlaceOrder", grpc_code="OK") >= 1
    assert _value(orders, "yummi_grpc_server_handling_seconds_count", grpc_method="PlaceOrder") >= 1
    assert _value(orders, "yummi_outbox_published_total", service="orders") >= 1
    assert "yummi_orders_queue_depth " in orders and "yummi_orders_queue_oldest_age_seconds " in orders
    assert _value(orders, "yummi_events_handled_total", outcome="applied") >= 1

    def payments_caught_up() -> str | None:
        # The gauge is sampled periodically: a sample may fall between an event's commit and its publish,
        # so the test waits for the backlog to drain rather than reading one sample.
        text = _scrape(_metrics_url(stack, "payments"))
        backlog_known = 'yummi_outbox_backlog{service="payments"}' in text
        drained = backlog_known and _value(text, "yummi_outbox_backlog", service="payments") == 0
        handled = _value(text, "yummi_events_handled_total", outcome="applied") >= 1
        return text if drained and handled else None

    payments = _eventually(payments_caught_up)
    assert _value(payments, "yummi_dead_letters", service="payments") == 0


def test_a_refused_itn_is_counted_by_its_reason(stack: Stack) -> None:
    before = _value(_scrape(_metrics_url(stack, "payments")), "yummi_payfast_itn_total", reason="malformed")

    refused = stack.client.post(
        "/payments/payfast/itn",
        content=b"m_payment_id=nothing",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert refused.status_code == 400
    after = _value(_scrape(_metrics_url(stack, "payments")), "yummi_payfast_itn_total", reason="malformed")
    assert after == before + 1
