"""Alembic environment of the ai schema."""

from yummi_common.migrations import run_env

run_env()
