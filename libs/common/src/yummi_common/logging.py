"""Structured logs: JSON lines (or console), with the request id and trace ids bound and secrets redacted."""

from __future__ import annotations

import asyncio
import atexit
import json as stdlib_json
import logging
import re
import sys
import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from opentelemetry import trace

from yummi_common.context import request_id

SENSITIVE_KEYS = re.compile(
    r"(pass(word|phrase)?|secret|token|authorization|api_?key|merchant_key|signature|card|cvv|pan|prompt|"
    r"cookie|set-cookie|master_key|dek|enc_key)",
    re.IGNORECASE,
)
# Keys the pattern above would catch that hold no secret (ids and token counts).
SAFE_KEYS = frozenset(
    {"event", "trace_id", "span_id", "prompt_tokens", "completion_tokens", "total_tokens", "max_tokens"}
)
BEARER = re.compile(r"(?i)bearer\s+[a-z0-9\-_\.=]+")
# Credentials that show up inside free text (an exception message, a URL): API keys and JWTs.
SECRET_TEXT = re.compile(
    r"\bsk-[A-Za-z0-9_\-]{16,}|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"
)
# What every match of BEARER or SECRET_TEXT contains: one search of this skips both for ordinary text.
_SECRET_HINT = re.compile(r"(?i:bearer)|sk-|eyJ")
REDACTED = "[redacted]"
# Key → whether it names a secret. Keys are nearly always names from the code, so this stays small; past
# the cap, new keys are checked each time instead of remembered.
_KEY_VERDICTS: dict[str, bool] = {}
_KEY_VERDICTS_MAX = 4096


def scrub_text(text: str) -> str:
    """Mask bearer tokens, API keys and JWTs inside a string."""
    if _SECRET_HINT.search(text) is None:
        return text
    text = BEARER.sub("Bearer " + REDACTED, text)
    return SECRET_TEXT.sub(REDACTED, text)


def _names_a_secret(key: str) -> bool:
    verdict = _KEY_VERDICTS.get(key)
    if verdict is None:
        verdict = key not in SAFE_KEYS and SENSITIVE_KEYS.search(key) is not None
        if len(_KEY_VERDICTS) < _KEY_VERDICTS_MAX:
            _KEY_VERDICTS[key] = verdict
    return verdict


def redact_value(key: str, value: Any) -> Any:
    """Redact a value when its key names a secret; recurse into mappings and lists."""
    if _names_a_secret(key):
        return REDACTED
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def redact_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: never let a secret, token or prompt reach a log line (the message included)."""
    return {k: redact_value(k, v) for k, v in event_dict.items()}


def redact_exception(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor, after the traceback is rendered: mask credentials quoted in it."""
    exception = event_dict.get("exception")
    if isinstance(exception, str):
        event_dict["exception"] = scrub_text(exception)
    return event_dict


def add_trace_ids(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current span's `trace_id` and `span_id` (hex), when a trace is active."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict


ErrorReporter = Callable[[Mapping[str, Any]], None]
_error_reporter: list[ErrorReporter] = []


def set_error_reporter(reporter: ErrorReporter | None) -> None:
    """Send error-level events to `reporter` too (Sentry, see yummi_common.telemetry); None stops it."""
    _error_reporter[:] = [reporter] if reporter is not None else []


def report_errors(_logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: hand error-level events (already redacted) to the error reporter, if any."""
    if _error_reporter and name in ("error", "critical", "exception"):
        try:
            _error_reporter[0](event_dict)
        except Exception:  # noqa: BLE001, S110 - reporting must never break logging
            pass
    return event_dict


def add_request_id(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    rid = request_id.get()
    if rid is not None:
        event_dict.setdefault("request_id", rid)
    return event_dict


def _dumps(event_dict: Any, **kwargs: Any) -> str:
    """One JSON line, by orjson (several times faster than the json module); json for what orjson refuses
    (integers past 64 bits)."""
    try:
        return orjson.dumps(
            event_dict, default=kwargs.get("default"), option=orjson.OPT_NON_STR_KEYS
        ).decode()
    except TypeError:
        return stdlib_json.dumps(event_dict, **kwargs)


class LoopBatchedLines:
    """Writes log lines to a stream; lines logged inside a running event loop go out together, with one write
    and flush at the end of the loop's current iteration, instead of one system call per line (a busy server
    ends several requests per iteration). Error lines, and lines logged outside a loop (start-up, threads,
    shutdown), are written at once, after whatever is pending; what is pending at exit is written then."""

    MAX_PENDING = 512

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._flush_on: asyncio.AbstractEventLoop | None = None
        atexit.register(self.flush)

    def line(self, text: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            if loop is None or len(self._pending) >= self.MAX_PENDING:
                self._write_now(text)
                return
            self._pending.append(text + "\n")
            if self._flush_on is not loop:  # none scheduled on this loop (or its loop was closed first)
                self._flush_on = loop
                loop.call_soon(self.flush)

    def line_now(self, text: str) -> None:
        with self._lock:
            self._write_now(text)

    def flush(self) -> None:
        with self._lock:
            self._flush_on = None
            if self._pending:
                self._stream.write("".join(self._pending))
                self._pending.clear()
                self._stream.flush()

    def _write_now(self, text: str) -> None:
        if self._pending:
            self._stream.write("".join(self._pending))
            self._pending.clear()
        self._stream.write(text + "\n")
        self._stream.flush()


class _BatchedLogger:
    """A structlog logger (the PrintLogger interface) over LoopBatchedLines."""

    def __init__(self, lines: LoopBatchedLines) -> None:
        self._lines = lines

    def msg(self, message: str) -> None:
        self._lines.line(message)

    def err(self, message: str) -> None:
        self._lines.line_now(message)

    log = debug = info = warn = warning = msg
    fatal = failure = error = critical = exception = err


def configure_logging(
    *, service: str, json: bool = True, level: str = "INFO", batch_in_loop: bool = False
) -> None:
    """Configure structlog and the stdlib root logger once per process.

    `batch_in_loop`: structlog lines logged inside a running event loop are written once per loop iteration
    (see LoopBatchedLines), for servers that log a line per request.
    """
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
        add_trace_ids,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *shared,
            report_errors,
            structlog.processors.format_exc_info,
            redact_exception,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=_logger_factory(batch_in_loop),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_exception,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    for noisy in ("uvicorn.access", "sqlalchemy.engine", "nats"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))


def _logger_factory(batch_in_loop: bool) -> Callable[..., Any]:
    if not batch_in_loop:
        return structlog.WriteLoggerFactory(sys.stderr)  # write + flush: cheaper than print
    logger = _BatchedLogger(LoopBatchedLines(sys.stderr))
    return lambda *_args: logger


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
