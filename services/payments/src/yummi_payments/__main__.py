"""`python -m yummi_payments` / `yummi-payments`: serve (default) or migrate the payments service."""

from __future__ import annotations

import sys

from yummi_common.service import main
from yummi_payments.bootstrap import SPEC


def run() -> None:
    sys.exit(main(SPEC))


if __name__ == "__main__":
    run()
