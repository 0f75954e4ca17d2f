"""Prometheus counter of PayFast ITN outcomes (accepted, rejected by reason, unavailable)."""

from __future__ import annotations

from prometheus_client import Counter

from yummi_common.errors import InvalidArgument, YummiError

ITN_OUTCOMES = Counter(
    "yummi_payfast_itn_total",
    "PayFast ITNs handled, by outcome (credited, recorded, duplicate, rejected, unavailable) and reason.",
    ["outcome", "reason"],
)
# The refusal reasons of the ITN checks (a bounded label set; anything else counts as `other`).
REJECTION_REASONS = frozenset(
    {
        "malformed",
        "unknown_payment",
        "bad_signature",
        "wrong_merchant",
        "untrusted_source",
        "amount_mismatch",
        "not_confirmed",
    }
)


def count_itn_outcome(outcome: str) -> None:
    """Count an accepted ITN by its outcome."""
    ITN_OUTCOMES.labels(outcome, "").inc()


def count_itn_failure(exc: YummiError) -> None:
    """Count a refused ITN by its reason, or an ITN left for PayFast to retry (confirmation unavailable)."""
    if isinstance(exc, InvalidArgument):
        reason = str(exc.errors[0].get("message", "")) if exc.errors else ""
        ITN_OUTCOMES.labels("rejected", reason if reason in REJECTION_REASONS else "other").inc()
    else:
        ITN_OUTCOMES.labels("unavailable" if exc.code == "UNAVAILABLE" else "error", exc.code.lower()).inc()
