"""`python -m yummi_catalog` == the `yummi-catalog` console script: serve (default), migrate, seed."""

from __future__ import annotations

import sys

from yummi_common.service import main


def run() -> None:
    from yummi_catalog.bootstrap import SPEC

    sys.exit(main(SPEC))


if __name__ == "__main__":
    run()
