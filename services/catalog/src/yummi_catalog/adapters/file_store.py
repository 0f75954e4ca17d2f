"""The dataset file store: raw catalog files under a local directory (`CATALOG_STORE_DIR`), by object key."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from yummi_common.settings import Settings

_CHUNK = 1024 * 1024


def dataset_object_key(dataset_id: uuid.UUID) -> str:
    """Where a dataset's catalog.json lives in the store."""
    return f"datasets/{dataset_id}/catalog.json"


@dataclass(frozen=True)
class StoredFile:
    object_key: str
    size_bytes: int
    checksum_sha256: str


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

    async def read_bytes(self, object_key: str) -> bytes:
        return await asyncio.to_thread(self.path_of(object_key).read_bytes)

    async def delete(self, object_key: str) -> None:
        await asyncio.to_thread(self.path_of(object_key).unlink, missing_ok=True)

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
