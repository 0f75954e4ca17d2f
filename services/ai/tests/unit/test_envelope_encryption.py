"""Envelope encryption of provider keys with a local KEK: binding to the row, rotation, the keyring."""

from __future__ import annotations

import base64
import dataclasses
import os
import uuid

import pytest

from yummi_ai.adapters.secrets import (
    DEV_ONLY_KEY,
    Keyring,
    LocalKek,
    SecretUnreadable,
    UnknownKek,
    keyring_from_settings,
    open_sealed,
    rewrap,
    seal,
)
from yummi_common.settings import Settings

KEY = "sk-proj-unit-test-secret-abcd"


async def sealed_for(keyring: Keyring):
    credential, user = uuid.uuid4(), uuid.uuid4()
    return await seal(KEY, keyring=keyring, credential_id=credential, user_id=user), credential, user


async def test_a_sealed_key_opens_for_its_own_credential_and_user():
    keyring = Keyring(LocalKek(os.urandom(32)))
    sealed, credential, user = await sealed_for(keyring)

    assert await open_sealed(sealed, keyring=keyring, credential_id=credential, user_id=user) == KEY
    assert KEY.encode() not in sealed.enc_key_blob and KEY.encode() not in sealed.wrapped_dek
    assert sealed.kek_id == keyring.current.kek_id


async def test_each_seal_uses_a_fresh_data_key_and_nonce():
    keyring = Keyring(LocalKek(os.urandom(32)))
    first, _, _ = await sealed_for(keyring)
    second, _, _ = await sealed_for(keyring)
    assert first.enc_key_blob[:12] != second.enc_key_blob[:12]
    assert first.wrapped_dek != second.wrapped_dek


@pytest.mark.parametrize("moved", ["user", "credential"])
async def test_a_blob_moved_to_another_user_or_credential_does_not_open(moved):
    keyring = Keyring(LocalKek(os.urandom(32)))
    sealed, credential, user = await sealed_for(keyring)
    if moved == "user":
        user = uuid.uuid4()
    else:
        credential = uuid.uuid4()
    with pytest.raises(SecretUnreadable):
        await open_sealed(sealed, keyring=keyring, credential_id=credential, user_id=user)


async def test_a_tampered_blob_or_a_swapped_data_key_does_not_open():
    keyring = Keyring(LocalKek(os.urandom(32)))
    sealed, credential, user = await sealed_for(keyring)
    other, _, _ = await sealed_for(keyring)
    flipped = bytes([sealed.enc_key_blob[-1] ^ 1])
    for broken in (
        dataclasses.replace(sealed, enc_key_blob=sealed.enc_key_blob[:-1] + flipped),
        dataclasses.replace(sealed, wrapped_dek=other.wrapped_dek),
        dataclasses.replace(sealed, wrapped_dek=b"short"),
    ):
        with pytest.raises(SecretUnreadable):
            await open_sealed(broken, keyring=keyring, credential_id=credential, user_id=user)


async def test_rewrap_keeps_the_ciphertext_and_moves_the_data_key_to_the_new_kek():
    old, new = LocalKek(os.urandom(32)), LocalKek(os.urandom(32))
    sealed, credential, user = await sealed_for(Keyring(old))

    moved = await rewrap(sealed, keyring=Keyring(new, old), credential_id=credential, user_id=user)

    assert moved.enc_key_blob == sealed.enc_key_blob
    assert (moved.kek_id, moved.wrapped_dek != sealed.wrapped_dek) == (new.kek_id, True)
    assert await open_sealed(moved, keyring=Keyring(new), credential_id=credential, user_id=user) == KEY
    with pytest.raises(UnknownKek):
        await open_sealed(sealed, keyring=Keyring(new), credential_id=credential, user_id=user)


def test_kek_ids_are_stable_short_fingerprints_that_do_not_reveal_the_key():
    raw = os.urandom(32)
    kek = LocalKek(raw)
    assert kek.kek_id == LocalKek(raw).kek_id != LocalKek(os.urandom(32)).kek_id
    assert kek.kek_id.startswith("local:") and len(kek.kek_id) == len("local:") + 16
    assert raw.hex()[:16] not in kek.kek_id
    assert "key" not in repr(kek).lower().replace("localkek", "")


def test_the_keyring_comes_from_the_current_and_previous_master_keys():
    current, previous = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()
    ring = keyring_from_settings(
        Settings(environment="test", secrets_master_key=current, secrets_master_key_previous=previous)
    )
    assert ring.current.kek_id == LocalKek.from_base64(current).kek_id
    assert ring.get(LocalKek.from_base64(previous).kek_id) is not None


def test_without_a_master_key_dev_and_test_use_a_dev_only_key(monkeypatch):
    monkeypatch.delenv("SECRETS_MASTER_KEY", raising=False)
    monkeypatch.delenv("KMS_KEY_ID", raising=False)
    ring = keyring_from_settings(Settings(environment="dev", secrets_master_key=None, kms_key_id=None))
    assert ring.current.kek_id == LocalKek(DEV_ONLY_KEY).kek_id


def test_a_malformed_master_key_is_refused_at_start():
    with pytest.raises(ValueError, match="SECRETS_MASTER_KEY_PREVIOUS"):
        Settings(environment="test", secrets_master_key_previous=base64.b64encode(b"short").decode())
