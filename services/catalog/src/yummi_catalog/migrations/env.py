"""Alembic environment of the catalog schema (async, schema-scoped, under an advisory lock)."""

from yummi_common.migrations import run_env

run_env()
