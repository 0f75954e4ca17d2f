"""The PayFast simulator resends an ITN until the merchant's notify_url answers 200, as PayFast does."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from yummi_payments.domain import payfast
from yummi_payments.simulator import PAYFAST_RETRY_DELAYS, PayfastSimulator, main

from .conftest import serve_http, stop_http

pytestmark = pytest.mark.integration


@dataclass
class Merchant:
    """A notify_url that answers 503 to the first `failures` posts, then 200; it keeps every body."""

    url: str
    failures: int = 0
    bodies: list[bytes] = field(default_factory=list)


@pytest_asyncio.fixture(loop_scope="session")
async def merchant() -> AsyncIterator[Merchant]:
    state = Merchant(url="")

    async def itn(request: Request) -> Response:
        state.bodies.append(await request.body())
        if len(state.bodies) <= state.failures:
            return PlainTextResponse("busy", status_code=503)
        return PlainTextResponse("OK")

    server, task, url = await serve_http(Starlette(routes=[Route("/itn", itn, methods=["POST"])]))
    state.url = f"{url}/itn"
    yield state
    await stop_http(server, task)


async def pay(simulator: PayfastSimulator, notify_url: str) -> str:
    """Check out R50 on the simulator's hosted page and press Pay; returns the reference."""
    fields = {
        "merchant_id": simulator.merchant_id,
        "merchant_key": simulator.merchant_key,
        "notify_url": notify_url,
        "m_payment_id": "7f1b5a3e-0000-4000-8000-00000000abcd",
        "amount": "50.00",
        "item_name": "Wallet top-up",
    }
    signed = {**fields, "signature": payfast.sign(payfast.checkout_pairs(fields), simulator.passphrase)}
    transport = httpx.ASGITransport(app=simulator.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator") as browser:
        page = await browser.post("/eng/process", data=signed)
        assert page.status_code == 200, page.text
        pay_path = re.search(r'action="(/eng/process/[^"]+/pay)"', page.text)
        assert pay_path, page.text
        paid = await browser.post(pay_path.group(1), data={"payment_status": "COMPLETE"})
        assert paid.status_code == 200, paid.text
    return fields["m_payment_id"]


async def eventually(check: Callable[[], bool], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio(loop_scope="session")
async def test_an_itn_answered_with_503_is_sent_again_until_the_merchant_answers_200(
    merchant: Merchant,
) -> None:
    merchant.failures = 2
    simulator = PayfastSimulator(retry_delays=(0.05, 0.05, 0.05, 0.05))
    reference = await pay(simulator, merchant.url)

    [delivery] = simulator.state.deliveries
    await eventually(lambda: not delivery.pending)
    assert (delivery.reference, delivery.delivered, delivery.attempts) == (reference, True, 3)
    assert [(n.attempt, n.status_code) for n in simulator.state.notifications] == [
        (1, 503),
        (2, 503),
        (3, 200),
    ]
    assert len(set(merchant.bodies)) == 1, "the same signed ITN each time"
    await asyncio.sleep(0.2)
    assert len(merchant.bodies) == 3, "nothing is sent once the merchant answered 200"


@pytest.mark.asyncio(loop_scope="session")
async def test_the_simulator_gives_up_after_the_last_retry(merchant: Merchant) -> None:
    merchant.failures = 100
    simulator = PayfastSimulator(retry_delays=(0.02, 0.02))
    await pay(simulator, merchant.url)

    [delivery] = simulator.state.deliveries
    await eventually(lambda: not delivery.pending)
    assert (delivery.delivered, delivery.gave_up, delivery.attempts) == (False, True, 3)
    assert len(merchant.bodies) == 3


@pytest.mark.asyncio(loop_scope="session")
async def test_an_unreachable_notify_url_is_retried_and_shutdown_cancels_pending_retries() -> None:
    simulator = PayfastSimulator(retry_delays=(0.02, 3600.0))
    await pay(simulator, "http://127.0.0.1:9/itn")  # discard port: nothing listens

    [delivery] = simulator.state.deliveries
    await eventually(lambda: delivery.attempts == 2)
    assert all(n.status_code is None and n.error for n in simulator.state.notifications)
    assert delivery.pending  # the next try is an hour away
    await simulator.aclose()
    assert delivery.pending and delivery.attempts == 2


def test_payfasts_schedule_is_the_default_and_the_cli_takes_a_short_one() -> None:
    assert PayfastSimulator().retry_delays == PAYFAST_RETRY_DELAYS
    assert PAYFAST_RETRY_DELAYS[0] == 600.0
    assert list(PAYFAST_RETRY_DELAYS) == sorted(PAYFAST_RETRY_DELAYS)
    with pytest.raises(ValueError, match="negative"):
        PayfastSimulator(retry_delays=(-1.0,))
    with pytest.raises(SystemExit):
        main(["--retry-delays", "soon"])
