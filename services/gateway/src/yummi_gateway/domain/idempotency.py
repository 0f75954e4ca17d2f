"""Idempotency-Key rules: which requests honour it, the key format, the request fingerprint, what is kept."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

import orjson

RESULT_TTL_SECONDS = 24 * 3600
# How long a claim stands while the first request runs. Longer than any gateway deadline (AI calls: 60 s),
# so a slow request is never run twice; a gateway that died mid-request frees its keys after this.
RUNNING_LEASE_SECONDS = 300
MAX_STORED_BODY_BYTES = 1024 * 1024

IDEMPOTENT_PATHS = frozenset({"/v1/orders", "/v1/basket/checkout", "/v1/payments/payfast/initiate"})
IDEMPOTENT_PREFIX = "/v1/ai/"
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
# Worth replaying: successes and final refusals. Not kept (the key is released so a retry runs again):
# 5xx (our failure or a dependency's), and answers that say "not now" (409 conflict, 429, 408, 425).
_NOT_KEPT = frozenset({408, 409, 425, 429})


class InvalidKey(ValueError):
    """The Idempotency-Key header is empty, too long or not printable ASCII."""


def honours_key(method: str, path: str) -> bool:
    """Orders, checkout, PayFast initiation and every AI POST take an Idempotency-Key."""
    return method == "POST" and (path in IDEMPOTENT_PATHS or path.startswith(IDEMPOTENT_PREFIX))


def validate_key(value: str) -> str:
    """1..255 printable ASCII characters."""
    if not _KEY.fullmatch(value) or not value.strip():
        raise InvalidKey("Idempotency-Key must be 1 to 255 printable ASCII characters.")
    return value


def fingerprint(*, method: str, path: str, query: bytes, body: bytes) -> str:
    """SHA-256 of the request: JSON bodies canonically (key order and spacing do not matter)."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body.strip() else b""
    except orjson.JSONDecodeError:
        canonical = body  # the route refuses it; the raw bytes still tell two such requests apart
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def is_kept(status: int) -> bool:
    """Whether a first response is final and replayed to retries."""
    return status < 500 and status not in _NOT_KEPT


@dataclass(frozen=True)
class StoredResponse:
    status: int
    content_type: str | None
    body: bytes


@dataclass(frozen=True)
class Record:
    """What a key holds: `running` (claimed by `owner`) or `done` with the response to replay."""

    state: Literal["running", "done"]
    fingerprint: str
    owner: str = ""
    response: StoredResponse | None = None

    def encode(self) -> bytes:
        meta: dict[str, object] = {"state": self.state, "fp": self.fingerprint}
        body = b""
        if self.state == "running":
            meta["owner"] = self.owner
        elif self.response is not None:
            meta["status"] = self.response.status
            meta["content_type"] = self.response.content_type
            body = self.response.body
        return orjson.dumps(meta) + b"\n" + body

    @classmethod
    def decode(cls, raw: bytes) -> Record:
        head, _, body = raw.partition(b"\n")
        meta = orjson.loads(head)
        if meta["state"] == "running":
            return cls(state="running", fingerprint=meta["fp"], owner=meta.get("owner", ""))
        response = StoredResponse(
            status=int(meta["status"]), content_type=meta.get("content_type"), body=body
        )
        return cls(state="done", fingerprint=meta["fp"], response=response)
