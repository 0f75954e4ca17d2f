"""Adapters of the orders context: its Postgres tables and repository, and the catalog client."""
