"""HTTP content negotiation and validators: the encoding a client accepts, weak ETags and If-None-Match."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def accepted_encoding(accept_encoding: str | None, available: Sequence[str]) -> str | None:
    """The first of `available` (our preference order) the client accepts with the highest q; None if none."""
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[coding] = q
    best: str | None = None
    best_q = 0.0
    for coding in available:
        q = weights.get(coding, weights.get("*", 0.0))
        if q > best_q:
            best, best_q = coding, q
    return best


def weak_etag(*parts: str) -> str:
    """A weak validator over the parts (semantically equal bodies, whatever their encoding)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f'W/"{digest}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of If-None-Match against our ETag (`*` matches anything)."""
    if not if_none_match:
        return False
    ours = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == ours:
            return True
    return False
