"""Domain errors every service raises; gRPC maps them to status codes, the gateway to HTTP problems."""

from __future__ import annotations

from typing import Any


class YummiError(Exception):
    """Base of the errors a caller may see; `message` is safe to show."""

    code = "INTERNAL"

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class InvalidArgument(YummiError):
    code = "INVALID_ARGUMENT"


class NotFound(YummiError):
    code = "NOT_FOUND"


class Conflict(YummiError):
    """A state conflict (e.g. an illegal order transition)."""

    code = "FAILED_PRECONDITION"


class AlreadyExists(YummiError):
    code = "ALREADY_EXISTS"


class PermissionDenied(YummiError):
    code = "PERMISSION_DENIED"


class ResourceExhausted(YummiError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(YummiError):
    code = "UNAVAILABLE"


class Unimplemented(YummiError):
    code = "UNIMPLEMENTED"
