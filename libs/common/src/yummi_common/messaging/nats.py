"""Connecting to NATS and making sure the events stream exists."""

from __future__ import annotations

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from yummi_common.logging import get_logger
from yummi_common.settings import Settings

log = get_logger(__name__)
DUPLICATE_WINDOW_SECONDS = 300.0


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
    try:
        await js.stream_info(settings.nats_stream)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except BadRequestError:
            pass  # created concurrently by another process
    await js.update_stream(config)
