"""Response classes that serialise in one step with orjson (bytes pass through untouched)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"


def dump_json(content: Any) -> bytes:
    return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class JSONBytes(JSONResponse):
    """JSON rendered by orjson; pre-serialised `bytes` are sent as they are.

    A JSONResponse, so FastAPI documents each route's response_model instead of a bare string.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return dump_json(content)


class ProblemResponse(JSONBytes):
    media_type = PROBLEM_MEDIA_TYPE
