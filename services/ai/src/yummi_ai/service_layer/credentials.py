"""Users' own provider keys: store (envelope-encrypted), list, delete, and open one for its owner's call."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from yummi_ai.adapters.openai_provider import OpenAIProvider, ProviderError, ProviderKey, ProviderKeyRejected
from yummi_ai.adapters.secrets import (
    KekUnavailable,
    Keyring,
    SealedSecret,
    SecretUnreadable,
    UnknownKek,
    open_sealed,
    seal,
)
from yummi_ai.adapters.tables import api_credentials
from yummi_ai.config import AiConfig
from yummi_ai.domain.credentials import MAX_CREDENTIALS_PER_USER, key_hint, validate_new_credential
from yummi_ai.errors import UpstreamFailed
from yummi_ai.service_layer.ids import parse_id
from yummi_common.db import UnitOfWork
from yummi_common.errors import Conflict, InvalidArgument, NotFound, Unavailable
from yummi_common.logging import get_logger
from yummi_common.timeutil import utcnow

log = get_logger(__name__)

KEY_CHECK_SECONDS = 10.0


@dataclass(frozen=True)
class CredentialView:
    """A stored key as its owner may see it: never the key itself."""

    id: uuid.UUID
    provider: str
    label: str
    key_hint: str
    created_at: datetime
    last_used_at: datetime | None


_VIEW_COLUMNS = (
    api_credentials.c.id,
    api_credentials.c.provider,
    api_credentials.c.label,
    api_credentials.c.key_hint,
    api_credentials.c.created_at,
    api_credentials.c.last_used_at,
)


async def create_credential(
    *,
    uow_factory: Callable[[], UnitOfWork],
    keyring: Keyring,
    provider: OpenAIProvider,
    config: AiConfig,
    user_id: str,
    provider_name: str,
    label: str,
    api_key: str,
) -> CredentialView:
    """Store the user's key encrypted (checked with the provider first when AI_VERIFY_KEYS_ON_CREATE)."""
    uid = parse_id(user_id, "user_id")
    new = validate_new_credential(provider=provider_name, label=label, api_key=api_key)
    if config.verify_keys_on_create:
        await _check_with_provider(provider, new.api_key)  # before any transaction: it may take seconds
    credential_id = uuid.uuid4()
    try:
        sealed = await seal(new.api_key, keyring=keyring, credential_id=credential_id, user_id=uid)
    except KekUnavailable as exc:
        raise Unavailable("keys cannot be stored right now; try again shortly") from exc
    async with uow_factory() as uow:
        count = (
            await uow.session.execute(select(func.count()).where(api_credentials.c.user_id == uid))
        ).scalar_one()
        if count >= MAX_CREDENTIALS_PER_USER:
            raise Conflict(f"at most {MAX_CREDENTIALS_PER_USER} keys can be stored; delete one first")
        row = (
            await uow.session.execute(
                insert(api_credentials)
                .values(
                    id=credential_id,
                    user_id=uid,
                    provider=new.provider,
                    label=new.label,
                    key_hint=key_hint(new.api_key),
                    enc_key_blob=sealed.enc_key_blob,
                    wrapped_dek=sealed.wrapped_dek,
                    kek_id=sealed.kek_id,
                )
                .returning(*_VIEW_COLUMNS)
            )
        ).one()
        await uow.commit()
    log.info("credential stored", user_id=str(uid), credential_id=str(credential_id), kek_id=sealed.kek_id)
    return CredentialView(**row._mapping)


async def _check_with_provider(provider: OpenAIProvider, api_key: str) -> None:
    deadline = asyncio.get_running_loop().time() + KEY_CHECK_SECONDS
    try:
        await provider.check_key(key=ProviderKey(api_key=api_key, source="user"), deadline=deadline)
    except ProviderKeyRejected as exc:
        raise InvalidArgument(
            "OpenAI did not accept this key",
            errors=[{"field": "api_key", "message": "OpenAI rejected this key (invalid or revoked)"}],
        ) from exc
    except ProviderError as exc:
        raise UpstreamFailed("the key cannot be checked with OpenAI right now; try again shortly") from exc


async def list_credentials(*, session: AsyncSession, user_id: str) -> list[CredentialView]:
    """The user's stored keys, oldest first."""
    uid = parse_id(user_id, "user_id")
    rows = (
        await session.execute(
            select(*_VIEW_COLUMNS)
            .where(api_credentials.c.user_id == uid)
            .order_by(api_credentials.c.created_at, api_credentials.c.id)
        )
    ).all()
    return [CredentialView(**row._mapping) for row in rows]


async def delete_credential(*, uow: UnitOfWork, user_id: str, credential_id: str) -> None:
    """Delete one of the user's keys; another user's or an unknown id is NotFound."""
    uid = parse_id(user_id, "user_id")
    cid = parse_id(credential_id, "id")
    deleted = (
        await uow.session.execute(
            delete(api_credentials)
            .where(api_credentials.c.id == cid, api_credentials.c.user_id == uid)
            .returning(api_credentials.c.id)
        )
    ).scalar_one_or_none()
    if deleted is None:
        raise NotFound("credential not found")
    await uow.commit()
    log.info("credential deleted", user_id=str(uid), credential_id=str(cid))


async def resolve_key(
    *,
    uow_factory: Callable[[], UnitOfWork],
    keyring: Keyring,
    config: AiConfig,
    user_id: uuid.UUID,
    user_key_id: str,
) -> ProviderKey:
    """The server's key, or the caller's own stored key `user_key_id` (only its owner may use it)."""
    if not user_key_id:
        if not config.server_api_key:
            log.error("OPENAI_API_KEY is not set; only users' own keys can be used")
            raise Unavailable("the assistant is not configured on this server; use your own key")
        return ProviderKey(api_key=config.server_api_key, source="server")
    cid = parse_id(user_key_id, "user_key_id")
    async with uow_factory() as uow:
        row = (
            await uow.session.execute(
                update(api_credentials)
                .where(api_credentials.c.id == cid, api_credentials.c.user_id == user_id)
                .values(last_used_at=utcnow())
                .returning(
                    api_credentials.c.enc_key_blob, api_credentials.c.wrapped_dek, api_credentials.c.kek_id
                )
            )
        ).one_or_none()
        if row is None:
            raise NotFound("credential not found")
        await uow.commit()
    sealed = SealedSecret(enc_key_blob=row.enc_key_blob, wrapped_dek=row.wrapped_dek, kek_id=row.kek_id)
    try:
        api_key = await open_sealed(sealed, keyring=keyring, credential_id=cid, user_id=user_id)
    except UnknownKek as exc:
        log.error(
            "credential wrapped by a key-encryption key not configured",
            credential_id=str(cid),
            kek_id=row.kek_id,
        )
        raise Unavailable("stored keys cannot be read right now; try again later") from exc
    except SecretUnreadable as exc:
        log.error("credential does not decrypt for its row", credential_id=str(cid), kek_id=row.kek_id)
        raise Conflict("this stored key cannot be read; delete it and add it again") from exc
    except KekUnavailable as exc:
        raise Unavailable("stored keys cannot be read right now; try again shortly") from exc
    return ProviderKey(api_key=api_key, source="user", credential_id=str(cid))
