"""The log redaction processor keeps secrets, tokens and prompts out of every log line, structlog's and
stdlib's alike, and lines logged inside a span carry its trace and span ids."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from yummi_common.logging import REDACTED, configure_logging, get_logger, redact_secrets


def test_secret_keys_are_redacted_at_any_depth() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "calling payfast",
            "passphrase": "jt7NOE43FZPn",
            "fields": {"merchant_key": "46f0cd694581a", "amount": "10.00", "signature": "abc"},
            "messages": [{"prompt": "my secret dinner plan"}],
            "api_key": "sk-live-123",
        },
    )
    assert event["passphrase"] == REDACTED
    assert event["fields"] == {"merchant_key": REDACTED, "amount": "10.00", "signature": REDACTED}
    assert event["messages"] == [{"prompt": REDACTED}]
    assert event["api_key"] == REDACTED
    assert event["event"] == "calling payfast"


def test_bearer_tokens_inside_strings_are_redacted() -> None:
    event = redact_secrets(None, "info", {"event": "x", "header": "Bearer eyJhbGciOi.abc.def"})
    assert "eyJ" not in event["header"]


Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], Lines]]:
    """Configures logging as a service does (JSON to stderr, so call it inside the test, where stderr is
    captured) and returns a reader of the lines written; the previous configuration is restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level

    def start() -> Lines:
        configure_logging(service="redaction-test", json=True, level="INFO")
        return lambda: [
            json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
        ]

    yield start
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


SECRETS = (
    "jt7NOE43FZPn",
    "46f0cd694581a",
    "sk-live-abcdefghijklmnop",
    "eyJhbGciOiJub25lIn0",
    "dinner plan",
    "4111",
)


def test_a_structlog_line_written_to_stderr_carries_no_secret(json_logs: Callable[[], Lines]) -> None:
    lines = json_logs()
    get_logger("yummi.test").info(
        "calling payfast with Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyIn0.",
        passphrase="jt7NOE43FZPn",
        fields={"merchant_key": "46f0cd694581a", "amount": "10.00"},
        headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyIn0."},
        prompt="my secret dinner plan",
        card_number="4111111111111111",
        note="retrying with key sk-live-abcdefghijklmnop",
        prompt_tokens=12,
    )

    (line,) = lines()
    raw = json.dumps(line)
    assert not [secret for secret in SECRETS if secret in raw]
    assert line["fields"]["amount"] == "10.00"
    assert line["prompt_tokens"] == 12, "token counts are not secrets"
    assert line["service"] == "redaction-test"


def test_a_stdlib_line_and_its_traceback_carry_no_secret(json_logs: Callable[[], Lines]) -> None:
    emitted = json_logs()
    std = logging.getLogger("some.library")
    std.warning("auth header was Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyIn0.")
    try:
        raise RuntimeError("upstream refused key sk-live-abcdefghijklmnop")
    except RuntimeError:
        std.exception("call failed")
        get_logger("yummi.test").exception("call failed too")

    lines = emitted()
    assert [line["event"] for line in lines] == [
        "auth header was Bearer [redacted]",
        "call failed",
        "call failed too",
    ]
    raw = json.dumps(lines)
    assert not [secret for secret in SECRETS if secret in raw]
    assert "RuntimeError: upstream refused key [redacted]" in lines[1]["exception"]
    assert "RuntimeError: upstream refused key [redacted]" in lines[2]["exception"]


def test_a_line_logged_inside_a_span_names_its_trace_and_span(json_logs: Callable[[], Lines]) -> None:
    lines = json_logs()
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("work") as span:
        get_logger("yummi.test").info("inside")
        logging.getLogger("some.library").warning("inside too")
    get_logger("yummi.test").info("outside")

    inside, inside_std, outside = lines()
    ctx = span.get_span_context()
    for line in (inside, inside_std):
        assert line["trace_id"] == format(ctx.trace_id, "032x")
        assert line["span_id"] == format(ctx.span_id, "016x")
    assert "trace_id" not in outside


class Recorder:
    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        self.flushes += 1


def test_lines_of_one_loop_iteration_go_out_in_one_write_and_errors_at_once() -> None:
    import asyncio

    from yummi_common.logging import LoopBatchedLines

    stream = Recorder()
    lines = LoopBatchedLines(stream)  # type: ignore[arg-type]

    async def serve() -> None:
        lines.line("a")
        lines.line("b")
        assert stream.writes == []
        await asyncio.sleep(0)  # the iteration ends
        assert stream.writes == ["a\nb\n"]
        lines.line("c")
        lines.line_now("boom")  # an error line: what is pending first, then the line, nothing held back
        assert stream.writes == ["a\nb\n", "c\n", "boom\n"]
        lines.line("left in a loop that closes before its flush runs")

    asyncio.run(serve())
    lines.line("outside any loop")
    assert stream.writes[-2:] == ["left in a loop that closes before its flush runs\n", "outside any loop\n"]

    async def again() -> None:
        lines.line("in a new loop")
        await asyncio.sleep(0)

    asyncio.run(again())
    assert stream.writes[-1] == "in a new loop\n"


def test_batched_access_lines_are_json_lines_with_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging(service="batch-test", json=True, level="INFO", batch_in_loop=True)

        async def serve() -> None:
            log = get_logger("yummi_gateway.access")
            for status in (200, 404):
                log.info("request", method="GET", route="/v1/x", status=status, ms=1.5, user_id=None)
            await asyncio.sleep(0)

        asyncio.run(serve())
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    assert [line["status"] for line in lines] == [200, 404]
    assert {"event", "method", "route", "status", "ms", "user_id", "service", "level", "timestamp"} <= set(
        lines[0]
    )
