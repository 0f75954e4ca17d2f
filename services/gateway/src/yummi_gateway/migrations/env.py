"""Alembic environment of the identity schema."""

from yummi_common.migrations import run_env

run_env()
