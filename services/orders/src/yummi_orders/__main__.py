"""`python -m yummi_orders` and the `yummi-orders` console script: serve (default) or migrate."""

from __future__ import annotations

import sys

from yummi_common.service import main
from yummi_orders.bootstrap import SPEC


def run() -> None:
    sys.exit(main(SPEC))


if __name__ == "__main__":
    run()
