"""`python -m yummi_orders.runner` and the `yummi-runner` console script."""

from __future__ import annotations

import sys

from yummi_orders.runner.cli import main


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
