"""Postgres tables and the PayFast client (source-host resolution, server confirmation)."""
