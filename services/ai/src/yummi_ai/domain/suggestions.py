"""Basket suggestions as a conversation with tools: the prompt, the `search_catalog` tool, the answer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from yummi_common.errors import InvalidArgument

MAX_TEXT_CHARS = 2_000
MAX_ROUNDS = 4  # model turns, the last of which must answer
MAX_TOOL_CALLS = 8  # searches over the whole conversation
MAX_SUGGESTIONS = 30
MAX_QUERY_CHARS = 100
DEFAULT_SEARCH_LIMIT = 8
MAX_SEARCH_LIMIT = 20
MIN_QUANTITY, MAX_QUANTITY = 1, 99
MAX_REASON_CHARS = 300
MAX_PRODUCT_REF_CHARS = 128

SEARCH_TOOL_NAME = "search_catalog"
SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": SEARCH_TOOL_NAME,
        "description": "Search the live grocery catalog; returns available products: ids, titles, prices.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "description": "Words to look for, e.g. 'spaghetti' or 'beef mince'.",
                },
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_LIMIT},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    },
}

SYSTEM_PROMPT = (
    "You are Yummi's grocery assistant for shoppers in South Africa. The user describes a meal or a need. "
    f"Use the {SEARCH_TOOL_NAME} tool to find matching products in the live catalog (prices in ZAR cents). "
    "Propose only products whose product_id appeared in search results, with a sensible quantity and a short "
    "reason. When you are done, reply with only a JSON object of this shape and nothing else: "
    '{"items": [{"product_id": "<id from the search results>", "quantity": 1, "reason": "<why>"}]}. '
    'If nothing fits, reply {"items": []}.'
)
LAST_ROUND_NOTE = "No more searches are possible now: answer with the JSON object from what you found."


class UnusableAnswer(Exception):
    """The model's final message is not the JSON answer we asked for."""


@dataclass(frozen=True)
class SearchArgs:
    query: str
    limit: int


@dataclass(frozen=True)
class ProposedItem:
    product_id: str
    quantity: int
    reason: str


def validate_request_text(text: str) -> str:
    """The user's description, trimmed, or InvalidArgument."""
    text = text.strip()
    if not 1 <= len(text) <= MAX_TEXT_CHARS:
        raise InvalidArgument(
            "the description is invalid",
            errors=[{"field": "text", "message": f"1 to {MAX_TEXT_CHARS} characters"}],
        )
    return text


def parse_search_args(raw: str | None) -> SearchArgs:
    """The tool call's arguments, or ValueError with a message the model can read and correct."""
    try:
        args = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError as exc:
        raise ValueError("arguments are not valid JSON") from exc
    if not isinstance(args, dict):
        raise ValueError("arguments must be a JSON object")
    query = args.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string")
    limit = args.get("limit", DEFAULT_SEARCH_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        limit = DEFAULT_SEARCH_LIMIT
    return SearchArgs(query=query.strip()[:MAX_QUERY_CHARS], limit=max(1, min(int(limit), MAX_SEARCH_LIMIT)))


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)


def parse_answer(content: str | None) -> tuple[list[ProposedItem], list[str]]:
    """The proposed items and why any were dropped; UnusableAnswer when the message is not the asked JSON."""
    if not content or not content.strip():
        raise UnusableAnswer("the answer is empty")
    fenced = _FENCE.match(content)
    text = fenced.group(1) if fenced else content
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UnusableAnswer("the answer is not JSON") from exc
    raw_items = document.get("items") if isinstance(document, dict) else document
    if not isinstance(raw_items, list):
        raise UnusableAnswer("the answer has no items list")
    items: list[ProposedItem] = []
    dropped: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_items):
        item = _item(raw)
        if item is None:
            dropped.append(f"items[{index}] is malformed")
        elif item.product_id in seen:
            dropped.append(f"items[{index}] repeats {item.product_id}")
        elif len(items) >= MAX_SUGGESTIONS:
            dropped.append(f"items[{index}] is past the limit of {MAX_SUGGESTIONS}")
        else:
            seen.add(item.product_id)
            items.append(item)
    return items, dropped


def _item(raw: Any) -> ProposedItem | None:
    if not isinstance(raw, dict):
        return None
    product_id = raw.get("product_id")
    if isinstance(product_id, int) and not isinstance(product_id, bool):
        product_id = str(product_id)
    if not isinstance(product_id, str) or not product_id.strip() or len(product_id) > MAX_PRODUCT_REF_CHARS:
        return None
    reason = raw.get("reason")
    return ProposedItem(
        product_id=product_id.strip(),
        quantity=clamp_quantity(raw.get("quantity", 1)),
        reason=reason.strip()[:MAX_REASON_CHARS] if isinstance(reason, str) else "",
    )


def clamp_quantity(value: Any) -> int:
    """A quantity within 1..99 from whatever the model wrote (numbers, numeric strings); 1 when unreadable."""
    if isinstance(value, bool):
        return MIN_QUANTITY
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return MIN_QUANTITY
    if not isinstance(value, int | float) or value != value:  # NaN
        return MIN_QUANTITY
    if value in (float("inf"), float("-inf")):
        return MAX_QUANTITY if value > 0 else MIN_QUANTITY
    return max(MIN_QUANTITY, min(round(value), MAX_QUANTITY))
