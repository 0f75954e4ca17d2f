"""The wallet ledger rules, with no database."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yummi_payments.domain import ledger
from yummi_payments.domain.ledger import DebitRejection, EntryType, OrderChargeStatus, WalletState


def test_debit_covered_by_the_balance_posts_a_negative_entry():
    posting = ledger.decide_debit(WalletState(balance_minor=10_000), amount_minor=2_500, currency="ZAR")
    assert not isinstance(posting, DebitRejection)
    assert posting.entry_type is EntryType.DEBIT
    assert posting.amount_minor == -2_500
    assert posting.wallet.balance_minor == 7_500


def test_debit_of_the_whole_balance_is_allowed():
    posting = ledger.decide_debit(WalletState(balance_minor=2_500), amount_minor=2_500, currency="ZAR")
    assert not isinstance(posting, DebitRejection)
    assert posting.wallet.balance_minor == 0


def test_debit_larger_than_the_balance_is_refused_for_insufficient_funds():
    decision = ledger.decide_debit(WalletState(balance_minor=2_499), amount_minor=2_500, currency="ZAR")
    assert decision is DebitRejection.INSUFFICIENT_FUNDS


def test_debit_is_refused_while_debits_are_blocked_even_with_funds():
    decision = ledger.decide_debit(
        WalletState(balance_minor=50_000, debits_blocked=True), amount_minor=100, currency="ZAR"
    )
    assert decision is DebitRejection.DEBITS_BLOCKED


@pytest.mark.parametrize("amount", [0, -1])
def test_debit_of_a_non_positive_amount_is_refused(amount):
    assert ledger.decide_debit(WalletState(balance_minor=100), amount_minor=amount, currency="ZAR") is (
        DebitRejection.INVALID_AMOUNT
    )


def test_debit_in_another_currency_is_refused():
    decision = ledger.decide_debit(WalletState(balance_minor=100), amount_minor=10, currency="USD")
    assert decision is DebitRejection.UNSUPPORTED_CURRENCY


def test_refund_is_posted_only_for_a_debited_order():
    wallet = WalletState(balance_minor=100)
    posting = ledger.decide_refund(wallet, charge_status=OrderChargeStatus.DEBITED, debited_minor=400)
    assert posting is not None
    assert posting.entry_type is EntryType.REFUND
    assert posting.amount_minor == 400
    assert posting.wallet.balance_minor == 500


@pytest.mark.parametrize(
    "status",
    [None, OrderChargeStatus.REJECTED, OrderChargeStatus.REFUNDED, OrderChargeStatus.CLOSED_BEFORE_DEBIT],
)
def test_refund_without_a_standing_debit_posts_nothing(status):
    wallet = WalletState(balance_minor=100)
    assert ledger.decide_refund(wallet, charge_status=status, debited_minor=400) is None


def test_chargeback_may_take_the_balance_below_zero_and_blocks_debits():
    posting = ledger.decide_chargeback(WalletState(balance_minor=300), amount_minor=1_000)
    assert posting.entry_type is EntryType.CHARGEBACK
    assert posting.amount_minor == -1_000
    assert posting.wallet.balance_minor == -700
    assert posting.wallet.debits_blocked is True


def test_credit_that_brings_a_charged_back_wallet_to_zero_or_more_lifts_the_block():
    blocked = WalletState(balance_minor=-700, debits_blocked=True)
    assert ledger.decide_credit(blocked, amount_minor=500).wallet.debits_blocked is True
    lifted = ledger.decide_credit(blocked, amount_minor=700).wallet
    assert lifted.balance_minor == 0
    assert lifted.debits_blocked is False


def test_credit_must_be_positive():
    with pytest.raises(ledger.LedgerError):
        ledger.decide_credit(WalletState(), amount_minor=0)


def test_cause_keys_name_what_caused_each_entry():
    oid, pid = uuid.uuid4(), uuid.uuid4()
    assert ledger.debit_cause(oid) == f"order:{oid}:debit"
    assert ledger.refund_cause(oid) == f"order:{oid}:refund"
    assert ledger.payment_cause(pid) == f"payment:{pid}"
    assert ledger.debit_cause(oid) != ledger.refund_cause(oid)


@given(
    balance=st.integers(min_value=-(10**9), max_value=10**9),
    amount=st.integers(min_value=1, max_value=10**9),
    blocked=st.booleans(),
)
def test_a_debit_never_leaves_a_negative_balance_and_conserves_money(balance, amount, blocked):
    wallet = WalletState(balance_minor=balance, debits_blocked=blocked)
    decision = ledger.decide_debit(wallet, amount_minor=amount, currency="ZAR")
    if isinstance(decision, DebitRejection):
        assert blocked or balance < amount
    else:
        assert decision.wallet.balance_minor >= 0
        assert decision.wallet.balance_minor == balance + decision.amount_minor
