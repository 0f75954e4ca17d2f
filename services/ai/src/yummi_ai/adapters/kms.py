"""The key-encryption key in AWS KMS: KMS encrypts and decrypts each data key with an EncryptionContext."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from yummi_ai.adapters.secrets import KekUnavailable, SecretUnreadable
from yummi_common.logging import get_logger

log = get_logger(__name__)

# KMS answers these when the blob or its context is wrong (a tampered or moved row), not when it is down.
UNREADABLE_CODES = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})


def kms_client(*, endpoint_url: str | None = None, region_name: str | None = None) -> Any:
    """A boto3 KMS client; region, credentials and endpoint default to the usual AWS settings."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("kms", endpoint_url=endpoint_url, region_name=region_name, config=config)


class KmsKek:
    """`KMS_KEY_ID` (key id, ARN or alias) wraps each data key; boto3 calls run in a worker thread."""

    def __init__(self, key_id: str, *, client: Any) -> None:
        self._key_id = key_id
        self._client = client
        self.kek_id = f"kms:{key_id}"

    async def wrap(self, dek: bytes, aad: Mapping[str, str]) -> bytes:
        response = await self._call(
            self._client.encrypt, KeyId=self._key_id, Plaintext=dek, EncryptionContext=dict(aad)
        )
        return bytes(response["CiphertextBlob"])

    async def unwrap(self, blob: bytes, aad: Mapping[str, str]) -> bytes:
        response = await self._call(
            self._client.decrypt, CiphertextBlob=blob, KeyId=self._key_id, EncryptionContext=dict(aad)
        )
        return bytes(response["Plaintext"])

    async def _call(self, method: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(method, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in UNREADABLE_CODES:
                raise SecretUnreadable(f"KMS refused the data key: {code}") from exc
            log.error("kms call failed", code=code, kek_id=self.kek_id)
            raise KekUnavailable(f"KMS answered {code}") from exc
        except BotoCoreError as exc:
            log.error("kms unreachable", error_type=type(exc).__name__, kek_id=self.kek_id)
            raise KekUnavailable("KMS is unreachable") from exc

    def __repr__(self) -> str:
        return f"KmsKek({self.kek_id})"
