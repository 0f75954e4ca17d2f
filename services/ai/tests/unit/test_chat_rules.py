"""Chat request rules (roles, sizes, allowlist, max_tokens cap), the prompt estimate and the prompt hash."""

from __future__ import annotations

import pytest

from yummi_ai.domain.chat import estimate_prompt_tokens, prompt_sha256, validate_chat
from yummi_common.errors import InvalidArgument

MODELS = ("gpt-4o-mini", "gpt-4.1-mini")


def check(messages, *, model="", max_tokens=0, cap=1024):
    return validate_chat(
        messages=messages,
        model=model,
        max_tokens=max_tokens,
        allowed_models=MODELS,
        default_model="gpt-4o-mini",
        max_tokens_cap=cap,
    )


def fields(exc: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [e["field"] for e in exc.value.errors]


def test_defaults_are_the_default_model_and_the_cap():
    request = check([("user", "hi")])
    assert (request.model, request.max_tokens) == ("gpt-4o-mini", 1024)
    assert request.as_openai() == [{"role": "user", "content": "hi"}]


def test_an_unknown_model_is_invalid_and_named():
    with pytest.raises(InvalidArgument) as info:
        check([("user", "hi")], model="gpt-5")
    assert fields(info) == ["model"] and "gpt-4o-mini" in info.value.errors[0]["message"]


@pytest.mark.parametrize("max_tokens", [-1, 1025, 10**9])
def test_max_tokens_outside_one_to_the_cap_is_invalid(max_tokens):
    with pytest.raises(InvalidArgument) as info:
        check([("user", "hi")], max_tokens=max_tokens)
    assert fields(info) == ["max_tokens"]


def test_the_cap_itself_and_one_are_allowed():
    assert check([("user", "hi")], max_tokens=1).max_tokens == 1
    assert check([("user", "hi")], max_tokens=1024).max_tokens == 1024


def test_message_count_roles_and_sizes_are_checked_all_at_once():
    with pytest.raises(InvalidArgument) as info:
        check([("tool", "x"), ("user", ""), ("assistant", "y" * 16_001)])
    assert fields(info) == ["messages[0].role", "messages[1].content", "messages[2].content"]
    with pytest.raises(InvalidArgument) as none:
        check([])
    assert fields(none) == ["messages"]
    with pytest.raises(InvalidArgument) as many:
        check([("user", "x")] * 51)
    assert fields(many) == ["messages"]


def test_the_total_size_is_capped_even_when_each_message_fits():
    with pytest.raises(InvalidArgument) as info:
        check([("user", "y" * 16_000)] * 5)
    assert fields(info) == ["messages"]
    assert len(check([("user", "y" * 16_000)] * 4).messages) == 4


def test_the_prompt_estimate_covers_english_and_multibyte_text():
    english = "Plan a braai for six people with boerewors and pap. " * 20
    assert estimate_prompt_tokens([english]) >= len(english) / 4 + 4
    isizulu_with_emoji = "Sawubona 🍲🍲🍲 " * 50
    assert estimate_prompt_tokens([isizulu_with_emoji]) >= len(isizulu_with_emoji) / 2


def test_the_prompt_hash_is_stable_and_depends_on_model_and_messages():
    messages = [{"role": "user", "content": "hi"}]
    first = prompt_sha256("gpt-4o-mini", messages)
    assert first == prompt_sha256("gpt-4o-mini", [{"content": "hi", "role": "user"}])
    assert len(first) == 64 and "hi" not in first
    assert first != prompt_sha256("gpt-4.1-mini", messages)
    assert first != prompt_sha256("gpt-4o-mini", [{"role": "user", "content": "hi!"}])
