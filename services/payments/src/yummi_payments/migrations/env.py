"""Alembic environment of the payments schema."""

from yummi_common.migrations import run_env

run_env()
