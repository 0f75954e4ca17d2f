"""ITN races: a notification beating the initiate answer to the caller; copies of one ITN applied at once."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from yummi.payments.v1 import payments_pb2 as pb
from yummi_common.service import Runtime
from yummi_payments.adapters.payfast_client import PayfastItnVerifier
from yummi_payments.adapters.tables import payments
from yummi_payments.config import PayfastConfig
from yummi_payments.service_layer.payfast import handle_itn
from yummi_payments.simulator import PayfastSimulator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ROUNDS = 8
AMOUNT = 2_500


async def reference_once_stored(runtime: Runtime, user: uuid.UUID, *, within: float = 10.0) -> uuid.UUID:
    """The reference of the user's payment as soon as its row is visible to another connection."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        async with runtime.engine.connect() as conn:
            found = (
                await conn.execute(select(payments.c.reference).where(payments.c.user_id == user))
            ).scalar()
        if found is not None:
            return found  # type: ignore[no-any-return]
        await asyncio.sleep(0)
    raise AssertionError("the payment never became visible")


def itn_for(simulator: PayfastSimulator, reference: uuid.UUID, amount_minor: int) -> bytes:
    """The signed ITN PayFast would send for this checkout (and would confirm as VALID)."""
    checkout = {
        "m_payment_id": str(reference),
        "amount": f"{amount_minor // 100}.{amount_minor % 100:02d}",
        "item_name": "Yummi wallet top-up",
    }
    return urlencode(simulator.build_itn(checkout)).encode()


async def test_an_itn_arriving_before_the_initiate_answer_is_read_completes_the_payment_once(
    stub, runtime: Runtime, simulator: PayfastSimulator, deliver, emitted
) -> None:
    for _ in range(ROUNDS):
        user = uuid.uuid4()
        pending = stub.InitiatePayfast(
            pb.InitiatePayfastRequest(user_id=str(user), amount_minor=AMOUNT, currency="ZAR")
        )  # in flight; its answer is not read until the ITN has been handled
        reference = await reference_once_stored(runtime, user)

        handled = await stub.HandleItn(
            pb.HandleItnRequest(raw_body=itn_for(simulator, reference, AMOUNT), client_ip="127.0.0.1")
        )

        assert (handled.accepted, handled.outcome) == (True, "credited")
        initiated = await pending
        assert initiated.reference == str(reference)
        status = await stub.GetPaymentStatus(
            pb.PaymentStatusRequest(user_id=str(user), reference=str(reference))
        )
        assert (status.status, status.payfast_status) == ("complete", "COMPLETE")
        [credited] = await emitted("payments.payment.credited", reference=str(reference))
        await deliver("payments.payment.credited", credited)
        wallet = await stub.GetWallet(pb.WalletRequest(user_id=str(user)))
        assert [(t.entry_type, t.amount_minor) for t in wallet.transactions] == [("credit", AMOUNT)]


class BarrierVerifier:
    """PayFast's source check as configured; its confirmation waits until every copy of the ITN got there.

    So all copies pass the checks together and apply at the same instant: only row locking keeps them apart.
    """

    def __init__(self, config: PayfastConfig, copies: int) -> None:
        self._source = PayfastItnVerifier(config)
        self._copies = copies
        self._arrived = 0
        self._all_here = asyncio.Event()

    async def check_source(self, client_ip: str) -> None:
        await self._source.check_source(client_ip)

    async def confirm(self, param_string: str) -> None:
        self._arrived += 1
        if self._arrived >= self._copies:
            self._all_here.set()
        await asyncio.wait_for(self._all_here.wait(), timeout=10)


async def test_copies_of_one_itn_applied_at_the_same_instant_complete_and_announce_the_payment_once(
    stub, runtime: Runtime, payfast: PayfastConfig, simulator: PayfastSimulator, deliver, emitted
) -> None:
    copies = 6
    user = uuid.uuid4()
    initiated = await stub.InitiatePayfast(
        pb.InitiatePayfastRequest(user_id=str(user), amount_minor=AMOUNT, currency="ZAR")
    )
    body = itn_for(simulator, uuid.UUID(initiated.reference), AMOUNT)
    verifier = BarrierVerifier(payfast, copies)

    results = await asyncio.gather(
        *(
            handle_itn(
                uow_factory=runtime.uow,
                config=payfast,
                verifier=verifier,
                raw_body=body,
                client_ip="127.0.0.1",
            )
            for _ in range(copies)
        )
    )

    assert all(r.accepted for r in results)
    assert sorted(r.outcome for r in results) == ["credited"] + ["duplicate"] * (copies - 1)
    credited = await emitted("payments.payment.credited", reference=initiated.reference)
    assert len(credited) == 1
    await asyncio.gather(*(deliver("payments.payment.credited", credited[0]) for _ in range(3)))
    wallet = await stub.GetWallet(pb.WalletRequest(user_id=str(user)))
    assert (wallet.balance_minor, len(wallet.transactions)) == (AMOUNT, 1)
