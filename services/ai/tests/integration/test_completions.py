"""Completions over gRPC against a fake OpenAI speaking the real protocol to the real SDK."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from yummi.ai.v1 import ai_pb2 as pb
from yummi.common.v1 import common_pb2
from yummi_ai.adapters.tables import ai_budget, ai_budget_reservations, ai_usage
from yummi_ai.fake_openai import Reply
from yummi_common.grpc_client import problem_errors
from yummi_common.timeutil import utcnow

from .conftest import SERVER_KEY

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def ask(user: str, text: str = "What goes well with bobotie?", **fields) -> pb.CompleteRequest:
    return pb.CompleteRequest(user_id=user, messages=[pb.ChatMessage(role="user", content=text)], **fields)


async def failure(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


async def usage_rows(runtime, user: str):
    async with runtime.engine.connect() as conn:
        return (await conn.execute(select(ai_usage).where(ai_usage.c.user_id == uuid.UUID(user)))).all()


def ai_tokens_counted(kind: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "yummi_ai_tokens_total", {"model": "gpt-4o-mini", "kind": kind, "key_source": "server"}
        )
        or 0.0
    )


async def test_completion_with_the_server_key_answers_and_logs_usage_without_the_prompt(
    stub, fake_openai, runtime, user
):
    counted_before = ai_tokens_counted("completion")
    reply = await stub.Complete(ask(user, "Plan a braai for six"))

    assert reply.output == "You said: Plan a braai for six"
    assert reply.model == "gpt-4o-mini" and reply.id.startswith("chatcmpl-")
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    [seen] = fake_openai.chat_requests()
    assert seen.api_key == SERVER_KEY
    assert seen.body["model"] == "gpt-4o-mini" and seen.body["max_completion_tokens"] == 1024
    [row] = await usage_rows(runtime, user)
    assert (row.key_source, row.prompt_tokens, row.completion_tokens) == (
        "server",
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    )
    assert len(row.prompt_sha256) == 64 and len(row.response_sha256) == 64
    assert row.cost_micro_usd >= 1
    assert "braai" not in " ".join(str(v) for v in row)
    usage = await stub.GetUsage(common_pb2.UserRef(user_id=user))
    assert (usage.requests_today, usage.tokens_today) == (1, row.prompt_tokens + row.completion_tokens)
    assert ai_tokens_counted("completion") - counted_before == reply.usage.completion_tokens


async def test_completion_with_the_users_own_key_sends_that_key_and_marks_it_used(
    stub, fake_openai, runtime, user
):
    created = await stub.CreateCredential(
        pb.CreateCredentialRequest(
            user_id=user, provider="openai", label="mine", api_key="sk-user-own-key-9876"
        )
    )
    assert not created.HasField("last_used_at")

    await stub.Complete(ask(user, user_key_id=created.id))

    [seen] = fake_openai.chat_requests()
    assert seen.api_key == "sk-user-own-key-9876"
    [row] = await usage_rows(runtime, user)
    assert row.key_source == "user"
    [listed] = (await stub.ListCredentials(common_pb2.UserRef(user_id=user))).items
    assert listed.HasField("last_used_at")


async def test_another_users_key_is_not_found_and_nothing_is_sent(stub, fake_openai, user):
    owner = str(uuid.uuid4())
    created = await stub.CreateCredential(
        pb.CreateCredentialRequest(
            user_id=owner, provider="openai", label="theirs", api_key="sk-not-yours-1111"
        )
    )

    error = await failure(stub.Complete(ask(user, user_key_id=created.id)))

    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert fake_openai.chat_requests() == []


async def test_a_rejected_user_key_is_a_clear_invalid_argument(stub, fake_openai, user):
    fake_openai.accepted_keys = {SERVER_KEY}
    created = await stub.CreateCredential(
        pb.CreateCredentialRequest(
            user_id=user, provider="openai", label="old", api_key="sk-revoked-key-2222"
        )
    )

    error = await failure(stub.Complete(ask(user, user_key_id=created.id)))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "OpenAI rejected this key" in error.details()
    assert "sk-revoked" not in error.details() and "2222" not in error.details()
    assert problem_errors(error)[0]["field"] == "user_key_id"
    assert len(fake_openai.chat_requests()) == 1  # an auth failure is not retried


async def test_a_rejected_server_key_is_an_upstream_failure_not_the_users_fault(stub, fake_openai, user):
    fake_openai.accepted_keys = {"sk-some-other-key"}

    error = await failure(stub.Complete(ask(user)))

    assert error.code() is grpc.StatusCode.UNKNOWN  # the gateway's 502: an upstream failed
    assert "sk-" not in error.details()


async def test_a_model_outside_the_allowlist_is_invalid_and_never_sent(stub, fake_openai, user):
    error = await failure(stub.Complete(ask(user, model="gpt-5-ultra")))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [e["field"] for e in problem_errors(error)] == ["model"]
    assert fake_openai.chat_requests() == []


async def test_an_allowed_model_is_used_as_asked(stub, fake_openai, user):
    await stub.Complete(ask(user, model="gpt-4.1-mini", max_tokens=64))
    [seen] = fake_openai.chat_requests()
    assert (seen.body["model"], seen.body["max_completion_tokens"]) == ("gpt-4.1-mini", 64)


@pytest.mark.parametrize("max_tokens", [1025, -1])
async def test_max_tokens_past_the_cap_is_invalid(stub, fake_openai, user, max_tokens):
    error = await failure(stub.Complete(ask(user, max_tokens=max_tokens)))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [e["field"] for e in problem_errors(error)] == ["max_tokens"]


async def test_malformed_messages_are_invalid_with_every_bad_field_named(stub, fake_openai, user):
    request = pb.CompleteRequest(
        user_id=user,
        messages=[
            pb.ChatMessage(role="tool", content="x"),
            pb.ChatMessage(role="user", content=""),
            pb.ChatMessage(role="user", content="y" * 16_001),
        ],
    )
    error = await failure(stub.Complete(request))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert {e["field"] for e in problem_errors(error)} == {
        "messages[0].role",
        "messages[1].content",
        "messages[2].content",
    }
    empty = await failure(stub.Complete(pb.CompleteRequest(user_id=user)))
    assert [e["field"] for e in problem_errors(empty)] == ["messages"]
    assert fake_openai.chat_requests() == []


async def test_a_spent_budget_is_resource_exhausted_before_any_call(stub, fake_openai, runtime, user):
    async with runtime.engine.begin() as conn:
        await conn.execute(
            ai_budget.insert().values(user_id=uuid.UUID(user), day=utcnow().date(), used_tokens=49_990)
        )

    error = await failure(stub.Complete(ask(user, max_tokens=100)))

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "00:00 UTC" in error.details()
    assert fake_openai.chat_requests() == []


async def test_unused_reserved_tokens_are_released_after_the_call(stub, fake_openai, runtime, user):
    fake_openai.script(Reply.text("short", prompt_tokens=12, completion_tokens=3))

    await stub.Complete(ask(user, max_tokens=1000))

    async with runtime.engine.connect() as conn:
        budget = (await conn.execute(select(ai_budget).where(ai_budget.c.user_id == uuid.UUID(user)))).one()
        holds = (
            await conn.execute(
                select(ai_budget_reservations).where(ai_budget_reservations.c.user_id == uuid.UUID(user))
            )
        ).all()
    assert (budget.used_tokens, budget.reserved_tokens, holds) == (15, 0, [])


async def test_rate_limits_and_server_errors_are_retried_then_succeed(stub, fake_openai, user):
    fake_openai.script(
        Reply.failure(429, "slow down", headers={"retry-after": "0"}),
        Reply.failure(500),
        Reply.text("third time lucky"),
    )

    reply = await stub.Complete(ask(user))

    assert reply.output == "third time lucky"
    assert len(fake_openai.chat_requests()) == 3


async def test_retry_after_is_honoured(stub, fake_openai, user):
    fake_openai.script(Reply.failure(429, headers={"retry-after-ms": "400"}), Reply.text("ok"))
    loop = asyncio.get_running_loop()
    started = loop.time()

    await stub.Complete(ask(user))

    assert loop.time() - started >= 0.4


async def test_a_slow_answer_times_out_and_is_retried(stub, fake_openai, user):
    fake_openai.script(Reply.text("too late", delay=1.5), Reply.text("in time"))

    reply = await stub.Complete(ask(user))

    assert reply.output == "in time"


async def test_retries_exhausted_is_an_upstream_failure_and_releases_the_budget(
    stub, fake_openai, runtime, user
):
    fake_openai.script(*[Reply.failure(503) for _ in range(3)])

    error = await failure(stub.Complete(ask(user)))

    # UNKNOWN (the gateway's 502), not UNAVAILABLE: channels replay UNAVAILABLE, calling OpenAI again.
    assert error.code() is grpc.StatusCode.UNKNOWN
    assert "kept failing" in error.details()
    assert len(fake_openai.chat_requests()) == 3
    async with runtime.engine.connect() as conn:
        budget = (await conn.execute(select(ai_budget).where(ai_budget.c.user_id == uuid.UUID(user)))).one()
    assert (budget.used_tokens, budget.reserved_tokens) == (0, 0)
    assert await usage_rows(runtime, user) == []


async def test_a_retry_after_past_the_deadline_fails_fast(stub, fake_openai, user):
    fake_openai.script(Reply.failure(429, headers={"retry-after": "60"}))
    loop = asyncio.get_running_loop()
    started = loop.time()

    error = await failure(stub.Complete(ask(user)))

    assert error.code() is grpc.StatusCode.UNKNOWN
    assert loop.time() - started < 2
    assert len(fake_openai.chat_requests()) == 1


async def test_a_provider_refusal_of_the_request_is_invalid_argument(stub, fake_openai, user):
    fake_openai.script(Reply.failure(400, "This model's maximum context length is 128000 tokens"))
    error = await failure(stub.Complete(ask(user)))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "maximum context length" in error.details()


async def test_streaming_sends_the_chunks_in_order_and_ends_with_usage(stub, fake_openai, runtime, user):
    fake_openai.script(
        Reply.text(
            "", pieces=["Sosaties ", "with ", "apricot ", "glaze"], prompt_tokens=20, completion_tokens=4
        )
    )

    chunks = [c async for c in stub.StreamComplete(ask(user))]

    assert [c.delta for c in chunks[:-1]] == ["Sosaties ", "with ", "apricot ", "glaze"]
    assert not any(c.done for c in chunks[:-1])
    final = chunks[-1]
    assert final.done and final.delta == ""
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (20, 4)
    assert len({c.id for c in chunks}) == 1
    [seen] = fake_openai.chat_requests()
    assert seen.body["stream"] is True and seen.body["stream_options"] == {"include_usage": True}
    [row] = await usage_rows(runtime, user)
    assert (row.prompt_tokens, row.completion_tokens) == (20, 4)


async def test_streaming_retries_before_the_first_chunk(stub, fake_openai, user):
    fake_openai.script(Reply.failure(502), Reply.text("fine now"))
    chunks = [c async for c in stub.StreamComplete(ask(user))]
    assert "".join(c.delta for c in chunks) == "fine now"


async def test_streaming_refusals_arrive_as_status_codes_before_any_chunk(stub, fake_openai, runtime, user):
    async with runtime.engine.begin() as conn:
        await conn.execute(
            ai_budget.insert().values(user_id=uuid.UUID(user), day=utcnow().date(), used_tokens=50_000)
        )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.StreamComplete(ask(user)):
            pytest.fail("no chunk expected")
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_stream_cut_short_is_counted_from_what_was_sent(stub, fake_openai, runtime, user):
    fake_openai.script(Reply.text("", pieces=["one ", "two ", "three"], cut_after=2))

    chunks = [c async for c in stub.StreamComplete(ask(user))]

    assert [c.delta for c in chunks[:2]] == ["one ", "two "]
    assert chunks[-1].done and chunks[-1].usage.completion_tokens > 0
    [row] = await usage_rows(runtime, user)
    assert row.completion_tokens == chunks[-1].usage.completion_tokens


async def test_completion_is_not_found_when_the_feature_is_off(serve_ai, fake_openai, user):
    stub = await serve_ai(features=frozenset({"basket_suggestions"}))

    error = await failure(stub.Complete(ask(user)))
    with pytest.raises(grpc.aio.AioRpcError) as streamed:
        async for _ in stub.StreamComplete(ask(user)):
            pass

    assert error.code() is grpc.StatusCode.NOT_FOUND and "disabled" in error.details()
    assert streamed.value.code() is grpc.StatusCode.NOT_FOUND
    assert fake_openai.chat_requests() == []


async def test_without_a_server_key_only_own_keys_work(serve_ai, fake_openai, user):
    stub = await serve_ai(server_api_key=None)
    error = await failure(stub.Complete(ask(user)))
    assert error.code() is grpc.StatusCode.UNAVAILABLE


async def test_concurrent_calls_near_the_limit_never_overspend_by_more_than_one_call(
    serve_ai, fake_openai, runtime, user
):
    limit, max_tokens = 3_000, 100
    stub = await serve_ai(daily_token_limit=limit)
    async with runtime.engine.begin() as conn:
        await conn.execute(
            ai_budget.insert().values(user_id=uuid.UUID(user), day=utcnow().date(), used_tokens=limit - 700)
        )
    # Each call really uses its whole allowance, and answers slowly so that all twenty are in flight at once.
    fake_openai.script(
        *[Reply.text("x" * 400, delay=0.2, prompt_tokens=10, completion_tokens=max_tokens) for _ in range(20)]
    )

    results = await asyncio.gather(
        *(stub.Complete(ask(user, "hi", max_tokens=max_tokens)) for _ in range(20)), return_exceptions=True
    )

    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert refused and all(r.code() is grpc.StatusCode.RESOURCE_EXHAUSTED for r in refused)
    succeeded = len(results) - len(refused)
    assert succeeded >= 1
    async with runtime.engine.connect() as conn:
        budget = (await conn.execute(select(ai_budget).where(ai_budget.c.user_id == uuid.UUID(user)))).one()
    assert budget.reserved_tokens == 0
    assert budget.used_tokens == limit - 700 + succeeded * (10 + max_tokens)
    assert budget.used_tokens <= limit + max_tokens


async def test_a_caller_that_goes_away_mid_stream_still_settles_its_budget(stub, fake_openai, runtime, user):
    fake_openai.script(Reply.text("", pieces=["a ", "b ", "c ", "d ", "e"], piece_delay=0.3))
    call = stub.StreamComplete(ask(user))
    first = await call.read()
    assert first.delta == "a "

    call.cancel()
    for _ in range(50):
        async with runtime.engine.connect() as conn:
            budget = (
                await conn.execute(select(ai_budget).where(ai_budget.c.user_id == uuid.UUID(user)))
            ).one()
        if budget.reserved_tokens == 0:
            break
        await asyncio.sleep(0.1)

    assert (budget.reserved_tokens, budget.used_tokens > 0) == (0, True)
    [row] = await usage_rows(runtime, user)
    assert row.completion_tokens >= 1
