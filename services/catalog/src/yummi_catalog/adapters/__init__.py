"""How the catalog talks to the outside: its Postgres tables and queries, and the file store."""
