"""OpenAI through the official SDK: our own retries (full jitter, `retry-after`) inside one total deadline.

The SDK's own retries are off (`max_retries=0`) so that every attempt, wait and timeout is counted against the
deadline the caller gave. Failures come out as a few provider errors the use cases turn into domain errors.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

import openai
from openai import AsyncOpenAI

from yummi_ai.domain.retry import RETRYABLE_STATUS, next_delay, parse_retry_after
from yummi_common.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")
KeySource = Literal["server", "user"]
MAX_PROVIDER_MESSAGE_CHARS = 300


@dataclass(frozen=True)
class ProviderKey:
    """An API key and where it came from; its repr never shows the key."""

    api_key: str = field(repr=False)
    source: KeySource
    credential_id: str | None = None


class ProviderError(Exception):
    """A provider call that did not succeed; `detail` is safe to show a user."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ProviderKeyRejected(ProviderError):
    """401/403: the key is invalid, revoked, or not allowed to do this."""


class ProviderQuotaExhausted(ProviderError):
    """429 `insufficient_quota`: the key's account has no credit; waiting will not help."""


class ProviderRefused(ProviderError):
    """400/404/422: the provider refused the request as sent (e.g. the context is too long)."""


class ProviderUnavailable(ProviderError):
    """5xx, 429, timeouts or broken connections, still failing when the attempts or the deadline ran out."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatResult:
    id: str
    model: str
    content: str | None
    tool_calls: list[ToolCall]
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class StreamDelta:
    id: str
    model: str
    text: str


@dataclass(frozen=True)
class StreamEnd:
    id: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class OpenAIProvider:
    """Chat completions (plain, streamed, with tools) and key checks, each within a loop-time `deadline`."""

    def __init__(
        self,
        *,
        base_url: str | None,
        max_attempts: int,
        attempt_timeout: float,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._base_url = base_url
        self._max_attempts = max_attempts
        self._attempt_timeout = attempt_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._rand = rand
        self._sleep = sleep
        self._http: Any = None

    def _client(self, key: ProviderKey) -> AsyncOpenAI:
        if self._http is None:
            # One connection pool for every key; a client per call only carries the key.
            self._http = openai.DefaultAsyncHttpxClient()
        return AsyncOpenAI(
            api_key=key.api_key, base_url=self._base_url, max_retries=0, http_client=self._http
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def chat(
        self,
        *,
        key: ProviderKey,
        model: str,
        messages: Sequence[dict[str, Any]],
        max_tokens: int,
        deadline: float,
        tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        json_answer: bool = False,
    ) -> ChatResult:
        """One completion (with retries); tool calls come back in `tool_calls`."""
        client = self._client(key)
        extra: dict[str, Any] = {}
        if tools:
            extra["tools"] = list(tools)
        if tool_choice:
            extra["tool_choice"] = tool_choice
        if json_answer:
            extra["response_format"] = {"type": "json_object"}

        async def attempt(seconds: float) -> ChatResult:
            completion = await client.chat.completions.create(
                model=model,
                messages=cast(Any, list(messages)),
                max_completion_tokens=max_tokens,
                timeout=seconds,
                **extra,
            )
            choice = completion.choices[0] if completion.choices else None
            message = choice.message if choice else None
            calls = []
            for call in (message.tool_calls or []) if message else []:
                function = getattr(call, "function", None)  # custom (non-function) tools are never offered
                if function is not None:
                    calls.append(ToolCall(id=call.id, name=function.name, arguments=function.arguments or ""))
            usage = completion.usage
            return ChatResult(
                id=completion.id,
                model=completion.model or model,
                content=message.content if message else None,
                tool_calls=calls,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
            )

        return await self._with_retries(attempt, deadline=deadline, key=key)

    async def stream_chat(
        self,
        *,
        key: ProviderKey,
        model: str,
        messages: Sequence[dict[str, Any]],
        max_tokens: int,
        deadline: float,
    ) -> AsyncIterator[StreamDelta | StreamEnd]:
        """Text deltas in order, then one StreamEnd with the usage the provider reported.

        Attempts are retried until the stream has started; a stream broken after that is ProviderUnavailable.
        """
        client = self._client(key)

        async def attempt(seconds: float) -> Any:
            return await client.chat.completions.create(
                model=model,
                messages=cast(Any, list(messages)),
                max_completion_tokens=max_tokens,
                stream=True,
                stream_options={"include_usage": True},
                timeout=seconds,
            )

        stream = await self._with_retries(attempt, deadline=deadline, key=key)
        completion_id, served_model = "", model
        prompt_tokens: int | None = None
        completion_tokens: int | None = None
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in stream:
                    completion_id = chunk.id or completion_id
                    served_model = chunk.model or served_model
                    if chunk.usage is not None:
                        prompt_tokens = chunk.usage.prompt_tokens
                        completion_tokens = chunk.usage.completion_tokens
                    for choice in chunk.choices or []:
                        text = choice.delta.content if choice.delta else None
                        if text:
                            yield StreamDelta(id=completion_id, model=served_model, text=text)
        except TimeoutError as exc:
            raise ProviderUnavailable("the AI provider's answer took too long") from exc
        except (openai.APIError, ValueError) as exc:
            log.warning("provider stream broke", error_type=type(exc).__name__)
            raise ProviderUnavailable("the AI provider's answer was cut off") from exc
        finally:
            await stream.close()
        yield StreamEnd(
            id=completion_id,
            model=served_model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    async def check_key(self, *, key: ProviderKey, deadline: float) -> None:
        """Raise ProviderKeyRejected unless the provider accepts the key (a models.list call)."""
        client = self._client(key)

        async def attempt(seconds: float) -> None:
            await client.models.list(timeout=seconds)

        await self._with_retries(attempt, deadline=deadline, key=key)

    async def _with_retries(
        self, attempt: Callable[[float], Awaitable[T]], *, deadline: float, key: ProviderKey
    ) -> T:
        loop = asyncio.get_running_loop()
        tries = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ProviderUnavailable("the AI provider did not answer in time")
            timeout = min(self._attempt_timeout, remaining)
            tries += 1
            try:
                async with asyncio.timeout(timeout):
                    return await attempt(timeout)
            except TimeoutError:
                failure = _Retryable("timeout")
            except openai.APIStatusError as exc:
                failure = _classify(exc, key)
            except openai.APIConnectionError as exc:  # includes the SDK's own APITimeoutError
                failure = _Retryable("timeout" if isinstance(exc, openai.APITimeoutError) else "connection")
            if tries >= self._max_attempts:
                log.warning("provider retries exhausted", attempts=tries, reason=failure.reason)
                raise ProviderUnavailable(f"the AI provider kept failing ({failure.reason})")
            delay = next_delay(
                tries - 1,
                retry_after=failure.retry_after,
                base=self._backoff_base,
                cap=self._backoff_cap,
                rand=self._rand,
            )
            if loop.time() + delay >= deadline:
                log.warning("provider retry would pass the deadline", attempts=tries, reason=failure.reason)
                raise ProviderUnavailable(f"the AI provider kept failing ({failure.reason})")
            log.info(
                "provider call failed; retrying", attempt=tries, reason=failure.reason, wait_s=round(delay, 3)
            )
            await self._sleep(delay)


def _classify(exc: openai.APIStatusError, key: ProviderKey) -> _Retryable:
    """A retryable failure, or raise the provider error this status means."""
    status = exc.status_code
    if status in (401, 403):
        raise ProviderKeyRejected(_provider_message(exc) or "the API key was refused") from exc
    if status == 429 and exc.code == "insufficient_quota":
        raise ProviderQuotaExhausted("the API key's account has no quota left") from exc
    if status in RETRYABLE_STATUS:
        return _Retryable(f"HTTP {status}", parse_retry_after(exc.response.headers))
    if status in (400, 404, 413, 422):
        raise ProviderRefused(
            _provider_message(exc) or f"the provider refused the request (HTTP {status})"
        ) from exc
    log.warning("provider answered an unexpected status", status=status, key_source=key.source)
    raise ProviderUnavailable(f"the AI provider answered HTTP {status}") from exc


def _provider_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        return ""
    # OpenAI quotes a masked key in its 401 message; never pass on anything that looks like one.
    words = [w for w in message.split() if not w.startswith(("sk-", "sk_"))]
    return " ".join(words)[:MAX_PROVIDER_MESSAGE_CHARS]
