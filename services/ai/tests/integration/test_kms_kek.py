"""The KMS key-encryption key through boto3 against moto's KMS server (real HTTP, the AWS wire protocol)."""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import Iterator

import pytest

from yummi_ai.adapters.kms import KmsKek, kms_client
from yummi_ai.adapters.secrets import (
    KekUnavailable,
    Keyring,
    LocalKek,
    SecretUnreadable,
    keyring_from_settings,
    open_sealed,
    rewrap,
    seal,
)
from yummi_common.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

REGION = "af-south-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def kms_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # moto accepts any
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def kms(kms_endpoint: str):
    return kms_client(endpoint_url=kms_endpoint, region_name=REGION)


@pytest.fixture
def kms_key(kms) -> str:
    return str(kms.create_key(Description="yummi test KEK")["KeyMetadata"]["KeyId"])


async def test_kms_wraps_data_keys_and_the_credential_opens_for_its_owner_only(kms, kms_key):
    keyring = Keyring(KmsKek(kms_key, client=kms))
    credential, owner = uuid.uuid4(), uuid.uuid4()

    sealed = await seal("sk-kms-protected-1234", keyring=keyring, credential_id=credential, user_id=owner)

    assert sealed.kek_id == f"kms:{kms_key}"
    assert b"sk-kms" not in sealed.enc_key_blob + sealed.wrapped_dek
    opened = await open_sealed(sealed, keyring=keyring, credential_id=credential, user_id=owner)
    assert opened == "sk-kms-protected-1234"
    with pytest.raises(SecretUnreadable):  # KMS checks the EncryptionContext
        await open_sealed(sealed, keyring=keyring, credential_id=credential, user_id=uuid.uuid4())


async def test_rotation_moves_data_keys_from_the_local_key_to_kms_and_between_kms_keys(kms, kms_key):
    local = LocalKek(os.urandom(32))
    credential, owner = uuid.uuid4(), uuid.uuid4()
    sealed = await seal(
        "sk-moving-to-kms-5678", keyring=Keyring(local), credential_id=credential, user_id=owner
    )

    to_kms = await rewrap(
        sealed, keyring=Keyring(KmsKek(kms_key, client=kms), local), credential_id=credential, user_id=owner
    )
    second_key = str(kms.create_key()["KeyMetadata"]["KeyId"])
    ring = Keyring(
        KmsKek(second_key, client=kms), kms_key=lambda key_id: KmsKek(key_id, client=kms)
    )  # the first KMS key is reached by the id stored with the row
    to_second = await rewrap(to_kms, keyring=ring, credential_id=credential, user_id=owner)

    assert (to_kms.kek_id, to_second.kek_id) == (f"kms:{kms_key}", f"kms:{second_key}")
    assert to_second.enc_key_blob == sealed.enc_key_blob
    only_kms = Keyring(KmsKek(second_key, client=kms))
    assert await open_sealed(to_second, keyring=only_kms, credential_id=credential, user_id=owner) == (
        "sk-moving-to-kms-5678"
    )


async def test_an_unreachable_kms_is_kek_unavailable_not_unreadable():
    dead = kms_client(endpoint_url=f"http://127.0.0.1:{free_port()}", region_name=REGION)
    with pytest.raises(KekUnavailable):
        await KmsKek("alias/yummi", client=dead).wrap(os.urandom(32), {"credential_id": "c", "user_id": "u"})


async def test_settings_with_kms_key_id_make_kms_the_current_kek_and_keep_local_keys_readable(
    kms_endpoint, kms_key
):
    raw = os.urandom(32)
    os.environ["AWS_ENDPOINT_URL_KMS"] = kms_endpoint
    os.environ["AWS_DEFAULT_REGION"] = REGION
    try:
        settings = Settings(kms_key_id=kms_key, secrets_master_key=base64.b64encode(raw).decode())
        ring = keyring_from_settings(settings)
    finally:
        os.environ.pop("AWS_ENDPOINT_URL_KMS")
        os.environ.pop("AWS_DEFAULT_REGION")
    assert ring.current.kek_id == f"kms:{kms_key}"
    assert ring.get(LocalKek(raw).kek_id).kek_id == LocalKek(raw).kek_id
