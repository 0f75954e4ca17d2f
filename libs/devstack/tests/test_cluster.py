"""The loopback NATS cluster: three routed JetStream nodes; an R3 stream outlives the loss of its leader."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.js.api import StreamConfig

from yummi_devstack.cluster import NatsCluster, _free_ports, replica_target
from yummi_devstack.infra import port_is_free


def test_replica_target_lists_every_address_for_round_robin() -> None:
    assert replica_target(["127.0.0.1:5001", "127.0.0.1:5002"]) == "ipv4:127.0.0.1:5001,127.0.0.1:5002"


def test_free_ports_are_distinct_and_keep_their_spare_port_free() -> None:
    ports = _free_ports(6, spare_offset=1000)

    assert len(set(ports)) == 6
    assert all(port_is_free(port) and port_is_free(port + 1000) for port in ports)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path / "nats", size=3, name="t") as running:
        yield running


async def _publish(js: nats.js.JetStreamContext, subject: str, payload: bytes, msg_id: str) -> None:
    """Publish until the stream acknowledges (a new stream leader takes a few seconds to be elected)."""
    for _ in range(300):
        try:
            await js.publish(subject, payload, timeout=2.0, headers={"Nats-Msg-Id": msg_id})
            return
        except (nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError, nats.js.errors.APIError):
            await asyncio.sleep(0.1)
    raise AssertionError(f"{msg_id} was never acknowledged")


async def test_three_named_routed_nodes_serve_one_jetstream(cluster: NatsCluster) -> None:
    assert [node.name for node in cluster.nodes] == ["t-1", "t-2", "t-3"]
    assert cluster.url == ",".join(node.url for node in cluster.nodes)
    assert len({node.store_dir for node in cluster.nodes}) == 3
    assert cluster.meta_leader() in {"t-1", "t-2", "t-3"}
    for node in cluster.nodes:
        routes = node.jsz().get("meta_cluster", {}).get("cluster_size")
        assert routes == 3


async def test_an_r3_stream_keeps_every_message_through_a_crashed_and_restarted_leader(
    cluster: NatsCluster,
) -> None:
    nc = await nats.connect(cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="R3", subjects=["r3.>"], num_replicas=3))
        for i in range(20):
            await _publish(js, "r3.before", b"x", f"before-{i}")
        info = await js.stream_info("R3")
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2
        leader = [node.name for node in cluster.nodes].index(str(info.cluster.leader))

        cluster.stop_node(leader, kill=True)
        for i in range(20):
            await _publish(js, "r3.during", b"x", f"during-{i}")
        # a publish retried with the same Nats-Msg-Id is stored once
        await _publish(js, "r3.during", b"x", "during-0")
        await asyncio.to_thread(cluster.start_node, leader)

        # the restarted member catches up from the leader
        for _ in range(300):
            info = await js.stream_info("R3")
            replicas = info.cluster.replicas if info.cluster is not None else None
            if replicas and len(replicas) == 2 and all(replica.current for replica in replicas):
                break
            await asyncio.sleep(0.1)
        assert info.state.messages == 40
        assert info.cluster is not None and info.cluster.replicas is not None
        assert [replica.current for replica in info.cluster.replicas] == [True, True]
    finally:
        await nc.close()


async def test_a_service_starting_before_the_cluster_has_a_quorum_waits_for_its_stream(
    cluster: NatsCluster,
) -> None:
    """ensure_stream (every service's start) asks again while JetStream cannot answer, instead of failing."""
    from yummi_common.messaging.nats import ensure_stream
    from yummi_common.settings import Settings

    cluster.stop_node(1)
    cluster.stop_node(2)  # one node of three: no meta leader, JetStream requests time out
    settings = Settings(
        nats_url=cluster.nodes[0].url,
        nats_stream="QUORUM",
        nats_subject_prefix="quorum",
        nats_stream_replicas=3,
    )
    nc = await nats.connect(cluster.nodes[0].url)
    try:
        js = nc.jetstream(timeout=1.0)
        creating = asyncio.create_task(ensure_stream(js, settings))
        await asyncio.sleep(2.5)
        assert not creating.done()  # asked, timed out, asking again
        await asyncio.to_thread(cluster.start_node, 1)
        await asyncio.to_thread(cluster.start_node, 2)
        await asyncio.wait_for(creating, timeout=60)
        info = await js.stream_info("QUORUM")
        assert info.config.num_replicas == 3
    finally:
        await nc.close()
