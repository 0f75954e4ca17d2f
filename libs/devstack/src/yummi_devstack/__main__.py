"""`python -m yummi_devstack` == console script `yummi-devstack`."""

from .cli import main

raise SystemExit(main())
