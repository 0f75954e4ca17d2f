"""Key-encryption key rotation: re-wrap every data key under the current KEK, batch by batch, online.

Only data keys are unwrapped and wrapped again; the stored provider keys stay encrypted throughout. Services
keep answering meanwhile because their keyring reads both the old and the new KEK.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select, update

from yummi_ai.adapters.secrets import Keyring, SealedSecret, SecretUnreadable, rewrap
from yummi_ai.adapters.tables import api_credentials
from yummi_common.db import UnitOfWork
from yummi_common.logging import get_logger

log = get_logger(__name__)


@dataclass
class RotationReport:
    target_kek_id: str
    rewrapped: int = 0
    unreadable: list[str] = field(default_factory=list)  # credential ids whose data key did not unwrap
    by_kek: dict[str, int] = field(default_factory=dict)  # rows per kek_id after the run

    @property
    def complete(self) -> bool:
        return set(self.by_kek) <= {self.target_kek_id}


async def count_by_kek(*, uow_factory: Callable[[], UnitOfWork]) -> dict[str, int]:
    """How many stored keys each KEK wraps."""
    async with uow_factory() as uow:
        rows = (
            await uow.session.execute(
                select(api_credentials.c.kek_id, func.count()).group_by(api_credentials.c.kek_id)
            )
        ).all()
    return {kek_id: int(count) for kek_id, count in rows}


async def rotate_kek(
    *, uow_factory: Callable[[], UnitOfWork], keyring: Keyring, batch_size: int = 200
) -> RotationReport:
    """Re-wrap every data key not yet under `keyring.current`; rows locked by others are left for a rerun."""
    report = RotationReport(target_kek_id=keyring.current.kek_id)
    skipped: list[uuid.UUID] = []
    while True:
        async with uow_factory() as uow:
            query = (
                select(
                    api_credentials.c.id,
                    api_credentials.c.user_id,
                    api_credentials.c.enc_key_blob,
                    api_credentials.c.wrapped_dek,
                    api_credentials.c.kek_id,
                )
                .where(api_credentials.c.kek_id != report.target_kek_id)
                .order_by(api_credentials.c.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
            if skipped:
                query = query.where(api_credentials.c.id.notin_(skipped))
            rows = (await uow.session.execute(query)).all()
            if not rows:
                break
            for row in rows:
                sealed = SealedSecret(
                    enc_key_blob=row.enc_key_blob, wrapped_dek=row.wrapped_dek, kek_id=row.kek_id
                )
                try:
                    new = await rewrap(sealed, keyring=keyring, credential_id=row.id, user_id=row.user_id)
                except SecretUnreadable as exc:
                    log.error(
                        "data key does not unwrap", credential_id=str(row.id), kek_id=row.kek_id, why=str(exc)
                    )
                    skipped.append(row.id)
                    report.unreadable.append(str(row.id))
                    continue
                await uow.session.execute(
                    update(api_credentials)
                    .where(api_credentials.c.id == row.id)
                    .values(wrapped_dek=new.wrapped_dek, kek_id=new.kek_id)
                )
                report.rewrapped += 1
            await uow.commit()
        log.info("re-wrapped a batch", rewrapped=report.rewrapped, target=report.target_kek_id)
    report.by_kek = await count_by_kek(uow_factory=uow_factory)
    return report
