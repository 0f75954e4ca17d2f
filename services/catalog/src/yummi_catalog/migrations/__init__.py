"""Alembic history of the catalog schema."""

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).parent
