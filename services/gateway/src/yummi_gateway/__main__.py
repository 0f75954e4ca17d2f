"""`python -m yummi_gateway` is the console script `yummi-gateway`."""

from __future__ import annotations

import sys

from yummi_gateway.cli import main


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
