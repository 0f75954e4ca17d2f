"""Orders' price cache against the real wiring: a catalog activation heard over NATS drops kept prices."""

from __future__ import annotations

import asyncio

import pytest

from yummi.catalog.v1 import catalog_pb2
from yummi.events.v1 import events_pb2
from yummi_common.messaging.events import subject_for
from yummi_common.service import Runtime
from yummi_orders.adapters.catalog import DATASET_ACTIVATED
from yummi_orders.bootstrap import OrdersApp

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_an_activation_heard_over_nats_drops_the_kept_prices(runtime: Runtime, fake_catalog) -> None:
    servicer, _addr = fake_catalog
    app = OrdersApp()
    for job in app.background(runtime):  # registers the activation watch; the sweeper is not run here
        job.close()  # type: ignore[attr-defined]
    catalog = app.catalog(runtime)
    assert catalog.ttl >= 1  # ORDERS_CATALOG_CACHE_SECONDS (2 s by default)
    milk = servicer.products["6f1d2a3b-0000-4000-8000-000000000001"]
    try:
        first = await catalog.batch_get_products(["W-MILK"])
        calls = servicer.calls
        assert [p.price_minor for p in first] == [milk.price_minor]

        # A new version changes the price: within the TTL and without an announcement the kept price stays.
        changed = catalog_pb2.Product()
        changed.CopyFrom(milk)
        changed.price_minor = milk.price_minor + 500
        servicer.products[milk.id] = changed
        again = await catalog.batch_get_products(["W-MILK"])
        assert [p.price_minor for p in again] == [milk.price_minor]
        assert servicer.calls == calls

        # The catalog announces the activation on NATS (as its outbox relay does): the next order re-prices.
        generation = catalog.generation
        assert runtime.nc is not None
        body = events_pb2.DatasetActivated(dataset_id="d2", version="test-2", item_count=3)
        subject = subject_for(runtime.settings.nats_subject_prefix, DATASET_ACTIVATED)
        for _ in range(100):  # the watch subscribes in a task of its own: announce until it is heard
            await runtime.nc.publish(subject, body.SerializeToString())
            await asyncio.sleep(0.05)
            if catalog.generation > generation:
                break
        assert catalog.generation > generation
        fresh = await catalog.batch_get_products(["W-MILK"])
        assert [p.price_minor for p in fresh] == [changed.price_minor]
        assert servicer.calls == calls + 1
    finally:
        servicer.products[milk.id] = milk
        catalog.invalidate()
