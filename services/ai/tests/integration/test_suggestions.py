"""Basket suggestions: tool calls against a catalog over gRPC, and only real, available products returned."""

from __future__ import annotations

import uuid

import grpc
import orjson
import pytest
from sqlalchemy import func, select

from yummi.ai.v1 import ai_pb2 as pb
from yummi_ai.adapters.tables import ai_budget, ai_usage
from yummi_ai.fake_openai import Reply
from yummi_common.timeutil import utcnow

from .conftest import PRODUCTS

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SPAGHETTI, MINCE, PASSATA, PARMESAN = PRODUCTS


def answer(*items: dict) -> Reply:
    return Reply.text(orjson.dumps({"items": list(items)}).decode())


def suggest(user: str, text: str = "dinner for 4: spaghetti bolognese") -> pb.SuggestBasketRequest:
    return pb.SuggestBasketRequest(user_id=user, text=text)


async def failure(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


async def test_the_model_searches_the_catalog_and_only_real_products_come_back(
    stub, fake_openai, catalog, runtime, user
):
    fake_catalog, _addr = catalog
    fake_catalog.searches.clear()
    fake_openai.script(
        Reply.tool_call("search_catalog", {"query": "spaghetti", "limit": 5}, call_id="call_1"),
        answer(
            {"product_id": SPAGHETTI.id, "quantity": 2, "reason": "the pasta"},
            {"product_id": str(uuid.uuid4()), "quantity": 1, "reason": "made up"},
        ),
    )

    reply = await stub.SuggestBasket(suggest(user))

    assert [(s.product.id, s.quantity, s.reason) for s in reply.items] == [(SPAGHETTI.id, 2, "the pasta")]
    assert reply.items[0].product.title == "Spaghetti 500 g"
    [search] = fake_catalog.searches
    assert (search.q, search.limit, search.HasField("available") and search.available) == (
        "spaghetti",
        5,
        True,
    )
    first, second = fake_openai.chat_requests()
    assert first.body["tools"][0]["function"]["name"] == "search_catalog"
    assert first.body["messages"][-1] == {"role": "user", "content": "dinner for 4: spaghetti bolognese"}
    tool_message = second.body["messages"][-1]
    assert (tool_message["role"], tool_message["tool_call_id"]) == ("tool", "call_1")
    assert [r["product_id"] for r in orjson.loads(tool_message["content"])["results"]] == [SPAGHETTI.id]
    assert second.body["messages"][-2]["tool_calls"][0]["id"] == "call_1"
    async with runtime.engine.connect() as conn:
        calls = (
            await conn.execute(select(func.count()).where(ai_usage.c.user_id == uuid.UUID(user)))
        ).scalar_one()
    assert calls == 2  # every model turn counts against the budget


async def test_unavailable_products_are_dropped_quantities_clamped_and_retailer_ids_accepted(
    stub, fake_openai, user
):
    fake_openai.script(
        answer(
            {"product_id": PASSATA.id, "quantity": 1, "reason": "sold out"},
            {"product_id": MINCE.id, "quantity": 500, "reason": "lots"},
            {"product_id": PARMESAN.product_id, "quantity": 0, "reason": "by retailer id"},
            {"product_id": MINCE.id, "quantity": 3, "reason": "again"},
            {"quantity": 2},
            "not an item",
        )
    )

    reply = await stub.SuggestBasket(suggest(user))

    assert [(s.product.id, s.quantity) for s in reply.items] == [(MINCE.id, 99), (PARMESAN.id, 1)]


async def test_a_json_answer_in_a_code_fence_is_read(stub, fake_openai, user):
    fake_openai.script(Reply.text(f'```json\n{{"items": [{{"product_id": "{SPAGHETTI.id}"}}]}}\n```'))
    reply = await stub.SuggestBasket(suggest(user))
    assert [(s.product.id, s.quantity, s.reason) for s in reply.items] == [(SPAGHETTI.id, 1, "")]


async def test_prose_is_answered_with_a_reminder_and_a_usable_answer_is_accepted(stub, fake_openai, user):
    fake_openai.script(
        Reply.text("Sure! Here are some ideas..."), answer({"product_id": MINCE.id, "quantity": 1})
    )

    reply = await stub.SuggestBasket(suggest(user))

    assert [s.product.id for s in reply.items] == [MINCE.id]
    reminder = fake_openai.chat_requests()[1].body
    assert reminder["tool_choice"] == "none" and reminder["response_format"] == {"type": "json_object"}


async def test_junk_answers_are_an_upstream_failure_not_the_users_fault(stub, fake_openai, user):
    fake_openai.script(Reply.text("I am not JSON"), Reply.text('{"items": "nope"}'))

    error = await failure(stub.SuggestBasket(suggest(user)))

    assert error.code() is grpc.StatusCode.UNKNOWN  # the gateway's 502
    assert "unusable answer" in error.details()


async def test_an_empty_answer_is_an_empty_list(stub, fake_openai, user):
    fake_openai.script(answer())
    reply = await stub.SuggestBasket(suggest(user, "something impossible"))
    assert list(reply.items) == []


async def test_the_conversation_is_bounded_and_the_last_turn_must_answer(stub, fake_openai, user):
    fake_openai.script(
        Reply.tool_call("search_catalog", "{not json"),
        Reply.tool_call("no_such_tool", {"x": 1}),
        Reply.tool_call("search_catalog", {"query": "mince"}),
        Reply.tool_call("search_catalog", {"query": "more"}),  # ignores tool_choice=none on the last turn
    )

    error = await failure(stub.SuggestBasket(suggest(user)))

    assert error.code() is grpc.StatusCode.UNKNOWN
    requests = fake_openai.chat_requests()
    assert len(requests) == 4
    assert [r.body.get("tool_choice") for r in requests] == ["auto", "auto", "auto", "none"]
    results = [m["content"] for m in requests[3].body["messages"] if m["role"] == "tool"]
    assert "not valid JSON" in results[0] and "unknown tool" in results[1] and MINCE.id in results[2]


async def test_without_a_script_the_fake_model_finds_a_product_by_itself(stub, fake_openai, user):
    reply = await stub.SuggestBasket(suggest(user, "a quick parmesan snack"))
    assert [(s.product.id, s.quantity) for s in reply.items] == [(PARMESAN.id, 2)]


async def test_suggestions_are_not_found_when_the_feature_is_off(serve_ai, fake_openai, user):
    stub = await serve_ai(features=frozenset({"complete"}))
    error = await failure(stub.SuggestBasket(suggest(user)))
    assert error.code() is grpc.StatusCode.NOT_FOUND and "disabled" in error.details()
    assert fake_openai.chat_requests() == []


async def test_suggestions_count_against_the_daily_budget(stub, fake_openai, runtime, user):
    async with runtime.engine.begin() as conn:
        await conn.execute(
            ai_budget.insert().values(user_id=uuid.UUID(user), day=utcnow().date(), used_tokens=49_500)
        )
    error = await failure(stub.SuggestBasket(suggest(user)))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert fake_openai.chat_requests() == []


async def test_a_blank_description_is_invalid(stub, fake_openai, user):
    error = await failure(stub.SuggestBasket(suggest(user, "   ")))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
