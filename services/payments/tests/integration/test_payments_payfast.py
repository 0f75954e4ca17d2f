"""PayFast top-ups end to end over real HTTP and gRPC: simulator checkout, ITN checks, status, chargeback."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from urllib.parse import urlencode

import grpc
import httpx
import pytest
from sqlalchemy import select

from yummi.common.v1 import common_pb2
from yummi.events.v1 import events_pb2 as ev
from yummi.payments.v1 import payments_pb2 as pb
from yummi_common.errors import Unavailable
from yummi_common.pagination import encode_cursor
from yummi_payments.adapters.payfast_client import PayfastItnVerifier
from yummi_payments.adapters.tables import itn_audit, payments
from yummi_payments.domain import payfast as pf
from yummi_payments.service_layer import payfast as payfast_service
from yummi_payments.simulator import PayfastSimulator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def initiate(stub, user: uuid.UUID, amount_minor: int = 10_000, **extra) -> pb.InitiatePayfastResponse:
    return await stub.InitiatePayfast(
        pb.InitiatePayfastRequest(user_id=str(user), amount_minor=amount_minor, currency="ZAR", **extra)
    )


async def status_of(stub, user: uuid.UUID, reference: str) -> pb.PaymentStatus:
    return await stub.GetPaymentStatus(pb.PaymentStatusRequest(user_id=str(user), reference=reference))


async def audits(runtime, reference: str) -> list[tuple[str, str | None]]:
    async with runtime.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(itn_audit.c.outcome, itn_audit.c.reason)
                .where(itn_audit.c.reference == reference)
                .order_by(itn_audit.c.created_at)
            )
        ).all()
    return [(r.outcome, r.reason) for r in rows]


def checkout_of(response: pb.InitiatePayfastResponse) -> dict[str, str]:
    return {f.name: f.value for f in response.fields}


def itn_body(
    simulator: PayfastSimulator, response: pb.InitiatePayfastResponse, payment_status: str = "COMPLETE"
) -> bytes:
    """The signed ITN PayFast would send for this checkout, as a form body (the simulator confirms it)."""
    return urlencode(simulator.build_itn(checkout_of(response), payment_status=payment_status)).encode()


async def itn(stub, body: bytes, client_ip: str = "127.0.0.1") -> pb.HandleItnResponse:
    return await stub.HandleItn(pb.HandleItnRequest(raw_body=body, client_ip=client_ip))


async def test_initiate_returns_signed_fields_in_payfasts_order_and_a_pending_payment(stub, payfast):
    user = uuid.uuid4()
    response = await initiate(stub, user, 12_345, email="thandi@example.co.za")

    names = [f.name for f in response.fields]
    assert names == [
        "merchant_id",
        "merchant_key",
        "return_url",
        "cancel_url",
        "notify_url",
        "email_address",
        "m_payment_id",
        "amount",
        "item_name",
        "signature",
    ]
    fields = checkout_of(response)
    assert fields["amount"] == "123.45"
    assert fields["m_payment_id"] == response.reference
    assert fields["return_url"].endswith(f"return-bridge?reference={response.reference}")
    unsigned = [(f.name, f.value) for f in response.fields if f.name != "signature"]
    assert fields["signature"] == pf.sign(unsigned, payfast.passphrase)
    assert response.action_url == payfast.process_url
    assert response.mode == "sandbox"
    status = await status_of(stub, user, response.reference)
    assert (status.status, status.amount_minor, status.currency, status.wallet_credited) == (
        "pending",
        12_345,
        "ZAR",
        False,
    )


@pytest.mark.parametrize(
    ("amount", "currency", "user"),
    [
        (499, "ZAR", str(uuid.uuid4())),
        (1_000_001, "ZAR", str(uuid.uuid4())),
        (1_000, "USD", str(uuid.uuid4())),
        (1_000, "ZAR", "not-a-user-id"),
    ],
)
async def test_initiate_refuses_amounts_outside_r5_to_r10000_other_currencies_and_bad_ids(
    stub, amount, currency, user
):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.InitiatePayfast(
            pb.InitiatePayfastRequest(user_id=user, amount_minor=amount, currency=currency)
        )
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_top_up_through_the_simulators_checkout_credits_the_wallet_once(
    stub, runtime, simulator: PayfastSimulator, simulator_url, deliver, emitted
):
    user = uuid.uuid4()
    response = await initiate(stub, user, 25_000)

    async with httpx.AsyncClient(timeout=30) as client:
        page = await client.post(response.action_url, data=checkout_of(response))
        assert page.status_code == 200, page.text
        pay_path = re.search(r'action="(/eng/process/[^"]+/pay)"', page.text)
        assert pay_path, page.text
        paid = await client.post(f"{simulator_url}{pay_path.group(1)}", data={"payment_status": "COMPLETE"})
    assert paid.status_code == 303
    assert paid.headers["location"].endswith(f"reference={response.reference}")
    [notification] = [n for n in simulator.state.notifications if n.reference == response.reference]
    assert notification.status_code == 200

    status = await status_of(stub, user, response.reference)
    assert (status.status, status.payfast_status) == ("complete", "COMPLETE")
    [credited] = await emitted("payments.payment.credited", reference=response.reference)
    assert (credited.user_id, credited.amount_minor, credited.currency) == (str(user), 25_000, "ZAR")
    assert credited.pf_payment_id

    await deliver("payments.payment.credited", credited)
    await deliver("payments.payment.credited", credited)
    wallet = await stub.GetWallet(pb.WalletRequest(user_id=str(user)))
    assert wallet.balance_minor == 25_000
    assert [(t.entry_type, t.amount_minor) for t in wallet.transactions] == [("credit", 25_000)]
    assert (await status_of(stub, user, response.reference)).wallet_credited is True
    assert await audits(runtime, response.reference) == [("credited", None)]


async def test_repeat_itn_for_a_completed_payment_is_accepted_and_changes_nothing(
    stub, runtime, simulator, emitted
):
    user = uuid.uuid4()
    response = await initiate(stub, user, 5_000)
    body = itn_body(simulator, response)

    first = await itn(stub, body)
    again = await itn(stub, body)

    assert (first.accepted, first.outcome) == (True, "credited")
    assert (again.accepted, again.outcome) == (True, "duplicate")
    assert len(await emitted("payments.payment.credited", reference=response.reference)) == 1
    assert await audits(runtime, response.reference) == [("credited", None), ("duplicate", None)]


async def test_failed_payment_is_recorded_and_credits_nothing(stub, runtime, simulator, emitted):
    user = uuid.uuid4()
    response = await initiate(stub, user, 5_000)
    body = itn_body(simulator, response, "FAILED")

    result = await itn(stub, body)

    assert result.outcome == "recorded"
    status = await status_of(stub, user, response.reference)
    assert (status.status, status.payfast_status) == ("failed", "FAILED")
    assert await emitted("payments.payment.credited", reference=response.reference) == []


async def test_a_pending_itn_is_recorded_and_the_complete_one_after_it_credits_once(
    stub, runtime, simulator, emitted
):
    user = uuid.uuid4()
    response = await initiate(stub, user, 5_000)
    pending = itn_body(simulator, response, "PENDING")
    complete = itn_body(simulator, response)

    outcomes = [(await itn(stub, body)).outcome for body in (pending, pending, complete, complete)]

    assert outcomes == ["recorded", "recorded", "credited", "duplicate"]
    status = await status_of(stub, user, response.reference)
    assert (status.status, status.payfast_status) == ("complete", "COMPLETE")
    assert len(await emitted("payments.payment.credited", reference=response.reference)) == 1
    assert [o for o, _ in await audits(runtime, response.reference)] == outcomes


async def test_a_complete_itn_after_a_failed_one_is_audited_as_a_conflict_and_credits_nothing(
    stub, runtime, simulator, emitted
):
    user = uuid.uuid4()
    response = await initiate(stub, user, 5_000)
    failed = itn_body(simulator, response, "FAILED")
    complete = itn_body(simulator, response)

    first = await itn(stub, failed)
    late = await itn(stub, complete)

    assert (first.outcome, late.accepted, late.outcome) == ("recorded", True, "duplicate")
    status = await status_of(stub, user, response.reference)
    assert (status.status, status.payfast_status, status.wallet_credited) == ("failed", "FAILED", False)
    assert await emitted("payments.payment.credited", reference=response.reference) == []
    assert await audits(runtime, response.reference) == [
        ("recorded", None),
        ("duplicate", "conflicts_with_final_status"),
    ]


async def _assert_rejected(stub, runtime, emitted, user, response, body, client_ip, reason) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await itn(stub, body, client_ip)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = await status_of(stub, user, response.reference)
    assert (status.status, status.payfast_status, status.wallet_credited) == ("pending", "", False)
    assert await emitted("payments.payment.credited", reference=response.reference) == []
    assert await audits(runtime, response.reference) == [("rejected", reason)]


async def test_itn_with_a_bad_signature_is_rejected_and_credits_nothing(stub, runtime, simulator, emitted):
    user = uuid.uuid4()
    response = await initiate(stub, user)
    pairs = simulator.build_itn(checkout_of(response))
    forged = [(k, "0" * 32 if k == "signature" else v) for k, v in pairs]

    await _assert_rejected(
        stub, runtime, emitted, user, response, urlencode(forged).encode(), "127.0.0.1", "bad_signature"
    )


async def test_itn_from_an_address_that_is_not_payfast_is_rejected_and_credits_nothing(
    stub, runtime, simulator, emitted
):
    user = uuid.uuid4()
    response = await initiate(stub, user)
    body = itn_body(simulator, response)

    await _assert_rejected(stub, runtime, emitted, user, response, body, "203.0.113.9", "untrusted_source")


async def test_itn_with_the_wrong_amount_is_rejected_and_credits_nothing(stub, runtime, simulator, emitted):
    user = uuid.uuid4()
    response = await initiate(stub, user, 10_000)
    body = urlencode(simulator.build_itn({**checkout_of(response), "amount": "10.00"})).encode()

    await _assert_rejected(stub, runtime, emitted, user, response, body, "127.0.0.1", "amount_mismatch")


async def test_itn_payfast_does_not_confirm_is_rejected_and_credits_nothing(stub, runtime, payfast, emitted):
    user = uuid.uuid4()
    response = await initiate(stub, user, 10_000)
    # Correctly signed with our passphrase, but never issued by PayFast: /eng/query/validate answers INVALID.
    pairs = [
        ("m_payment_id", response.reference),
        ("pf_payment_id", "1"),
        ("payment_status", "COMPLETE"),
        ("amount_gross", "100.00"),
        ("merchant_id", payfast.merchant_id),
    ]
    body = urlencode([*pairs, ("signature", pf.sign(pairs, payfast.passphrase))]).encode()

    await _assert_rejected(stub, runtime, emitted, user, response, body, "127.0.0.1", "not_confirmed")


async def test_itn_for_another_merchant_is_rejected_and_credits_nothing(stub, runtime, payfast, emitted):
    user = uuid.uuid4()
    response = await initiate(stub, user)
    other = PayfastSimulator(merchant_id="10099999", passphrase=payfast.passphrase)
    body = urlencode(other.build_itn(checkout_of(response))).encode()

    await _assert_rejected(stub, runtime, emitted, user, response, body, "127.0.0.1", "wrong_merchant")


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"m_payment_id=" + str(uuid.uuid4()).encode() + b"&payment_status=COMPLETE"],
)
async def test_malformed_or_unknown_itn_is_rejected(stub, body):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await itn(stub, body)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_itn_for_a_payment_we_never_started_is_rejected(stub, simulator, runtime):
    reference = str(uuid.uuid4())
    body = urlencode(simulator.build_itn({"m_payment_id": reference, "amount": "50.00"})).encode()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await itn(stub, body)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert await audits(runtime, reference) == [("rejected", "unknown_payment")]


async def test_unreachable_server_confirmation_is_unavailable_and_leaves_the_payment_pending(
    stub, runtime, simulator, payfast
):
    user = uuid.uuid4()
    response = await initiate(stub, user)
    body = itn_body(simulator, response)
    offline = replace(
        payfast, validate_url="http://127.0.0.1:9/eng/query/validate", validate_timeout_seconds=2
    )

    with pytest.raises(Unavailable):
        await payfast_service.handle_itn(
            uow_factory=runtime.uow,
            config=offline,
            verifier=PayfastItnVerifier(offline),
            raw_body=body,
            client_ip="127.0.0.1",
        )

    assert (await status_of(stub, user, response.reference)).status == "pending"
    assert [o for o, _ in await audits(runtime, response.reference)] == ["unavailable"]
    assert (await itn(stub, body)).outcome == "credited"  # PayFast's retry succeeds once we are back


async def test_payment_status_is_only_shown_to_its_owner(stub):
    response = await initiate(stub, uuid.uuid4())
    for user, reference in ((str(uuid.uuid4()), response.reference), (str(uuid.uuid4()), str(uuid.uuid4()))):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetPaymentStatus(pb.PaymentStatusRequest(user_id=user, reference=reference))
        assert info.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetPaymentStatus(pb.PaymentStatusRequest(user_id=str(uuid.uuid4()), reference="nope"))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_pending_count_counts_payments_awaiting_their_itn(stub, simulator):
    before = (await stub.GetPendingCounts(pb.PendingCountsRequest())).payments_pending
    response = await initiate(stub, uuid.uuid4())
    assert (await stub.GetPendingCounts(pb.PendingCountsRequest())).payments_pending == before + 1
    await itn(stub, itn_body(simulator, response))
    assert (await stub.GetPendingCounts(pb.PendingCountsRequest())).payments_pending == before


async def test_chargeback_over_grpc_debits_below_zero_blocks_and_cannot_repeat(
    stub, simulator, deliver, emitted
):
    user = uuid.uuid4()
    response = await initiate(stub, user, 8_000)
    await itn(stub, itn_body(simulator, response))
    [credited] = await emitted("payments.payment.credited", reference=response.reference)
    await deliver("payments.payment.credited", credited)
    await deliver(
        "orders.order.placed",
        ev.OrderPlaced(order_id=str(uuid.uuid4()), user_id=str(user), total_minor=3_000, currency="ZAR"),
    )

    result = await stub.Chargeback(
        pb.ChargebackRequest(reference=response.reference, admin_id="admin-7", reason="card holder dispute")
    )

    assert (result.wallet.balance_minor, result.wallet.debits_blocked) == (-3_000, True)
    assert result.wallet.transactions[0].entry_type == "chargeback"
    assert result.wallet.transactions[0].amount_minor == -8_000
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stub.Chargeback(
            pb.ChargebackRequest(reference=response.reference, admin_id="a", reason="again")
        )
    assert again.value.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_chargeback_needs_a_complete_payment_a_known_reference_and_a_reason(stub):
    pending = await initiate(stub, uuid.uuid4())
    cases = [
        (pending.reference, "admin", "dispute", grpc.StatusCode.FAILED_PRECONDITION),
        (str(uuid.uuid4()), "admin", "dispute", grpc.StatusCode.NOT_FOUND),
        ("not-a-reference", "admin", "dispute", grpc.StatusCode.INVALID_ARGUMENT),
        (pending.reference, "admin", "", grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for reference, admin, reason, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Chargeback(pb.ChargebackRequest(reference=reference, admin_id=admin, reason=reason))
        assert info.value.code() is code


async def test_wallet_rpc_answers_zero_for_a_new_user_and_refuses_bad_input(stub):
    wallet = await stub.GetWallet(pb.WalletRequest(user_id=str(uuid.uuid4())))
    assert (wallet.balance_minor, wallet.currency, wallet.debits_blocked, len(wallet.transactions)) == (
        0,
        "ZAR",
        False,
        0,
    )
    for request in (
        pb.WalletRequest(user_id="x"),
        pb.WalletRequest(user_id=str(uuid.uuid4()), limit=-1),
        pb.WalletRequest(user_id=str(uuid.uuid4()), cursor="%%%"),
        pb.WalletRequest(
            user_id=str(uuid.uuid4()), cursor=encode_cursor(["2026-01-01T00:00:00", str(uuid.uuid4())])
        ),
        pb.WalletRequest(user_id=str(uuid.uuid4()), cursor=encode_cursor(["yesterday", "x"])),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetWallet(request)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_export_holds_the_users_wallet_ledger_and_payments(stub, simulator, deliver, emitted):
    import orjson

    user = uuid.uuid4()
    response = await initiate(stub, user, 6_000)
    await itn(stub, itn_body(simulator, response))
    [credited] = await emitted("payments.payment.credited", reference=response.reference)
    await deliver("payments.payment.credited", credited)

    export = await stub.ExportUserData(common_pb2.UserRef(user_id=str(user)))

    document = orjson.loads(export.json)
    assert export.context == "payments"
    assert document["wallet"]["balance_minor"] == 6_000
    assert [t["entry_type"] for t in document["transactions"]] == ["credit"]
    assert [p["reference"] for p in document["payments"]] == [response.reference]


async def test_erasure_strips_the_buyers_details_and_reports_done(stub, runtime, simulator, deliver, emitted):
    user = uuid.uuid4()
    response = await initiate(stub, user, 6_000)
    await itn(stub, itn_body(simulator, response))

    await deliver("identity.user.erased", ev.UserErased(user_id=str(user), pseudonym="u-1"))

    async with runtime.engine.connect() as conn:
        payload = (
            await conn.execute(
                select(payments.c.last_itn_payload).where(
                    payments.c.reference == uuid.UUID(response.reference)
                )
            )
        ).scalar_one()
        audit_payloads = (
            await conn.execute(select(itn_audit.c.payload).where(itn_audit.c.reference == response.reference))
        ).scalars()
        assert all("email_address" not in p for p in audit_payloads)
    assert "email_address" not in payload and "name_first" not in payload
    assert payload["payment_status"] == "COMPLETE"
    assert len(await emitted("identity.user.erasure_completed", user_id=str(user), context="payments")) == 1
