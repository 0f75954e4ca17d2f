"""Postgres tables of the ai schema."""
