"""Basket suggestions: the model searches the live catalog through a tool, then proposes verified products."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from yummi.catalog.v1 import catalog_pb2
from yummi_ai.adapters.catalog import Catalog
from yummi_ai.adapters.openai_provider import ToolCall
from yummi_ai.adapters.secrets import Keyring
from yummi_ai.config import FEATURE_BASKET_SUGGESTIONS
from yummi_ai.domain.suggestions import (
    LAST_ROUND_NOTE,
    MAX_ROUNDS,
    MAX_TOOL_CALLS,
    SEARCH_TOOL,
    SEARCH_TOOL_NAME,
    SYSTEM_PROMPT,
    ProposedItem,
    UnusableAnswer,
    parse_answer,
    parse_search_args,
    validate_request_text,
)
from yummi_ai.errors import UpstreamFailed
from yummi_ai.service_layer.credentials import resolve_key
from yummi_ai.service_layer.features import require_feature
from yummi_ai.service_layer.ids import parse_id
from yummi_ai.service_layer.metering import Meter, metered_chat
from yummi_common.errors import Unavailable
from yummi_common.logging import get_logger

log = get_logger(__name__)

ONLY_JSON_PLEASE = "Reply with only the JSON object described, and nothing else."


@dataclass(frozen=True)
class Suggestion:
    product: catalog_pb2.Product
    quantity: int
    reason: str


async def suggest_basket(
    *,
    meter: Meter,
    keyring: Keyring,
    catalog: Catalog,
    user_id: str,
    text: str,
    user_key_id: str,
    deadline: float,
) -> list[Suggestion]:
    """Products of the live catalog for the user's need, each verified to exist and be available.

    Every model turn is a metered call against the daily budget. An answer that is not the asked JSON, even
    after one reminder, is UpstreamFailed ("unusable answer", 502): the user's text was fine, a retry may
    work.
    """
    require_feature(meter.config, FEATURE_BASKET_SUGGESTIONS)
    uid = parse_id(user_id, "user_id")
    need = validate_request_text(text)
    key = await resolve_key(
        uow_factory=meter.uow_factory,
        keyring=keyring,
        config=meter.config,
        user_id=uid,
        user_key_id=user_key_id,
    )
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": need},
    ]
    searches = 0
    must_answer = False
    for turn in range(MAX_ROUNDS):
        last = must_answer or turn == MAX_ROUNDS - 1
        result = await metered_chat(
            meter,
            user_id=uid,
            key=key,
            model=meter.config.default_model,
            messages=messages,
            max_tokens=meter.config.max_tokens_cap,
            deadline=deadline,
            tools=[SEARCH_TOOL],
            tool_choice="none" if last else "auto",
            json_answer=last,
        )
        if result.tool_calls and not last:
            messages.append(_assistant_with_calls(result.content, result.tool_calls))
            for call in result.tool_calls:
                searches += 1
                content = await _run_tool(call, catalog, allowed=searches <= MAX_TOOL_CALLS)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
            if searches >= MAX_TOOL_CALLS or turn == MAX_ROUNDS - 2:
                messages.append({"role": "system", "content": LAST_ROUND_NOTE})
                must_answer = True
            continue
        try:
            items, dropped = parse_answer(result.content)
        except UnusableAnswer as exc:
            log.warning("assistant answer unusable", reason=str(exc), turn=turn)
            if last:
                break
            messages.append({"role": "assistant", "content": result.content or ""})
            messages.append({"role": "user", "content": ONLY_JSON_PLEASE})
            must_answer = True
            continue
        if dropped:
            log.info("assistant proposed malformed items", dropped=dropped)
        return await _verified(items, catalog)
    raise UpstreamFailed("the assistant returned an unusable answer; try again")


def _assistant_with_calls(content: str | None, calls: list[ToolCall]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ],
    }


async def _run_tool(call: ToolCall, catalog: Catalog, *, allowed: bool) -> str:
    """The tool's result for the model (JSON text); a bad call gets an error it can read, not an exception."""
    if call.name != SEARCH_TOOL_NAME:
        return orjson.dumps({"error": f"unknown tool {call.name[:64]!r}; use {SEARCH_TOOL_NAME}"}).decode()
    if not allowed:
        return orjson.dumps({"error": "search limit reached; answer with what you found"}).decode()
    try:
        args = parse_search_args(call.arguments)
    except ValueError as exc:
        return orjson.dumps({"error": str(exc)}).decode()
    try:
        products = await catalog.search(query=args.query, limit=args.limit)
    except Unavailable as exc:
        # Tokens are already spent: fail as an upstream error, which the channels do not replay.
        raise UpstreamFailed(exc.message) from exc
    return orjson.dumps(
        {
            "results": [
                {"product_id": p.id, "title": p.title, "price_minor": p.price_minor, "category": p.category}
                for p in products
            ]
        }
    ).decode()


async def _verified(items: list[ProposedItem], catalog: Catalog) -> list[Suggestion]:
    """Only proposals naming a product the live catalog holds and has available, each product once."""
    if not items:
        return []
    try:
        products = await catalog.batch_get([item.product_id for item in items])
    except Unavailable as exc:
        raise UpstreamFailed(exc.message) from exc
    by_reference: dict[str, catalog_pb2.Product] = {}
    for product in products:
        by_reference.setdefault(product.id, product)
        by_reference.setdefault(product.product_id, product)
    suggestions: list[Suggestion] = []
    seen: set[str] = set()
    for item in items:
        found = by_reference.get(item.product_id)
        if found is None or not found.available:
            log.info(
                "assistant proposed a product that cannot be offered",
                product_ref=item.product_id[:64],
                reason="unknown" if found is None else "unavailable",
            )
            continue
        if found.id in seen:
            continue
        seen.add(found.id)
        suggestions.append(Suggestion(product=found, quantity=item.quantity, reason=item.reason))
    return suggestions
