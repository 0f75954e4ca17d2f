"""Structured logs: JSON lines (or console), with the request id bound and secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from yummi_common.context import request_id

SENSITIVE_KEYS = re.compile(
    r"(pass(word|phrase)?|secret|token|authorization|api_?key|merchant_key|signature|card|cvv|pan|prompt|"
    r"cookie|set-cookie|master_key|dek|enc_key)",
    re.IGNORECASE,
)
BEARER = re.compile(r"(?i)bearer\s+[a-z0-9\-_\.=]+")
REDACTED = "[redacted]"


def redact_value(key: str, value: Any) -> Any:
    """Redact a value when its key names a secret; recurse into mappings and lists."""
    if SENSITIVE_KEYS.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    if isinstance(value, str):
        return BEARER.sub("Bearer " + REDACTED, value)
    return value


def redact_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: never let a secret, token or prompt reach a log line."""
    return {k: (v if k == "event" else redact_value(k, v)) for k, v in event_dict.items()}


def add_request_id(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    rid = request_id.get()
    if rid is not None:
        event_dict.setdefault("request_id", rid)
    return event_dict


def configure_logging(*, service: str, json: bool = True, level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    for noisy in ("uvicorn.access", "sqlalchemy.engine", "nats"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
