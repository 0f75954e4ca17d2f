"""Past one machine: two replicas of every service and two gateways on a three-node NATS cluster (R3 stream).

The user story gives the same outcome through alternating gateways as through one; a burst of orders and
top-ups, during which the stream's leader node crashes and comes back, loses nothing and applies nothing twice
(checked with SQL: inboxes against outboxes, wallets against their ledgers, one `order.queued` per order).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from yummi_ai.fake_openai import FakeOpenAI
from yummi_devstack.pytest_plugin import SessionInfra

from .conftest import E2E_OPENAI_KEY
from .replica_stack import (
    SAGA_CONSUMERS,
    ScaledStack,
    counter,
    import_sample_catalog,
    pay_top_up,
    runner_headers,
    scaled_stack,
    wait_credited,
    wait_for,
)

# Ten service processes and three NATS servers start before the first test: more than the default 120 s.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

SHOPPERS = 12
ORDERS_PER_SHOPPER = 5  # 60 orders in the burst
BURST_WORKERS = 6
SETTLE_TIMEOUT = 120.0  # a delivery whose ack died with the NATS node comes back after ack_wait (30 s)


@pytest.fixture(scope="module")
def scaled(
    request: pytest.FixtureRequest,
    yummi_infra: SessionInfra,
    payfast_simulator: str,
    fake_openai: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ScaledStack]:
    failed_before = request.session.testsfailed
    with scaled_stack(
        yummi_infra,
        payfast_url=payfast_simulator,
        openai_base_url=fake_openai.base_url,
        openai_key=E2E_OPENAI_KEY,
        work_dir=tmp_path_factory.mktemp("scaled"),
        on_failure=lambda: request.session.testsfailed > failed_before,
    ) as stack:
        import_sample_catalog(stack, tmp_path_factory.mktemp("scaled-catalog"))
        yield stack


@pytest.fixture(scope="module")
def products(scaled: ScaledStack) -> list[dict[str, Any]]:
    """The first available products, once both gateways list them: each catalog replica caches the live
    version and learns of the import on the other replica over NATS (or after its refresh interval)."""

    def pages() -> list[Any]:
        responses = [
            client.get("/v1/catalog", params={"limit": 100, "available": "true"}) for client in scaled.clients
        ]
        assert all(r.status_code < 500 for r in responses), [r.text for r in responses]
        return [r.json() for r in responses]

    first, _ = wait_for(
        pages, lambda bodies: all(len(body.get("items", ())) >= ORDERS_PER_SHOPPER for body in bodies)
    )
    return list(first["items"][:ORDERS_PER_SHOPPER])


def _order_body(products: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "retailer": "woolworths",
        "items": [{"product_id": p["product_id"], "quantity": 1} for p in products],
    }


def _order(scaled: ScaledStack, headers: dict[str, str], order_id: str) -> dict[str, Any]:
    response = scaled.gateway().get(f"/v1/orders/{order_id}", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_stack_runs_two_of_everything_on_an_r3_stream(scaled: ScaledStack) -> None:
    assert len(scaled.clients) == 2
    for client in scaled.clients:
        health = client.get("/v1/health")
        assert health.status_code == 200, health.text
        assert health.json()["services"] == {"catalog": "ok", "orders": "ok", "payments": "ok", "ai": "ok"}
    assert {name: len(groups) for name, groups in scaled.replicas.groups.items()} == {
        "catalog": 2,
        "orders": 2,
        "payments": 2,
        "ai": 2,
        "gateway": 2,
    }
    info = scaled.stream_info()
    assert info.config.num_replicas == 3
    assert info.cluster is not None and len(info.cluster.replicas or []) == 2
    assert {info.cluster.leader, *(r.name for r in info.cluster.replicas or [])} == {
        node.name for node in scaled.nats.nodes
    }


def test_user_story_through_alternating_gateways_matches_one_replica(
    scaled: ScaledStack, products: list[dict[str, Any]]
) -> None:
    shopper = scaled.auth("scale_story")
    body = _order_body(products[:3])
    total = sum(p["price_minor"] for p in products[:3])

    # No funds: the saga rejects the order.
    first = scaled.gateway().post("/v1/orders", json=body, headers=shopper)
    assert first.status_code == 201, first.text
    rejected = wait_for(
        lambda: _order(scaled, shopper, first.json()["id"]), lambda o: o["status"] != "pending_payment"
    )
    assert rejected["status"] == "rejected"

    # A top-up through the PayFast simulator's signed ITN credits the wallet once.
    reference = pay_top_up(scaled, shopper, total + 5_000)
    wait_credited(scaled, shopper, reference)
    balance = scaled.gateway().get("/v1/wallet/balance", headers=shopper).json()
    assert balance["balance_minor"] == total + 5_000
    assert [t["entry_type"] for t in balance["transactions"]] == ["credit"]

    # An order with an Idempotency-Key, replayed on the other gateway: one order, debited once, queued.
    key = str(uuid.uuid4())
    placed = scaled.clients[0].post("/v1/orders", json=body, headers={**shopper, "Idempotency-Key": key})
    assert placed.status_code == 201, placed.text
    replayed = scaled.clients[1].post("/v1/orders", json=body, headers={**shopper, "Idempotency-Key": key})
    assert replayed.status_code == 201, replayed.text
    assert replayed.json()["id"] == placed.json()["id"]
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    order_id = placed.json()["id"]
    queued = wait_for(lambda: _order(scaled, shopper, order_id), lambda o: o["status"] != "pending_payment")
    assert queued["status"] == "queued"
    assert scaled.gateway().get("/v1/wallet/balance", headers=shopper).json()["balance_minor"] == 5_000

    # A runner claims it through one gateway and acknowledges it through the other.
    runner = runner_headers(scaled, "runner_story")
    claimed = None
    for _ in range(100):
        response = scaled.clients[0].post("/v1/orders/next", headers=runner)
        assert response.status_code == 200, response.text
        if response.json()["id"] == order_id:
            claimed = response.json()
            break
        other = response.json()["id"]
        acked = scaled.gateway().post(
            f"/v1/orders/{other}/ack", json={"outcome": "completed"}, headers=runner
        )
        assert acked.status_code == 200, acked.text
    assert claimed is not None and claimed["lease_expires_at"]
    ack = scaled.clients[1].post(
        f"/v1/orders/{order_id}/ack",
        json={"outcome": "completed", "retailer_reference": "WW-9"},
        headers=runner,
    )
    assert ack.status_code == 200, ack.text
    done = _order(scaled, shopper, order_id)
    assert done["status"] == "completed" and done["retailer_reference"] == "WW-9"
    assert [e["type"] for e in done["events"]] == [
        "order.placed",
        "order.queued",
        "order.claimed",
        "order.completed",
    ]
    assert (
        scaled.gateway()
        .post(f"/v1/orders/{order_id}/ack", json={"outcome": "failed"}, headers=runner)
        .status_code
        == 409
    )
    # In the database: one debit for the order, one credit for the top-up.
    entries = scaled.query(
        "SELECT t.entry_type, t.amount_minor FROM payments.wallet_transactions t "
        "JOIN identity.users u ON u.id = t.user_id WHERE u.clerk_user_id = $1 ORDER BY t.created_at",
        "scale_story",
    )
    assert [(row["entry_type"], row["amount_minor"]) for row in entries] == [
        ("credit", total + 5_000),
        ("debit", -total),
    ]


def _stream_leader_index(scaled: ScaledStack) -> int:
    info = scaled.stream_info()
    assert info.cluster is not None
    return [node.name for node in scaled.nats.nodes].index(str(info.cluster.leader))


def test_a_burst_across_replicas_survives_a_nats_node_crash_and_applies_each_event_once(
    scaled: ScaledStack, products: list[dict[str, Any]]
) -> None:
    shoppers = [f"scale_burst_{i}" for i in range(SHOPPERS)]
    headers = {sub: scaled.auth(sub) for sub in shoppers}
    first_top_up = sum(p["price_minor"] for p in products) + 1_000  # every burst order is funded up front
    second_top_up = 777

    with ThreadPoolExecutor(BURST_WORKERS) as pool:
        references = list(
            pool.map(lambda sub: (sub, pay_top_up(scaled, headers[sub], first_top_up)), shoppers)
        )
        list(pool.map(lambda pair: wait_credited(scaled, headers[pair[0]], pair[1]), references))

    # The burst: 60 orders (each with an Idempotency-Key) and 12 top-ups, spread over both gateways; the
    # stream's leader node is killed once a third has been answered and started again at three quarters.
    jobs: list[tuple[str, str, int]] = []  # (kind, shopper, product index)
    for round_ in range(ORDERS_PER_SHOPPER):
        for sub in shoppers:
            jobs.append(("order", sub, round_))
            if round_ == 2:
                jobs.append(("top-up", sub, 0))
    done = threading.Semaphore(0)
    placed: list[tuple[str, str, dict[str, Any], str]] = []  # (shopper, key, body, order id)
    placed_lock = threading.Lock()

    def run(kind: str, sub: str, index: int) -> str:
        try:
            if kind == "top-up":
                return pay_top_up(scaled, headers[sub], second_top_up)
            key = str(uuid.uuid4())
            body = _order_body([products[index]])
            response = scaled.gateway().post(
                "/v1/orders", json=body, headers={**headers[sub], "Idempotency-Key": key}
            )
            assert response.status_code == 201, response.text
            with placed_lock:
                placed.append((sub, key, body, response.json()["id"]))
            return str(response.json()["id"])
        finally:
            done.release()

    victim = _stream_leader_index(scaled)
    with ThreadPoolExecutor(BURST_WORKERS) as pool:
        futures: list[Future[str]] = [pool.submit(run, *job) for job in jobs]
        for _ in range(len(jobs) // 3):
            done.acquire()
        scaled.nats.stop_node(victim, kill=True)
        for _ in range(len(jobs) * 3 // 4 - len(jobs) // 3):
            done.acquire()
        scaled.nats.start_node(victim)
        results = [future.result() for future in futures]
    top_up_refs = [ref for (kind, _, _), ref in zip(jobs, results, strict=True) if kind == "top-up"]
    assert len(placed) == SHOPPERS * ORDERS_PER_SHOPPER
    order_ids = [order_id for _, _, _, order_id in placed]
    assert len(set(order_ids)) == len(order_ids)

    # Replays of a sample on the other gateway answer the same order and create none.
    for sub, key, body, order_id in placed[::6]:
        again = scaled.gateway().post(
            "/v1/orders", json=body, headers={**headers[sub], "Idempotency-Key": key}
        )
        assert again.status_code == 201, again.text
        assert again.json()["id"] == order_id
        assert again.headers.get("Idempotent-Replayed") == "true"

    # Every order is debited and queued, every top-up credited (once the cluster has caught up).
    wait_for(
        lambda: scaled.value(
            "SELECT count(*) FROM orders.orders WHERE id = ANY($1::uuid[]) AND status = 'queued'", order_ids
        ),
        lambda n: n == len(order_ids),
        timeout=SETTLE_TIMEOUT,
    )
    for sub, reference in zip([job[1] for job in jobs if job[0] == "top-up"], top_up_refs, strict=True):
        wait_credited(scaled, headers[sub], reference)
    outbox_schemas = [
        row["table_schema"]
        for row in scaled.query(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
        )
    ]
    assert {"orders", "payments"} <= set(outbox_schemas)
    # Quiet: every outbox row published, every consumer's deliveries acknowledged.
    wait_for(
        lambda: [
            scaled.value(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL")  # noqa: S608 - constants
            for schema in outbox_schemas
        ],
        lambda counts: not any(counts),
        timeout=SETTLE_TIMEOUT,
    )
    wait_for(
        lambda: [scaled.consumer_backlog(durable) for _, durable, _ in SAGA_CONSUMERS],
        lambda backlogs: all(backlog == (0, 0) for backlog in backlogs),
        timeout=SETTLE_TIMEOUT,
    )

    # Nothing lost, nothing twice: each consumer's inbox holds exactly the events of its type.
    for schema, durable, event_type in SAGA_CONSUMERS:
        missing, extra = scaled.query(
            """
            WITH produced AS (
              SELECT id FROM orders.outbox WHERE event_type = $1
              UNION ALL SELECT id FROM payments.outbox WHERE event_type = $1
            ), applied AS (
              SELECT event_id FROM orders.inbox WHERE consumer = $2 AND $3 = 'orders'
              UNION ALL SELECT event_id FROM payments.inbox WHERE consumer = $2 AND $3 = 'payments'
            )
            SELECT (SELECT count(*) FROM produced WHERE id NOT IN (SELECT event_id FROM applied)),
                   (SELECT count(*) FROM applied WHERE event_id NOT IN (SELECT id FROM produced))
            """,
            event_type,
            durable,
            schema,
        )[0]
        assert (durable, missing, extra) == (durable, 0, 0)
    assert (
        scaled.value(
            "SELECT count(*) FROM (SELECT 1 FROM orders.dead_letters "
            "UNION ALL SELECT 1 FROM payments.dead_letters) d"
        )
        == 0
    )
    # The stream holds each outbox row once (the relays' retries were deduplicated by Nats-Msg-Id).
    outbox_rows = sum(
        scaled.value(f"SELECT count(*) FROM {schema}.outbox")  # noqa: S608 - schema names from the catalog
        for schema in outbox_schemas
    )
    assert scaled.stream_info().state.messages == outbox_rows

    # Every order queued exactly once and debited exactly once.
    per_order = scaled.query(
        """
        SELECT o.id,
               (SELECT count(*) FROM orders.order_events e
                  WHERE e.order_id = o.id AND e.type = 'order.queued') AS q,
               (SELECT count(*) FROM payments.wallet_transactions t
                  WHERE t.order_id = o.id AND t.entry_type = 'debit') AS debits,
               (SELECT count(*) FROM payments.order_charges c
                  WHERE c.order_id = o.id AND c.status = 'debited') AS charges
        FROM orders.orders o WHERE o.id = ANY($1::uuid[])
        """,
        order_ids,
    )
    assert len(per_order) == len(order_ids)
    assert {(row["q"], row["debits"], row["charges"]) for row in per_order} == {(1, 1, 1)}

    # Every wallet equals its ledger; each shopper was credited twice and debited for exactly its orders.
    assert (
        scaled.query(
            "SELECT w.user_id FROM payments.wallets w "
            "LEFT JOIN payments.wallet_transactions t ON t.user_id = w.user_id "
            "GROUP BY w.user_id, w.balance_minor HAVING w.balance_minor <> coalesce(sum(t.amount_minor), 0)"
        )
        == []
    )
    spent: dict[str, int] = {}
    for sub, _, body, _ in placed:
        price = next(p["price_minor"] for p in products if p["product_id"] == body["items"][0]["product_id"])
        spent[sub] = spent.get(sub, 0) + price
    wallets = {
        row["clerk_user_id"]: (row["balance_minor"], row["credits"], row["debits"])
        for row in scaled.query(
            """
            SELECT u.clerk_user_id, w.balance_minor,
                   count(*) FILTER (WHERE t.entry_type = 'credit') AS credits,
                   count(*) FILTER (WHERE t.entry_type = 'debit') AS debits
            FROM identity.users u JOIN payments.wallets w ON w.user_id = u.id
            JOIN payments.wallet_transactions t ON t.user_id = u.id
            WHERE u.clerk_user_id = ANY($1::text[]) GROUP BY u.clerk_user_id, w.balance_minor
            """,
            shoppers,
        )
    }
    assert wallets == {
        sub: (first_top_up + second_top_up - spent[sub], 2, ORDERS_PER_SHOPPER) for sub in shoppers
    }

    # Both replicas of each saga service served calls and handled events: the work was shared.
    for name in ("orders", "payments"):
        texts = scaled.scrape(name)
        served = [counter(text, "yummi_grpc_server_handled_total") for text in texts]
        assert all(count > 0 for count in served), (name, served)
    texts = scaled.scrape("payments") + scaled.scrape("orders")
    handled = {
        durable: [
            counter(text, "yummi_events_handled_total", consumer=durable, outcome="applied") for text in texts
        ]
        for _, durable, _ in SAGA_CONSUMERS
    }
    for schema, durable, _ in SAGA_CONSUMERS:
        inbox = scaled.value(f"SELECT count(*) FROM {schema}.inbox WHERE consumer = $1", durable)  # noqa: S608
        assert sum(handled[durable]) == inbox, (durable, handled[durable], inbox)
    # ... and each of the four saga processes (payments 1 and 2, orders 1 and 2) applied some of them.
    per_process = [sum(handled[durable][i] for _, durable, _ in SAGA_CONSUMERS) for i in range(len(texts))]
    print(f"events applied per process (payments 1, 2, orders 1, 2): {per_process}")
    assert all(applied > 0 for applied in per_process), per_process

    # Two runners, one per gateway, drain the queue side by side: each order is claimed once.
    claims: list[list[str]] = [[], []]

    def drain(index: int) -> None:
        client = scaled.clients[index]
        runner = runner_headers(scaled, f"scale_runner_{index}")
        while (response := client.post("/v1/orders/next", headers=runner)).status_code == 200:
            order_id = response.json()["id"]
            claims[index].append(order_id)
            acked = client.post(f"/v1/orders/{order_id}/ack", json={"outcome": "completed"}, headers=runner)
            assert acked.status_code == 200, acked.text
        assert response.status_code == 204, response.text

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(drain, range(2)))
    all_claims = claims[0] + claims[1]
    assert len(all_claims) == len(set(all_claims))
    assert set(order_ids) <= set(all_claims)
    events = scaled.query(
        "SELECT order_id, array_agg(type ORDER BY created_at, id) AS types FROM orders.order_events "
        "WHERE order_id = ANY($1::uuid[]) GROUP BY order_id",
        order_ids,
    )
    assert {tuple(row["types"]) for row in events} == {
        ("order.placed", "order.queued", "order.claimed", "order.completed")
    }
