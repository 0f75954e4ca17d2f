"""The runner log: one appended line per step, `<UTC time> <order id> <step> [key=value ...]`."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

MAX_VALUE_LENGTH = 200


def _clean(value: object) -> str:
    """One line whatever the retailer or the notes said; quoted when it holds spaces."""
    text = " ".join(str(value).split())[:MAX_VALUE_LENGTH]
    return repr(text) if " " in text or not text else text


class RunnerLog:
    """Appends step lines to a file (creating its folder); safe from several tasks and threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def step(self, order_id: str, step: str, **details: object) -> str:
        """Append one line for `step` of `order_id` and return it."""
        when = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        extra = "".join(f" {key}={_clean(value)}" for key, value in details.items() if value is not None)
        line = f"{when} {order_id or '-'} {step}{extra}"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        return line
