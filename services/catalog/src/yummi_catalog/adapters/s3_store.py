"""Dataset files in an S3 bucket (AWS, or R2/MinIO by `CATALOG_S3_ENDPOINT_URL`), through boto3 in threads.

Clients upload large files straight to the bucket with a presigned PUT (SigV4). Credentials come from boto3's
usual chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, or the instance's role.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, cast

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from yummi_catalog.adapters.file_store import (
    CHUNK_BYTES,
    CONTENT_TYPE,
    ObjectChanged,
    ObjectInfo,
    StoredFile,
    UploadTarget,
    dataset_prefix,
)
from yummi_common.errors import Unavailable
from yummi_common.logging import get_logger
from yummi_common.settings import Settings

log = get_logger(__name__)

_MISSING = {"404", "NoSuchKey", "NotFound"}
_CHANGED = {"412", "PreconditionFailed"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3FileStore:
    """One bucket; every call runs boto3 (thread-safe clients) in a worker thread."""

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        upload_expires_seconds: int = 3600,
    ) -> None:
        self.bucket = bucket
        self.upload_expires_seconds = upload_expires_seconds
        config = Config(
            signature_version="s3v4",
            # Path-style URLs work on MinIO/R2 endpoints without wildcard DNS; AWS picks its own style.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        self._client: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)

    @classmethod
    def from_settings(cls, settings: Settings) -> S3FileStore:
        assert settings.catalog_s3_bucket  # noqa: S101 - store_from_settings only calls this with a bucket
        return cls(
            bucket=settings.catalog_s3_bucket,
            endpoint_url=settings.catalog_s3_endpoint_url or None,
            region=settings.catalog_s3_region or None,
            upload_expires_seconds=settings.catalog_s3_upload_expires_seconds,
        )

    async def put_bytes(self, object_key: str, content: bytes) -> StoredFile:
        reply = await self._call(
            self._client.put_object,
            Bucket=self.bucket,
            Key=object_key,
            Body=content,
            ContentType=CONTENT_TYPE,
        )
        return StoredFile(object_key, len(content), hashlib.sha256(content).hexdigest(), reply.get("ETag"))

    async def put_stream(
        self, object_key: str, chunks: AsyncIterator[bytes], *, max_bytes: int
    ) -> StoredFile:
        """Spool the stream to a temporary file (hashing it), then upload it (multipart when large)."""
        digest = hashlib.sha256()
        size = 0
        with tempfile.TemporaryFile() as spool:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise ValueError(f"the file is larger than {max_bytes} bytes")
                digest.update(chunk)
                await asyncio.to_thread(spool.write, chunk)
            await asyncio.to_thread(spool.seek, 0)
            await self._call(
                self._client.upload_fileobj,
                spool,
                self.bucket,
                object_key,
                ExtraArgs={"ContentType": CONTENT_TYPE},
            )
        info = await self.stat(object_key)
        return StoredFile(object_key, size, digest.hexdigest(), info.etag if info else None)

    def presigned_upload(self, object_key: str) -> UploadTarget:
        """A presigned PUT the client sends the file's bytes to, with the headers it must send along."""
        try:
            url = self._client.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": object_key, "ContentType": CONTENT_TYPE},
                ExpiresIn=self.upload_expires_seconds,
                HttpMethod="PUT",
            )
        except BotoCoreError as exc:  # e.g. no credentials configured
            log.error("cannot presign a dataset upload", error=str(exc))
            raise Unavailable("the dataset store is not available") from None
        return UploadTarget(method="PUT", url=url, headers={"Content-Type": CONTENT_TYPE})

    async def stat(self, object_key: str) -> ObjectInfo | None:
        try:
            head = await self._call(self._client.head_object, Bucket=self.bucket, Key=object_key)
        except FileNotFoundError:
            return None
        return ObjectInfo(size_bytes=int(head["ContentLength"]), etag=head.get("ETag"))

    async def hash_object(self, object_key: str, *, etag: str | None) -> StoredFile:
        """Stream the object once and hash it (bucket checksums are not a SHA-256 of the whole file)."""
        return cast(StoredFile, await self._call(self._hash, object_key, etag))

    def open(self, object_key: str, *, etag: str | None) -> BinaryIO:
        try:
            params = {"Bucket": self.bucket, "Key": object_key}
            if etag:
                params["IfMatch"] = etag
            return cast(BinaryIO, self._client.get_object(**params)["Body"])
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise FileNotFoundError(object_key) from None
            if _code(exc) in _CHANGED:
                raise ObjectChanged(object_key) from None
            raise

    async def delete(self, object_key: str) -> None:
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=object_key)

    async def delete_dataset(self, dataset_id: uuid.UUID) -> None:
        await self._call(self._delete_prefix, dataset_prefix(dataset_id))

    def _hash(self, object_key: str, etag: str | None) -> StoredFile:
        digest = hashlib.sha256()
        size = 0
        body = self.open(object_key, etag=etag)
        try:
            while chunk := body.read(CHUNK_BYTES):
                size += len(chunk)
                digest.update(chunk)
        finally:
            body.close()
        return StoredFile(object_key, size, digest.hexdigest(), etag)

    def _delete_prefix(self, prefix: str) -> None:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    async def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """A blocking boto3 call in a thread; a missing object is FileNotFoundError, an outage Unavailable."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise FileNotFoundError(str(kwargs.get("Key", ""))) from None
            if _code(exc) in _CHANGED:
                raise ObjectChanged(str(kwargs.get("Key", ""))) from None
            log.error("dataset store call failed", error=str(exc))
            raise Unavailable("the dataset store is not available") from None
        except BotoCoreError as exc:
            log.error("dataset store unreachable", error=str(exc))
            raise Unavailable("the dataset store is not available") from None
