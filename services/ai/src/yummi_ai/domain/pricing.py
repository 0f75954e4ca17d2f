"""What a call costs: list prices per model in micro-USD per million tokens, rounded up to whole micro-USD."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    input_micro_usd_per_million: int
    output_micro_usd_per_million: int


# OpenAI list prices (USD per 1M tokens x 1e6); keep in step with the allowlist.
PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(150_000, 600_000),
    "gpt-4o": Price(2_500_000, 10_000_000),
    "gpt-4.1-nano": Price(100_000, 400_000),
    "gpt-4.1-mini": Price(400_000, 1_600_000),
    "gpt-4.1": Price(2_000_000, 8_000_000),
}
# An allowed model missing from the table is charged at the dearest known price, so cost is never understated.
FALLBACK_PRICE = Price(
    max(p.input_micro_usd_per_million for p in PRICES.values()),
    max(p.output_micro_usd_per_million for p in PRICES.values()),
)


def price_of(model: str) -> Price:
    return PRICES.get(model, FALLBACK_PRICE)


def cost_micro_usd(model: str, *, prompt_tokens: int, completion_tokens: int) -> int:
    """The estimated cost of one call in micro-USD (integer, rounded up)."""
    price = price_of(model)
    numerator = (
        prompt_tokens * price.input_micro_usd_per_million
        + completion_tokens * price.output_micro_usd_per_million
    )
    return -(-numerator // 1_000_000)
