"""Alembic environment of the orders schema."""

from yummi_common.migrations import run_env

run_env()
