"""Envelope encryption of users' provider keys: a fresh AES-256-GCM data key per credential, wrapped by a KEK.

The key-encryption key (KEK) is a local AES-256 key (`SECRETS_MASTER_KEY`) or a KMS key (`KMS_KEY_ID`),
behind the `KeyEncryptionKey` protocol. A keyring holds the current KEK (which wraps new data keys) and the
ones still readable during a rotation (`SECRETS_MASTER_KEY_PREVIOUS`). Both layers bind the credential id and
the user id as associated data, so a blob moved to another row or another user does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yummi_common.logging import get_logger
from yummi_common.settings import Settings

log = get_logger(__name__)

NONCE_BYTES = 12
KEY_BYTES = 32
AAD_PREFIX = b"yummi.ai.credential.v1\0"
DEV_ONLY_KEY = hashlib.sha256(b"yummi dev-only key-encryption key; never used outside dev/test").digest()


class SecretUnreadable(Exception):
    """A blob did not decrypt: a wrong key, a tampered row, or a row copied to another credential or user."""


class UnknownKek(SecretUnreadable):
    """The row was wrapped by a key-encryption key this process does not hold."""


class KekUnavailable(Exception):
    """The key-encryption service (KMS) did not answer."""


class KeyEncryptionKey(Protocol):
    """Wraps and unwraps data keys; `aad` is bound to the wrapped key (KMS: the EncryptionContext)."""

    kek_id: str

    async def wrap(self, dek: bytes, aad: Mapping[str, str]) -> bytes: ...

    async def unwrap(self, blob: bytes, aad: Mapping[str, str]) -> bytes: ...


def encryption_context(*, credential_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, str]:
    """What a credential's ciphertexts are bound to."""
    return {"credential_id": str(credential_id), "user_id": str(user_id)}


def aad_bytes(aad: Mapping[str, str]) -> bytes:
    return AAD_PREFIX + orjson.dumps(dict(aad), option=orjson.OPT_SORT_KEYS)


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) <= NONCE_BYTES:
        raise SecretUnreadable("ciphertext too short")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise SecretUnreadable("authentication tag mismatch") from exc


def fingerprint(key: bytes) -> str:
    """A short, non-reversible name for a local key (the `kek_id` stored with each row)."""
    return hashlib.sha256(b"yummi.ai.kek-fingerprint\0" + key).hexdigest()[:16]


class LocalKek:
    """AES-256-GCM key wrap under a 32-byte key from the environment."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a key-encryption key is 32 bytes")
        self._key = key
        self.kek_id = f"local:{fingerprint(key)}"

    @classmethod
    def from_base64(cls, value: str) -> LocalKek:
        return cls(base64.b64decode(value, validate=True))

    async def wrap(self, dek: bytes, aad: Mapping[str, str]) -> bytes:
        return _seal(self._key, dek, aad_bytes(aad))

    async def unwrap(self, blob: bytes, aad: Mapping[str, str]) -> bytes:
        return _open(self._key, blob, aad_bytes(aad))

    def __repr__(self) -> str:
        return f"LocalKek({self.kek_id})"


class Keyring:
    """The current KEK and every one still readable; KMS keys other than the current are reached by id."""

    def __init__(
        self,
        current: KeyEncryptionKey,
        *readable: KeyEncryptionKey,
        kms_key: Callable[[str], KeyEncryptionKey] | None = None,
    ) -> None:
        self.current = current
        self._keys = {k.kek_id: k for k in (*readable, current)}
        self._kms_key = kms_key

    @property
    def kek_ids(self) -> list[str]:
        return list(self._keys)

    def get(self, kek_id: str) -> KeyEncryptionKey:
        key = self._keys.get(kek_id)
        if key is None and self._kms_key is not None and kek_id.startswith("kms:"):
            key = self._keys[kek_id] = self._kms_key(kek_id.removeprefix("kms:"))
        if key is None:
            raise UnknownKek(f"key-encryption key {kek_id} is not configured")
        return key


@dataclass(frozen=True)
class SealedSecret:
    """A credential as stored: the key under its data key, and that data key under the KEK `kek_id`."""

    enc_key_blob: bytes
    wrapped_dek: bytes
    kek_id: str


async def seal(
    plaintext: str, *, keyring: Keyring, credential_id: uuid.UUID, user_id: uuid.UUID
) -> SealedSecret:
    """Encrypt under a fresh data key, wrapped by the current KEK."""
    aad = encryption_context(credential_id=credential_id, user_id=user_id)
    dek = AESGCM.generate_key(bit_length=256)
    blob = _seal(dek, plaintext.encode(), aad_bytes(aad))
    wrapped = await keyring.current.wrap(dek, aad)
    return SealedSecret(enc_key_blob=blob, wrapped_dek=wrapped, kek_id=keyring.current.kek_id)


async def open_sealed(
    sealed: SealedSecret, *, keyring: Keyring, credential_id: uuid.UUID, user_id: uuid.UUID
) -> str:
    """The plaintext, or SecretUnreadable when a layer does not authenticate for this credential and user."""
    aad = encryption_context(credential_id=credential_id, user_id=user_id)
    dek = await keyring.get(sealed.kek_id).unwrap(sealed.wrapped_dek, aad)
    try:
        return _open(dek, sealed.enc_key_blob, aad_bytes(aad)).decode()
    except UnicodeDecodeError as exc:
        raise SecretUnreadable("plaintext is not text") from exc


async def rewrap(
    sealed: SealedSecret, *, keyring: Keyring, credential_id: uuid.UUID, user_id: uuid.UUID
) -> SealedSecret:
    """The same ciphertext with its data key re-wrapped by the current KEK; the credential stays encrypted."""
    aad = encryption_context(credential_id=credential_id, user_id=user_id)
    dek = await keyring.get(sealed.kek_id).unwrap(sealed.wrapped_dek, aad)
    wrapped = await keyring.current.wrap(dek, aad)
    return SealedSecret(enc_key_blob=sealed.enc_key_blob, wrapped_dek=wrapped, kek_id=keyring.current.kek_id)


def keyring_from_settings(settings: Settings) -> Keyring:
    """KMS when `KMS_KEY_ID` is set, else `SECRETS_MASTER_KEY`; `_PREVIOUS` (and the local key under KMS) stay
    readable. In dev/test without either, a fixed dev-only key, with a warning."""
    local = [
        LocalKek.from_base64(value)
        for value in (settings.secrets_master_key, settings.secrets_master_key_previous)
        if value
    ]
    if settings.kms_key_id:
        from yummi_ai.adapters.kms import KmsKek, kms_client

        client = kms_client()
        return Keyring(
            KmsKek(settings.kms_key_id, client=client),
            *local,
            kms_key=lambda key_id: KmsKek(key_id, client=client),
        )
    if local:
        return Keyring(local[0], *local[1:])
    if settings.environment not in ("dev", "test"):
        raise RuntimeError("SECRETS_MASTER_KEY or KMS_KEY_ID is required outside dev/test")
    log.warning(
        "SECRETS_MASTER_KEY is not set: stored provider keys are encrypted under a dev-only key",
        environment=settings.environment,
    )
    return Keyring(LocalKek(DEV_ONLY_KEY))
