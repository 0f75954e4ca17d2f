"""The ai service over gRPC: health, usage reporting, the GDPR export and erasure."""

from __future__ import annotations

import uuid
from datetime import timedelta

import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import insert, select

from yummi.common.v1 import common_pb2
from yummi.events.v1 import events_pb2 as ev
from yummi_ai.adapters.tables import ai_budget, ai_usage, api_credentials, messaging
from yummi_ai.entrypoints.consumers import on_user_erased
from yummi_common.messaging.events import Event
from yummi_common.timeutil import utcnow

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def add_usage(runtime, user: uuid.UUID, prompt: int, completion: int, *, days_ago: int = 0) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(
            insert(ai_usage).values(
                id=uuid.uuid4(),
                user_id=user,
                model="gpt-4o-mini",
                prompt_sha256="0" * 64,
                response_sha256="1" * 64,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cost_micro_usd=prompt + completion,
                latency_ms=120,
                key_source="server",
                created_at=utcnow() - timedelta(days=days_ago),
            )
        )


async def test_server_is_healthy_and_serving_the_ai_service(channel):
    health = health_pb2_grpc.HealthStub(channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service="yummi.ai.v1.AiService"))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_usage_of_a_new_user_is_zero_against_the_daily_limit(stub, settings):
    usage = await stub.GetUsage(common_pb2.UserRef(user_id=str(uuid.uuid4())))
    assert (usage.tokens_today, usage.cost_micro_usd_today, usage.requests_today) == (0, 0, 0)
    assert usage.daily_token_limit == settings.ai_daily_token_limit


async def test_usage_sums_todays_tokens_only(stub, runtime):
    user = uuid.uuid4()
    await add_usage(runtime, user, 100, 50)
    await add_usage(runtime, user, 30, 20)
    await add_usage(runtime, user, 5_000, 5_000, days_ago=2)

    usage = await stub.GetUsage(common_pb2.UserRef(user_id=str(user)))

    assert (usage.tokens_today, usage.requests_today, usage.cost_micro_usd_today) == (200, 2, 200)


async def test_usage_of_a_malformed_user_id_is_invalid(stub):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetUsage(common_pb2.UserRef(user_id="nobody"))
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_export_lists_credentials_without_key_material_and_usage(stub, runtime):
    user = uuid.uuid4()
    await add_usage(runtime, user, 10, 5)
    async with runtime.engine.begin() as conn:
        await conn.execute(
            insert(api_credentials).values(
                id=uuid.uuid4(),
                user_id=user,
                provider="openai",
                label="personal",
                key_hint="sk-…abcd",
                enc_key_blob=b"secret-ciphertext",
                wrapped_dek=b"wrapped",
                kek_id="local:1",
            )
        )

    export = await stub.ExportUserData(common_pb2.UserRef(user_id=str(user)))

    assert export.context == "ai"
    document = orjson.loads(export.json)
    assert [c["label"] for c in document["credentials"]] == ["personal"]
    assert "enc_key_blob" not in export.json and "wrapped" not in export.json
    assert [u["prompt_tokens"] for u in document["usage"]] == [10]


async def test_erasure_deletes_the_users_keys_usage_and_budget_and_reports_done(runtime, stub):
    user = uuid.uuid4()
    other = uuid.uuid4()
    await add_usage(runtime, user, 10, 5)
    await add_usage(runtime, other, 7, 3)
    async with runtime.engine.begin() as conn:
        await conn.execute(
            insert(api_credentials).values(
                id=uuid.uuid4(),
                user_id=user,
                provider="openai",
                label="k",
                key_hint="sk-…1",
                enc_key_blob=b"x",
                wrapped_dek=b"y",
                kek_id="local:1",
            )
        )
        await conn.execute(insert(ai_budget).values(user_id=user, day=utcnow().date(), used_tokens=15))
    async with runtime.uow() as uow:
        event = Event(
            id=uuid.uuid4(),
            type="identity.user.erased",
            source="t",
            time=None,
            body=ev.UserErased(user_id=str(user)),
        )
        await on_user_erased(uow, event)
        await uow.commit()

    export = orjson.loads((await stub.ExportUserData(common_pb2.UserRef(user_id=str(user)))).json)
    assert export["credentials"] == [] and export["usage"] == []
    async with runtime.engine.connect() as conn:
        budgets = (await conn.execute(select(ai_budget).where(ai_budget.c.user_id == user))).all()
        completed = (
            await conn.execute(
                select(messaging.outbox).where(
                    messaging.outbox.c.event_type == "identity.user.erasure_completed"
                )
            )
        ).all()
    assert budgets == []
    assert any(ev.UserErasureCompleted.FromString(row.payload).user_id == str(user) for row in completed)
    assert (await stub.GetUsage(common_pb2.UserRef(user_id=str(other)))).tokens_today == 10
