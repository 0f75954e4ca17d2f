"""Connecting to NATS and making sure the events stream exists."""

from __future__ import annotations

import asyncio

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError, ServiceUnavailableError

from yummi_common.logging import get_logger
from yummi_common.settings import Settings

log = get_logger(__name__)
DUPLICATE_WINDOW_SECONDS = 300.0
STREAM_WAIT_SECONDS = 60.0  # how long a start keeps asking for the stream before it fails


async def connect_nats(settings: Settings, *, name: str) -> NATS:
    """Connect with endless reconnects: a NATS restart must not end the process."""
    if not settings.nats_url:
        raise RuntimeError("NATS_URL is not set")

    async def on_disconnect() -> None:
        log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", error=str(exc))

    return await nats.connect(
        [url.strip() for url in settings.nats_url.split(",") if url.strip()],  # one URL or a cluster's list
        name=f"yummi-{name}",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        allow_reconnect=True,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
    )


async def ensure_stream(js: JetStreamContext, settings: Settings) -> None:
    """Create (or update) the events stream over `{prefix}.>` with a dedupe window for Nats-Msg-Id."""
    config = StreamConfig(
        name=settings.nats_stream,
        subjects=[f"{settings.nats_subject_prefix}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=7 * 24 * 3600,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        num_replicas=settings.nats_stream_replicas,
    )
    # A replicated stream is created by a vote of its nodes: on a cluster that just formed (or a busy one) the
    # JetStream API may not answer within the request timeout. Ask again (another process may have created
    # it meanwhile) instead of failing the start.
    loop = asyncio.get_running_loop()
    give_up = loop.time() + STREAM_WAIT_SECONDS
    attempt = 0
    while True:
        attempt += 1
        try:
            await _create_or_update(js, config)
            return
        except (nats.errors.TimeoutError, ServiceUnavailableError, StreamNotReady) as exc:
            if loop.time() >= give_up:
                raise
            log.warning(
                "jetstream cannot create the stream yet; asking again",
                stream=config.name,
                attempt=attempt,
                error=str(exc)[:200],
            )
            await asyncio.sleep(min(0.5 * attempt, 2.0))


class StreamNotReady(Exception):
    """JetStream refused to create the stream and it does not exist (no quorum, no suitable peers yet)."""


async def _create_or_update(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except BadRequestError as refused:
            # created concurrently by another process, or refused because the cluster cannot place it yet
            try:
                await js.stream_info(config.name)
            except NotFoundError:
                raise StreamNotReady(str(refused)) from refused
    await js.update_stream(config)
