"""Chat completions for a user, with the server's key or the user's own, plain or streamed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from yummi_ai.adapters.openai_provider import ProviderKey
from yummi_ai.adapters.secrets import Keyring
from yummi_ai.config import FEATURE_COMPLETE
from yummi_ai.domain.chat import ChatRequest, validate_chat
from yummi_ai.service_layer.credentials import resolve_key
from yummi_ai.service_layer.features import require_feature
from yummi_ai.service_layer.ids import parse_id
from yummi_ai.service_layer.metering import Meter, StreamUsage, metered_chat, metered_stream


@dataclass(frozen=True)
class Completion:
    id: str
    model: str
    output: str
    prompt_tokens: int
    completion_tokens: int


async def _prepare(
    *,
    meter: Meter,
    keyring: Keyring,
    user_id: str,
    messages: Sequence[tuple[str, str]],
    model: str,
    max_tokens: int,
    user_key_id: str,
) -> tuple[uuid.UUID, ChatRequest, ProviderKey]:
    """What both kinds of completion check first: the feature, the request, and whose key pays."""
    require_feature(meter.config, FEATURE_COMPLETE)
    uid = parse_id(user_id, "user_id")
    config = meter.config
    request = validate_chat(
        messages=messages,
        model=model,
        max_tokens=max_tokens,
        allowed_models=config.models,
        default_model=config.default_model,
        max_tokens_cap=config.max_tokens_cap,
    )
    key = await resolve_key(
        uow_factory=meter.uow_factory, keyring=keyring, config=config, user_id=uid, user_key_id=user_key_id
    )
    return uid, request, key


async def complete(
    *,
    meter: Meter,
    keyring: Keyring,
    user_id: str,
    messages: Sequence[tuple[str, str]],
    model: str,
    max_tokens: int,
    user_key_id: str,
    deadline: float,
) -> Completion:
    """A completion of the conversation, counted against the user's daily budget."""
    uid, request, key = await _prepare(
        meter=meter,
        keyring=keyring,
        user_id=user_id,
        messages=messages,
        model=model,
        max_tokens=max_tokens,
        user_key_id=user_key_id,
    )
    result = await metered_chat(
        meter,
        user_id=uid,
        key=key,
        model=request.model,
        messages=request.as_openai(),
        max_tokens=request.max_tokens,
        deadline=deadline,
    )
    return Completion(
        id=result.id,
        model=result.model,
        output=result.content or "",
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
    )


async def stream_complete(
    *,
    meter: Meter,
    keyring: Keyring,
    user_id: str,
    messages: Sequence[tuple[str, str]],
    model: str,
    max_tokens: int,
    user_key_id: str,
    deadline: float,
) -> AsyncIterator[tuple[str, str, str] | StreamUsage]:
    """The completion as `(id, model, text)` deltas in order, ending with the usage counted."""
    uid, request, key = await _prepare(
        meter=meter,
        keyring=keyring,
        user_id=user_id,
        messages=messages,
        model=model,
        max_tokens=max_tokens,
        user_key_id=user_key_id,
    )
    async for item in metered_stream(
        meter,
        user_id=uid,
        key=key,
        model=request.model,
        messages=request.as_openai(),
        max_tokens=request.max_tokens,
        deadline=deadline,
    ):
        yield item if isinstance(item, StreamUsage) else (item.id, item.model, item.text)
