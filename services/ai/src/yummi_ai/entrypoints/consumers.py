"""Event handlers of the ai context: erasure."""

from __future__ import annotations

import uuid

from yummi.events.v1 import events_pb2 as ev
from yummi_ai.service_layer import privacy
from yummi_common.db import UnitOfWork
from yummi_common.messaging.consumer import Subscription
from yummi_common.messaging.events import Event
from yummi_common.service import Runtime


async def on_user_erased(uow: UnitOfWork, event: Event) -> None:
    """Remove the user's stored keys and say so."""
    body = event.body
    if not isinstance(body, ev.UserErased):
        raise TypeError(f"{event.type} carries {type(body).__name__}, expected UserErased")
    try:
        user_id = uuid.UUID(body.user_id)
    except ValueError as exc:
        raise ValueError(f"event carries a malformed user_id: {body.user_id!r}") from exc
    await privacy.erase_user(uow=uow, user_id=user_id)


def subscriptions(_runtime: Runtime) -> list[Subscription]:
    return [Subscription(event_type="identity.user.erased", handler=on_user_erased, name="user-erasure")]
