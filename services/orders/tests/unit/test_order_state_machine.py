"""Every allowed and every refused transition of the order state machine, and lease expiry."""

from __future__ import annotations

import itertools

import pytest

from yummi_common.errors import Conflict, InvalidArgument
from yummi_orders.domain.orders import (
    LEASE_EXPIRED_REASON,
    OrderStatus,
    ack_outcome,
    can_transition,
    cancel,
    expire_lease,
    transition,
)

S = OrderStatus
ALLOWED = {
    (S.PENDING_PAYMENT, S.QUEUED),
    (S.PENDING_PAYMENT, S.REJECTED),
    (S.PENDING_PAYMENT, S.CANCELLED),
    (S.QUEUED, S.CLAIMED),
    (S.QUEUED, S.CANCELLED),
    (S.CLAIMED, S.COMPLETED),
    (S.CLAIMED, S.FAILED),
    (S.CLAIMED, S.QUEUED),
}
REFUSED = sorted(set(itertools.product(S, S)) - ALLOWED)


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_allowed_transition_returns_the_target_status(current: S, target: S) -> None:
    assert can_transition(current, target)
    assert transition(current, target) is target


@pytest.mark.parametrize(("current", "target"), REFUSED)
def test_every_other_transition_is_a_conflict(current: S, target: S) -> None:
    assert not can_transition(current, target)
    with pytest.raises(Conflict):
        transition(current, target)


def test_transitions_accept_stored_status_strings() -> None:
    assert transition("pending_payment", "queued") is S.QUEUED


def test_terminal_statuses_allow_nothing() -> None:
    for terminal in (S.COMPLETED, S.FAILED, S.REJECTED, S.CANCELLED):
        assert not any(can_transition(terminal, target) for target in S)


@pytest.mark.parametrize("current", [S.PENDING_PAYMENT, S.QUEUED])
def test_cancel_is_allowed_while_waiting_for_payment_or_a_runner(current: S) -> None:
    assert cancel(current) is S.CANCELLED


@pytest.mark.parametrize("current", [S.CLAIMED, S.COMPLETED, S.FAILED, S.REJECTED, S.CANCELLED])
def test_cancel_is_refused_once_a_runner_has_it_or_it_is_over(current: S) -> None:
    with pytest.raises(Conflict):
        cancel(current)


def test_lease_expiry_requeues_and_counts_the_attempt() -> None:
    expiry = expire_lease(current=S.CLAIMED, attempts=0, max_attempts=5)
    assert (expiry.status, expiry.attempts, expiry.reason) == (S.QUEUED, 1, None)


def test_lease_expiry_fails_the_order_when_attempts_reach_the_limit() -> None:
    assert expire_lease(current=S.CLAIMED, attempts=3, max_attempts=5).status is S.QUEUED
    expiry = expire_lease(current=S.CLAIMED, attempts=4, max_attempts=5)
    assert (expiry.status, expiry.attempts, expiry.reason) == (S.FAILED, 5, LEASE_EXPIRED_REASON)


def test_lease_expiry_with_a_limit_of_one_fails_at_once() -> None:
    assert expire_lease(current=S.CLAIMED, attempts=0, max_attempts=1).status is S.FAILED


@pytest.mark.parametrize("current", [s for s in S if s is not S.CLAIMED])
def test_lease_expiry_of_an_unclaimed_order_is_a_conflict(current: S) -> None:
    with pytest.raises(Conflict):
        expire_lease(current=current, attempts=0, max_attempts=5)


@pytest.mark.parametrize("outcome", ["completed", "failed"])
def test_ack_outcome_accepts_completed_and_failed(outcome: str) -> None:
    assert ack_outcome(outcome) is S(outcome)


@pytest.mark.parametrize("outcome", ["", "queued", "cancelled", "COMPLETED", "done"])
def test_ack_outcome_refuses_anything_else(outcome: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        ack_outcome(outcome)
    assert info.value.errors[0]["field"] == "outcome"
