"""`python -m yummi_ai` / `yummi-ai`: serve (default) or migrate the ai service."""

from __future__ import annotations

import sys

from yummi_ai.bootstrap import SPEC
from yummi_common.service import main


def run() -> None:
    sys.exit(main(SPEC))


if __name__ == "__main__":
    run()
