"""The assistant through the gateway: the ai service as a process, calling a fake OpenAI over real HTTP."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from yummi_ai.fake_openai import FakeOpenAI, Reply

from .conftest import E2E_OPENAI_KEY, Stack
from .helpers import available_products, ensure_sample_catalog

pytestmark = pytest.mark.e2e

CHAT = {"messages": [{"role": "user", "content": "What can I cook with butternut?"}]}


@pytest.fixture
def openai(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.reset()
    return fake_openai


def test_a_completion_uses_the_server_key_and_counts_towards_usage(stack: Stack, openai: FakeOpenAI) -> None:
    headers = stack.auth("ai_e2e_server", "ai-server@e2e.example")

    response = stack.client.post("/v1/ai/complete", json=CHAT, headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["output"] == "You said: What can I cook with butternut?"
    assert (
        set(body["usage"]) == {"prompt_tokens", "completion_tokens"}
        and body["usage"]["completion_tokens"] > 0
    )
    assert [r.api_key for r in openai.chat_requests()] == [E2E_OPENAI_KEY]
    usage = stack.client.get("/v1/ai/usage", headers=headers).json()
    assert usage["requests_today"] == 1
    assert usage["tokens_today"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert usage["daily_token_limit"] > 0


def test_a_users_own_key_is_stored_without_being_shown_used_and_deleted(
    stack: Stack, openai: FakeOpenAI
) -> None:
    headers = stack.auth("ai_e2e_owner", "ai-owner@e2e.example")
    created = stack.client.post(
        "/v1/ai/credentials",
        json={"provider": "openai", "label": "my key", "api_key": "sk-e2e-users-own-key-wxyz"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    credential = created.json()
    assert credential["key_hint"] == "sk-…wxyz" and "sk-e2e-users-own-key-wxyz" not in created.text
    listed = stack.client.get("/v1/ai/credentials", headers=headers).json()["items"]
    assert [c["id"] for c in listed] == [credential["id"]]

    answer = stack.client.post(
        "/v1/ai/complete", json={**CHAT, "user_key_id": credential["id"]}, headers=headers
    )

    assert answer.status_code == 200, answer.text
    assert [r.api_key for r in openai.chat_requests()] == ["sk-e2e-users-own-key-wxyz"]
    stranger = stack.auth("ai_e2e_stranger", "ai-stranger@e2e.example")
    stolen = stack.client.post(
        "/v1/ai/complete", json={**CHAT, "user_key_id": credential["id"]}, headers=stranger
    )
    assert stolen.status_code == 404
    assert stack.client.delete(f"/v1/ai/credentials/{credential['id']}", headers=stranger).status_code == 404
    assert stack.client.delete(f"/v1/ai/credentials/{credential['id']}", headers=headers).status_code == 204
    assert stack.client.get("/v1/ai/credentials", headers=headers).json()["items"] == []


def test_a_streamed_completion_is_server_sent_events_in_order_ending_with_usage(
    stack: Stack, openai: FakeOpenAI
) -> None:
    openai.script(
        Reply.text(
            "", pieces=["Butternut ", "soup ", "with ", "nutmeg"], prompt_tokens=12, completion_tokens=4
        )
    )
    headers = stack.auth("ai_e2e_stream", "ai-stream@e2e.example")

    with stack.client.stream(
        "POST", "/v1/ai/complete", json={**CHAT, "stream": True}, headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            orjson.loads(line[len("data: ") :]) for line in response.iter_lines() if line.startswith("data: ")
        ]

    assert [e["delta"] for e in events[:-1]] == ["Butternut ", "soup ", "with ", "nutmeg"]
    assert events[-1]["done"] is True and events[-1]["usage"] == {"prompt_tokens": 12, "completion_tokens": 4}


def test_refusals_and_provider_failures_are_problems(stack: Stack, openai: FakeOpenAI) -> None:
    headers = stack.auth("ai_e2e_problems", "ai-problems@e2e.example")

    unknown_model = stack.client.post("/v1/ai/complete", json={**CHAT, "model": "gpt-9"}, headers=headers)
    openai.script(*[Reply.failure(500) for _ in range(4)])
    failing = stack.client.post("/v1/ai/complete", json=CHAT, headers=headers)

    assert unknown_model.status_code == 422
    assert unknown_model.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in unknown_model.json()["errors"]] == ["model"]
    assert failing.status_code == 502, failing.text
    assert failing.headers["content-type"].startswith("application/problem+json")
    assert len(openai.chat_requests()) == 4  # retried inside the ai service, and not again by the gateway


def test_basket_suggestions_come_from_the_live_catalog_by_tool_calls(
    stack: Stack, openai: FakeOpenAI, tmp_path: Path
) -> None:
    ensure_sample_catalog(stack, tmp_path)
    product = available_products(stack, 1)[0]
    query = max(product["title"].split(), key=len)
    openai.script(
        Reply.tool_call("search_catalog", {"query": query, "limit": 5}),
        Reply.text(
            orjson.dumps(
                {
                    "items": [
                        {"product_id": product["id"], "quantity": 2, "reason": "what you asked for"},
                        {"product_id": str(uuid.uuid4()), "quantity": 1, "reason": "made up"},
                    ]
                }
            ).decode()
        ),
    )
    headers = stack.auth("ai_e2e_basket", "ai-basket@e2e.example")

    response = stack.client.post(
        "/v1/ai/tools/basket-suggestions", json={"text": f"something with {query}"}, headers=headers
    )

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(i["product"]["id"], i["quantity"], i["reason"]) for i in items] == [
        (product["id"], 2, "what you asked for")
    ]
    assert items[0]["product"]["title"] == product["title"]
    tool_result = orjson.loads(openai.chat_requests()[1].body["messages"][-1]["content"])
    assert product["id"] in [r["product_id"] for r in tool_result["results"]]
