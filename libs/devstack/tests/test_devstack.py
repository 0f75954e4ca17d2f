"""The dev stack's promises: dev tokens decode, given URLs are kept, embedded servers really serve."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import jwt
import psutil
import pytest

from yummi_devstack import dev_token, ensure_infra, stop_infra
from yummi_devstack.infra import free_port, nats_info, port_is_free, redis_ping, running_servers

GIVEN = {
    "DATABASE_URL": "postgresql://app:secret@db.example:5432/yummi",
    "REDIS_URL": "redis://cache.example:6379/0",
    "NATS_URL": "nats://bus.example:4222",
}


def test_dev_token_is_an_unsigned_jwt_that_decodes_to_its_claims() -> None:
    token = dev_token("user_42", "shopper@example.com", role="runner", org={"id": 7})

    assert token.endswith(".") and token.count(".") == 2
    assert jwt.get_unverified_header(token) == {"alg": "none", "typ": "JWT"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "user_42"
    assert claims["email"] == "shopper@example.com"
    assert claims["role"] == "runner" and claims["org"] == {"id": 7}
    assert claims["exp"] > claims["iat"]


def test_dev_token_leaves_out_claims_set_to_none() -> None:
    claims = jwt.decode(dev_token("user_1", None, exp=None), options={"verify_signature": False})

    assert "email" not in claims and "exp" not in claims


def test_ensure_infra_with_every_url_given_starts_nothing_and_returns_them_unchanged(tmp_path: Path) -> None:
    urls = ensure_infra(tmp_path / "state", GIVEN)

    assert dict(urls) == GIVEN
    assert urls.started == frozenset() and urls.embedded == frozenset()
    assert not (tmp_path / "state").exists()


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="yummi-devstack-test-"))
    try:
        yield path
    finally:
        stop_infra(path)
        shutil.rmtree(path, ignore_errors=True)


async def _probe_postgres_and_nats(database_url: str, nats_url: str) -> tuple[int, float, int]:
    import asyncpg
    import nats

    connection = await asyncpg.connect(database_url)
    try:
        one = await connection.fetchval("SELECT 1")
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        similarity = await connection.fetchval("SELECT similarity('spaghetti', 'spagetti')")
    finally:
        await connection.close()
    client = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        account = await client.jetstream().account_info()
    finally:
        await client.close()
    return one, similarity, account.api.level


@pytest.mark.integration
@pytest.mark.slow
def test_embedded_servers_start_answer_are_reused_and_stop_without_leftovers(state_dir: Path) -> None:
    ports = {"postgres": free_port(), "nats": free_port(), "valkey": free_port()}

    urls = ensure_infra(state_dir, {}, ports=ports)

    assert urls.started == {"postgres", "nats", "valkey"}
    assert urls["DATABASE_URL"] == f"postgresql://postgres@127.0.0.1:{ports['postgres']}/yummi"
    assert urls["NATS_URL"] == f"nats://127.0.0.1:{ports['nats']}"
    assert urls["REDIS_URL"] == f"redis://127.0.0.1:{ports['valkey']}/0"
    one, similarity, js_api_level = asyncio.run(
        _probe_postgres_and_nats(urls["DATABASE_URL"], urls["NATS_URL"])
    )
    assert one == 1 and similarity > 0.3  # pg_trgm is available
    assert js_api_level >= 1  # JetStream is enabled
    assert nats_info(ports["nats"]) is not None
    assert redis_ping(ports["valkey"])

    pids = {name: record.pid for name, record in running_servers(state_dir).items()}
    again = ensure_infra(state_dir, {}, ports=ports)
    assert dict(again) == dict(urls) and again.started == frozenset()
    assert {name: record.pid for name, record in running_servers(state_dir).items()} == pids

    assert sorted(stop_infra(state_dir)) == ["nats", "postgres", "valkey"]
    assert running_servers(state_dir) == {}
    assert all(port_is_free(port) for port in ports.values())
    leftovers = [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if proc.info["cmdline"] and str(state_dir) in " ".join(proc.info["cmdline"])
    ]
    assert leftovers == []
    for pid in pids.values():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
