"""Users' provider keys: stored only envelope-encrypted, bound to their owner, re-wrapped on KEK rotation."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import uuid

import grpc
import orjson
import pytest
from sqlalchemy import insert, select, text

from yummi.ai.v1 import ai_pb2 as pb
from yummi.common.v1 import common_pb2
from yummi_ai.adapters.secrets import Keyring, LocalKek
from yummi_ai.adapters.tables import api_credentials, messaging, metadata
from yummi_ai.bootstrap import MIGRATIONS_DIR
from yummi_ai.domain.credentials import MAX_CREDENTIALS_PER_USER
from yummi_ai.service_layer.credentials import resolve_key
from yummi_ai.service_layer.rotation import rotate_kek
from yummi_common import migrations
from yummi_common.grpc_client import problem_errors
from yummi_common.service import Runtime
from yummi_common.settings import Settings
from yummi_devstack.infra import drop_database, url_with_database

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PLAINTEXT = "sk-proj-ThisIsTheUsersSecretKey-4321"


def create(user: str, api_key: str = PLAINTEXT, label: str = "personal") -> pb.CreateCredentialRequest:
    return pb.CreateCredentialRequest(user_id=user, provider="openai", label=label, api_key=api_key)


async def failure(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


async def dump_ai_schema(runtime: Runtime) -> str:
    """Every row of every table of the ai schema as text, as a database dump would show it."""
    async with runtime.engine.connect() as conn:
        tables = (
            await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'ai' ORDER BY tablename")
            )
        ).scalars()
        lines = []
        for table in list(tables):
            rows = await conn.execute(text(f'SELECT t::text FROM ai."{table}" t'))  # noqa: S608 - catalog names
            lines += [f"{table}: {row}" for row in rows.scalars()]
    return "\n".join(lines)


async def test_a_credential_is_created_listed_and_deleted_without_ever_returning_the_key(stub, user):
    created = await stub.CreateCredential(create(user))

    assert (created.provider, created.label, created.key_hint) == ("openai", "personal", "sk-…4321")
    assert created.HasField("created_at") and not created.HasField("last_used_at")
    listed = (await stub.ListCredentials(common_pb2.UserRef(user_id=user))).items
    assert [c.id for c in listed] == [created.id]
    assert PLAINTEXT not in str(listed) and PLAINTEXT not in str(created)
    export = (await stub.ExportUserData(common_pb2.UserRef(user_id=user))).json
    assert PLAINTEXT not in export and orjson.loads(export)["credentials"][0]["key_hint"] == "sk-…4321"

    await stub.DeleteCredential(pb.DeleteCredentialRequest(user_id=user, id=created.id))

    assert list((await stub.ListCredentials(common_pb2.UserRef(user_id=user))).items) == []


async def test_deleting_another_users_or_an_unknown_credential_is_not_found(stub, user):
    theirs = await stub.CreateCredential(create(str(uuid.uuid4())))
    for cid in (theirs.id, str(uuid.uuid4())):
        error = await failure(stub.DeleteCredential(pb.DeleteCredentialRequest(user_id=user, id=cid)))
        assert error.code() is grpc.StatusCode.NOT_FOUND
    malformed = await failure(stub.DeleteCredential(pb.DeleteCredentialRequest(user_id=user, id="x")))
    assert malformed.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_malformed_credential_names_its_fields_and_never_echoes_the_key(stub, user):
    error = await failure(
        stub.CreateCredential(
            pb.CreateCredentialRequest(user_id=user, provider="acme", label=" ", api_key="sk-a b")
        )
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert {e["field"] for e in problem_errors(error)} == {"provider", "label", "api_key"}
    assert "sk-a b" not in error.details() + str(problem_errors(error))


async def test_a_user_can_store_at_most_ten_keys(stub, user):
    for n in range(MAX_CREDENTIALS_PER_USER):
        await stub.CreateCredential(create(user, f"sk-key-number-{n:04d}", label=f"k{n}"))
    error = await failure(stub.CreateCredential(create(user, "sk-one-too-many-0000")))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_keys_are_checked_with_the_provider_on_create_when_configured(serve_ai, fake_openai, user):
    stub = await serve_ai(verify_keys_on_create=True)
    fake_openai.accepted_keys = {"sk-good-key-for-models-1234"}

    stored = await stub.CreateCredential(create(user, "sk-good-key-for-models-1234"))
    error = await failure(stub.CreateCredential(create(user, "sk-bad-key-for-models-9999")))

    assert stored.key_hint == "sk-…1234"
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [e["field"] for e in problem_errors(error)] == ["api_key"]
    assert [(r.method, r.path, r.api_key) for r in fake_openai.requests] == [
        ("GET", "/v1/models", "sk-good-key-for-models-1234"),
        ("GET", "/v1/models", "sk-bad-key-for-models-9999"),
    ]
    assert len((await stub.ListCredentials(common_pb2.UserRef(user_id=user))).items) == 1


async def test_a_dump_of_the_ai_schema_never_contains_a_plaintext_key(stub, fake_openai, runtime, user):
    created = await stub.CreateCredential(create(user))
    await stub.Complete(
        pb.CompleteRequest(
            user_id=user, messages=[pb.ChatMessage(role="user", content="hi")], user_key_id=created.id
        )
    )
    assert fake_openai.chat_requests()[0].api_key == PLAINTEXT  # the key really was stored and used

    dump = await dump_ai_schema(runtime)

    assert created.id in dump  # the dump does hold the row
    for form in (
        PLAINTEXT,
        PLAINTEXT.encode().hex(),
        base64.b64encode(PLAINTEXT.encode()).decode(),
        "ThisIsTheUsers",
    ):
        assert form not in dump
    async with runtime.engine.connect() as conn:
        row = (
            await conn.execute(select(api_credentials).where(api_credentials.c.id == uuid.UUID(created.id)))
        ).one()
    assert PLAINTEXT.encode() not in row.enc_key_blob + row.wrapped_dek
    assert len(row.wrapped_dek) == 12 + 32 + 16  # nonce + AES-256 data key + GCM tag


async def test_a_row_copied_to_another_user_does_not_decrypt(stub, fake_openai, runtime, keyring, user):
    created = await stub.CreateCredential(create(user))
    thief = uuid.uuid4()
    async with runtime.engine.begin() as conn:
        row = (
            await conn.execute(select(api_credentials).where(api_credentials.c.id == uuid.UUID(created.id)))
        ).one()
        copied = {**row._mapping, "id": uuid.uuid4(), "user_id": thief}
        same_id = {**row._mapping, "user_id": thief}
        await conn.execute(insert(api_credentials).values(copied))
        # The same id under another user, as a swapped user_id column would leave it.
        await conn.execute(text("ALTER TABLE ai.api_credentials DROP CONSTRAINT api_credentials_pkey"))
        await conn.execute(insert(api_credentials).values(same_id))

    for cid in (copied["id"], same_id["id"]):
        error = await failure(
            stub.Complete(
                pb.CompleteRequest(
                    user_id=str(thief),
                    messages=[pb.ChatMessage(role="user", content="hi")],
                    user_key_id=str(cid),
                )
            )
        )
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "cannot be read" in error.details()
    assert fake_openai.chat_requests() == []
    async with runtime.engine.begin() as conn:
        await conn.execute(api_credentials.delete().where(api_credentials.c.user_id == thief))
        await conn.execute(text("ALTER TABLE ai.api_credentials ADD PRIMARY KEY (id)"))


async def test_rotation_rewraps_every_data_key_and_the_old_kek_can_then_be_dropped(
    serve_ai, runtime, fake_openai, base_config
):
    old, new = LocalKek(os.urandom(32)), LocalKek(os.urandom(32))
    stub = await serve_ai(keyring_=Keyring(old))
    users = [str(uuid.uuid4()) for _ in range(5)]
    created = {
        u: await stub.CreateCredential(create(u, f"sk-rotate-me-{i:04d}")) for i, u in enumerate(users)
    }
    ids = [uuid.UUID(c.id) for c in created.values()]

    async def rows():
        async with runtime.engine.connect() as conn:
            return {
                r.id: r
                for r in await conn.execute(select(api_credentials).where(api_credentials.c.id.in_(ids)))
            }

    before = await rows()
    assert {r.kek_id for r in before.values()} == {old.kek_id}

    report = await rotate_kek(uow_factory=runtime.uow, keyring=Keyring(new, old), batch_size=2)

    after = await rows()
    assert {r.kek_id for r in after.values()} == {new.kek_id}
    assert report.rewrapped >= 5 and report.by_kek.get(new.kek_id, 0) >= 5
    for cid in ids:
        # the credential itself was never re-encrypted, only its data key re-wrapped
        assert after[cid].enc_key_blob == before[cid].enc_key_blob
        assert after[cid].wrapped_dek != before[cid].wrapped_dek
    only_new = Keyring(new)
    for i, (u, c) in enumerate(created.items()):
        key = await resolve_key(
            uow_factory=runtime.uow,
            keyring=only_new,
            config=base_config,
            user_id=uuid.UUID(u),
            user_key_id=c.id,
        )
        assert key.api_key == f"sk-rotate-me-{i:04d}"
    served_by_new = await serve_ai(keyring_=only_new)
    await served_by_new.Complete(
        pb.CompleteRequest(
            user_id=users[0],
            messages=[pb.ChatMessage(role="user", content="hi")],
            user_key_id=created[users[0]].id,
        )
    )
    assert fake_openai.chat_requests()[-1].api_key == "sk-rotate-me-0000"


async def test_the_rotate_kek_command_rewraps_a_database_in_batches(settings: Settings, base_config):
    """`yummi-ai rotate-kek` as an operator runs it, on a database of its own."""
    old_key, new_key = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()
    database = f"yummi_ai_rotation_{uuid.uuid4().hex[:8]}"
    url = url_with_database(settings.database_url.replace("+asyncpg", ""), database)
    own = settings.model_copy(
        update={"database_url": url.replace("postgresql://", "postgresql+asyncpg://", 1)}
    )
    await asyncio.to_thread(migrations.upgrade, settings=own, service="ai", script_location=MIGRATIONS_DIR)
    runtime = await Runtime.start(
        service="ai", settings=own, metadata=metadata, tables=messaging, with_messaging=False
    )
    try:
        from yummi_ai.adapters.openai_provider import OpenAIProvider
        from yummi_ai.service_layer.credentials import create_credential

        old = Keyring(LocalKek.from_base64(old_key))
        for n in range(7):
            await create_credential(
                uow_factory=runtime.uow,
                keyring=old,
                provider=OpenAIProvider(base_url=None, max_attempts=1, attempt_timeout=1),
                config=base_config,
                user_id=str(uuid.uuid4()),
                provider_name="openai",
                label=f"k{n}",
                api_key=f"sk-cli-rotation-{n:04d}",
            )
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SECRETS_MASTER_KEY": new_key,
            "SECRETS_MASTER_KEY_PREVIOUS": old_key,
        }
        env.pop("AI_DATABASE_URL", None)
        command = [sys.executable, "-m", "yummi_ai", "rotate-kek", "--batch-size", "3"]

        done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, timeout=60)

        new_id = LocalKek.from_base64(new_key).kek_id
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        report = orjson.loads(done.stdout)
        assert (report["rewrapped"], report["by_kek"], report["complete"]) == (7, {new_id: 7}, True)
        again = await rotate_kek(uow_factory=runtime.uow, keyring=Keyring(LocalKek.from_base64(new_key)))
        assert (again.rewrapped, again.complete) == (0, True)  # a rerun finds nothing left to do
        async with runtime.engine.connect() as conn:
            rows = (await conn.execute(select(api_credentials))).all()
        for row in rows:
            key = await resolve_key(
                uow_factory=runtime.uow,
                keyring=Keyring(LocalKek.from_base64(new_key)),
                config=base_config,
                user_id=row.user_id,
                user_key_id=str(row.id),
            )
            assert key.api_key.startswith("sk-cli-rotation-")
    finally:
        await runtime.close()
        await asyncio.to_thread(drop_database, url)
