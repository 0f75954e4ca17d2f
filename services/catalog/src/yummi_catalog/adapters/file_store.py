"""Where raw dataset files live: a local directory (`CATALOG_STORE_DIR`, the default) or an S3 bucket.

Both stores keep files by object key (`datasets/<dataset id>/...`) and offer the same operations; only object
storage can give the client a presigned URL to upload to directly (`presigned_upload`), the local store is
uploaded to through the gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

from yummi_common.settings import Settings

CHUNK_BYTES = 1024 * 1024
CONTENT_TYPE = "application/json"


def dataset_prefix(dataset_id: uuid.UUID) -> str:
    """Every file of one dataset lives under this key prefix."""
    return f"datasets/{dataset_id}/"


def dataset_object_key(dataset_id: uuid.UUID) -> str:
    """Where a directly imported dataset's catalog.json lives in the store."""
    return f"{dataset_prefix(dataset_id)}catalog.json"


def upload_object_key(dataset_id: uuid.UUID) -> str:
    """A fresh key for one upload attempt: a second upload never rewrites a file that is being read."""
    return f"{dataset_prefix(dataset_id)}upload-{uuid.uuid4().hex}.json"


@dataclass(frozen=True)
class StoredFile:
    object_key: str
    size_bytes: int
    checksum_sha256: str
    etag: str | None = None


@dataclass(frozen=True)
class ObjectInfo:
    size_bytes: int
    etag: str | None


@dataclass(frozen=True)
class UploadTarget:
    """Where and how the client sends a dataset's bytes."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


class ObjectChanged(Exception):
    """The stored object is no longer the version that was verified (someone uploaded again)."""


class DatasetStore(Protocol):
    """The operations the catalog needs from a file store (blocking ones are marked: run them in a thread)."""

    async def put_bytes(self, object_key: str, content: bytes) -> StoredFile: ...

    async def put_stream(
        self, object_key: str, chunks: AsyncIterator[bytes], *, max_bytes: int
    ) -> StoredFile: ...

    def presigned_upload(self, object_key: str) -> UploadTarget | None: ...

    async def stat(self, object_key: str) -> ObjectInfo | None: ...

    async def hash_object(self, object_key: str, *, etag: str | None) -> StoredFile: ...

    def open(self, object_key: str, *, etag: str | None) -> BinaryIO:
        """Blocking: a reader of the object (FileNotFoundError, or ObjectChanged when `etag` is outdated)."""
        ...

    async def delete(self, object_key: str) -> None: ...

    async def delete_dataset(self, dataset_id: uuid.UUID) -> None: ...


def store_from_settings(settings: Settings) -> DatasetStore:
    """The S3 bucket when `CATALOG_S3_BUCKET` is set, else the local directory `CATALOG_STORE_DIR`."""
    if settings.catalog_s3_bucket:
        from yummi_catalog.adapters.s3_store import S3FileStore

        return S3FileStore.from_settings(settings)
    return LocalFileStore.from_settings(settings)


class LocalFileStore:
    """Files under one root directory; writes go to a temporary name and are renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalFileStore:
        """The store at `CATALOG_STORE_DIR` (default `.state/catalog-store`, relative to the working dir)."""
        return cls(Path(settings.catalog_store_dir))

    def path_of(self, object_key: str) -> Path:
        path = (self.root / object_key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"object key {object_key!r} escapes the store")
        return path

    async def put_bytes(self, object_key: str, content: bytes) -> StoredFile:
        """Store `content` under `object_key` (replacing any earlier file)."""
        await asyncio.to_thread(self._write_bytes, object_key, content)
        return StoredFile(object_key, len(content), hashlib.sha256(content).hexdigest())

    async def put_stream(
        self, object_key: str, chunks: AsyncIterator[bytes], *, max_bytes: int
    ) -> StoredFile:
        """Stream chunks into `object_key`; raises ValueError (and keeps nothing) past `max_bytes`."""
        final = self.path_of(object_key)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
        await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        handle = await asyncio.to_thread(open, tmp, "wb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise ValueError(f"the file is larger than {max_bytes} bytes")
                digest.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(handle.flush)
            await asyncio.to_thread(os.fsync, handle.fileno())
        except BaseException:
            handle.close()
            tmp.unlink(missing_ok=True)
            raise
        handle.close()
        await asyncio.to_thread(os.replace, tmp, final)
        return StoredFile(object_key, size, digest.hexdigest())

    def presigned_upload(self, object_key: str) -> UploadTarget | None:
        return None  # the client uploads through the gateway

    async def stat(self, object_key: str) -> ObjectInfo | None:
        try:
            size = (await asyncio.to_thread(self.path_of(object_key).stat)).st_size
        except FileNotFoundError:
            return None
        return ObjectInfo(size_bytes=size, etag=None)

    async def hash_object(self, object_key: str, *, etag: str | None) -> StoredFile:
        return await asyncio.to_thread(self._hash, object_key)

    def open(self, object_key: str, *, etag: str | None) -> BinaryIO:
        return open(self.path_of(object_key), "rb")  # noqa: SIM115 - the caller closes it

    async def delete(self, object_key: str) -> None:
        await asyncio.to_thread(self.path_of(object_key).unlink, missing_ok=True)

    async def delete_dataset(self, dataset_id: uuid.UUID) -> None:
        await asyncio.to_thread(shutil.rmtree, self.path_of(dataset_prefix(dataset_id)), ignore_errors=True)

    def _hash(self, object_key: str) -> StoredFile:
        digest = hashlib.sha256()
        size = 0
        with open(self.path_of(object_key), "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                size += len(chunk)
                digest.update(chunk)
        return StoredFile(object_key, size, digest.hexdigest())

    def _write_bytes(self, object_key: str, content: bytes) -> None:
        final = self.path_of(object_key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
        try:
            with open(tmp, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
