"""What a chat request may hold (roles, sizes, model, max_tokens); how its prompt is measured and hashed."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from yummi_common.errors import InvalidArgument

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 50
MAX_MESSAGE_CHARS = 16_000
MAX_TOTAL_CHARS = 64_000
MAX_MODEL_CHARS = 64
# Tokens a chat message costs beyond its text (role, separators), and a reply's priming; generous on purpose.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REQUEST = 3


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """A validated request: messages within limits, an allowed model, max_tokens within 1..cap."""

    messages: tuple[ChatMessage, ...]
    model: str
    max_tokens: int

    def as_openai(self) -> list[dict[str, Any]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


def validate_chat(
    *,
    messages: Sequence[tuple[str, str]],
    model: str,
    max_tokens: int,
    allowed_models: Sequence[str],
    default_model: str,
    max_tokens_cap: int,
) -> ChatRequest:
    """The request as a ChatRequest, or InvalidArgument listing every field that is wrong."""
    errors: list[dict[str, str]] = []
    if not 1 <= len(messages) <= MAX_MESSAGES:
        errors.append({"field": "messages", "message": f"send 1 to {MAX_MESSAGES} messages"})
    total = 0
    for index, (role, content) in enumerate(messages[:MAX_MESSAGES]):
        if role not in ROLES:
            errors.append(
                {"field": f"messages[{index}].role", "message": f"must be one of {', '.join(ROLES)}"}
            )
        if not content:
            errors.append({"field": f"messages[{index}].content", "message": "must not be empty"})
        elif len(content) > MAX_MESSAGE_CHARS:
            errors.append(
                {"field": f"messages[{index}].content", "message": f"at most {MAX_MESSAGE_CHARS} characters"}
            )
        total += len(content)
    if total > MAX_TOTAL_CHARS:
        errors.append({"field": "messages", "message": f"at most {MAX_TOTAL_CHARS} characters in all"})
    chosen = model or default_model
    if chosen not in allowed_models:
        shown = chosen if len(chosen) <= MAX_MODEL_CHARS else chosen[:MAX_MODEL_CHARS] + "…"
        errors.append(
            {
                "field": "model",
                "message": f"{shown!r} is not offered; choose one of {', '.join(allowed_models)}",
            }
        )
    tokens = max_tokens or max_tokens_cap
    if not 1 <= tokens <= max_tokens_cap:
        errors.append({"field": "max_tokens", "message": f"must be between 1 and {max_tokens_cap}"})
    if errors:
        raise InvalidArgument("the completion request is invalid", errors=errors)
    return ChatRequest(
        messages=tuple(ChatMessage(role=r, content=c) for r, c in messages), model=chosen, max_tokens=tokens
    )


def estimate_prompt_tokens(contents: Iterable[str]) -> int:
    """An upper estimate of the prompt's tokens without a tokenizer: a token per 3 UTF-8 bytes, plus framing.

    Real English runs near 4 characters a token; bytes over 3 overestimates it and still covers scripts whose
    characters take several bytes, so a reservation made from it rarely falls short of the provider's count.
    """
    tokens = TOKENS_PER_REQUEST
    for content in contents:
        tokens += TOKENS_PER_MESSAGE + math.ceil(len(content.encode()) / 3)
    return tokens


def prompt_sha256(model: str, messages: Sequence[dict[str, Any]]) -> str:
    """SHA-256 of the model and messages as canonical JSON: the usage log keeps this, never the prompt."""
    return hashlib.sha256(orjson.dumps([model, list(messages)], option=orjson.OPT_SORT_KEYS)).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
