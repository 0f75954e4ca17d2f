"""Every provider call goes through here: reserve budget, call, settle it and log usage (hashes only)."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import insert

from yummi_ai.adapters.openai_provider import (
    ChatResult,
    OpenAIProvider,
    ProviderError,
    ProviderKey,
    ProviderKeyRejected,
    ProviderQuotaExhausted,
    ProviderRefused,
    StreamDelta,
    StreamEnd,
)
from yummi_ai.adapters.tables import ai_usage
from yummi_ai.config import AiConfig
from yummi_ai.domain.chat import estimate_prompt_tokens, prompt_sha256, text_sha256
from yummi_ai.domain.pricing import cost_micro_usd
from yummi_ai.errors import UpstreamFailed
from yummi_ai.service_layer.budget import Reservation, reserve_tokens, settle_tokens
from yummi_common.db import UnitOfWork
from yummi_common.errors import InvalidArgument, YummiError
from yummi_common.logging import get_logger
from yummi_common.metrics import record_ai_usage

log = get_logger(__name__)

HOLD_MARGIN_SECONDS = 60.0  # a hold outlives its call's deadline by this much before it counts as abandoned


@dataclass(frozen=True)
class Meter:
    """What a metered call needs: the unit-of-work factory, the provider and the limits."""

    uow_factory: Callable[[], UnitOfWork]
    provider: OpenAIProvider
    config: AiConfig


@dataclass(frozen=True)
class StreamUsage:
    """The last item of a metered stream: the tokens counted for it."""

    id: str
    model: str
    prompt_tokens: int
    completion_tokens: int


def prompt_estimate(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None) -> int:
    """Tokens the prompt may take: messages (with tool calls and results) and the tool schemas."""
    # A plain message counts its text; one carrying tool calls or a tool result counts as its whole JSON.
    parts = [
        m["content"] if isinstance(m.get("content"), str) and len(m) == 2 else orjson.dumps(m).decode()
        for m in messages
    ]
    if tools:
        parts.append(orjson.dumps(list(tools)).decode())
    return estimate_prompt_tokens(parts)


def provider_problem(exc: ProviderError, key: ProviderKey) -> YummiError:
    """The domain error a caller sees for a failed provider call (one mapping for every feature)."""
    if isinstance(exc, ProviderKeyRejected | ProviderQuotaExhausted):
        if key.source == "user":
            why = (
                "OpenAI rejected this key (invalid, revoked or without access)"
                if isinstance(exc, ProviderKeyRejected)
                else "the OpenAI account of this key has no quota left"
            )
            return InvalidArgument(
                f"your stored key cannot be used: {why}", errors=[{"field": "user_key_id", "message": why}]
            )
        log.error("the server's OpenAI key was refused", error_type=type(exc).__name__)
        return UpstreamFailed("the assistant is unavailable right now; try again later")
    if isinstance(exc, ProviderRefused):
        return InvalidArgument(
            f"the AI provider refused the request: {exc.detail}",
            errors=[{"field": "messages", "message": exc.detail}],
        )
    return UpstreamFailed(f"{exc.detail}; try again shortly")


async def _reserve(meter: Meter, *, user_id: uuid.UUID, amount: int) -> Reservation:
    async with meter.uow_factory() as uow:
        return await reserve_tokens(
            uow=uow,
            user_id=user_id,
            amount=amount,
            daily_limit=meter.config.daily_token_limit,
            hold_seconds=meter.config.total_deadline_seconds + HOLD_MARGIN_SECONDS,
        )


async def _settle(
    meter: Meter,
    reservation: Reservation,
    *,
    key: ProviderKey,
    model: str,
    prompt_hash: str,
    response_hash: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    latency_ms: int,
) -> None:
    cost = cost_micro_usd(model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    async with meter.uow_factory() as uow:
        await settle_tokens(uow=uow, reservation=reservation, used_tokens=prompt_tokens + completion_tokens)
        if response_hash is not None:
            await uow.session.execute(
                insert(ai_usage).values(
                    id=uuid.uuid4(),
                    user_id=reservation.user_id,
                    model=model,
                    prompt_sha256=prompt_hash,
                    response_sha256=response_hash,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    cost_micro_usd=cost,
                    latency_ms=latency_ms,
                    key_source=key.source,
                )
            )
        await uow.commit()
    if response_hash is not None:
        # `model` passed the allowlist before the call, so it is a bounded label.
        record_ai_usage(
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_micro_usd=cost,
            key_source=key.source,
        )


async def _settle_surely(coro: Any) -> None:
    """Run a settlement to the end even when the call that owns it is being cancelled."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task}, timeout=10)
        raise


async def metered_chat(
    meter: Meter,
    *,
    user_id: uuid.UUID,
    key: ProviderKey,
    model: str,
    messages: Sequence[dict[str, Any]],
    max_tokens: int,
    deadline: float,
    tools: Sequence[dict[str, Any]] | None = None,
    tool_choice: str | None = None,
    json_answer: bool = False,
) -> ChatResult:
    """One provider call within the user's budget: ResourceExhausted before the call when it would not fit."""
    reservation = await _reserve(meter, user_id=user_id, amount=max_tokens + prompt_estimate(messages, tools))
    started = time.perf_counter()
    result: ChatResult | None = None
    failure: ProviderError | None = None
    try:
        result = await meter.provider.chat(
            key=key,
            model=model,
            messages=messages,
            max_tokens=max_tokens,
            deadline=deadline,
            tools=tools,
            tool_choice=tool_choice,
            json_answer=json_answer,
        )
    except ProviderError as exc:
        failure = exc
    finally:
        answer = None
        if result is not None:
            answer = (
                result.content or orjson.dumps([(c.name, c.arguments) for c in result.tool_calls]).decode()
            )
        await _settle_surely(
            _settle(
                meter,
                reservation,
                key=key,
                model=model,
                prompt_hash=prompt_sha256(model, messages),
                response_hash=text_sha256(answer) if answer is not None else None,
                prompt_tokens=result.prompt_tokens if result else 0,
                completion_tokens=result.completion_tokens if result else 0,
                latency_ms=round((time.perf_counter() - started) * 1000),
            )
        )
    if failure is not None:
        raise provider_problem(failure, key) from failure
    if result is None:  # only when the provider raised something that is not a ProviderError, re-raised above
        raise RuntimeError("provider call ended without a result")
    return result


async def metered_stream(
    meter: Meter,
    *,
    user_id: uuid.UUID,
    key: ProviderKey,
    model: str,
    messages: Sequence[dict[str, Any]],
    max_tokens: int,
    deadline: float,
) -> AsyncIterator[StreamDelta | StreamUsage]:
    """Streamed text deltas, then the tokens counted; settled even when the caller goes away mid-stream.

    Tokens are the provider's own count; a stream that broke or was abandoned is counted from its prompt
    estimate and the text that was streamed.
    """
    estimate = prompt_estimate(messages)
    reservation = await _reserve(meter, user_id=user_id, amount=max_tokens + estimate)
    started = time.perf_counter()
    text: list[str] = []
    end: StreamEnd | None = None
    failure: ProviderError | None = None
    try:
        async for item in meter.provider.stream_chat(
            key=key, model=model, messages=messages, max_tokens=max_tokens, deadline=deadline
        ):
            if isinstance(item, StreamEnd):
                end = item
            else:
                text.append(item.text)
                yield item
    except ProviderError as exc:
        failure = exc
    finally:
        streamed = "".join(text)
        if end is not None and end.prompt_tokens is not None and end.completion_tokens is not None:
            prompt_tokens, completion_tokens = end.prompt_tokens, end.completion_tokens
        elif end is not None or text:
            prompt_tokens = estimate
            completion_tokens = min(max_tokens, math.ceil(len(streamed.encode()) / 3))
        else:
            prompt_tokens = completion_tokens = 0
        started_answering = end is not None or bool(text)
        await _settle_surely(
            _settle(
                meter,
                reservation,
                key=key,
                model=model,
                prompt_hash=prompt_sha256(model, messages),
                response_hash=text_sha256(streamed) if started_answering else None,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_ms=round((time.perf_counter() - started) * 1000),
            )
        )
    if failure is not None:
        raise provider_problem(failure, key) from failure
    if end is None:
        raise RuntimeError("provider stream ended without its end marker")
    yield StreamUsage(
        id=end.id, model=end.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )
