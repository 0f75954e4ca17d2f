"""Postgres tables and repositories of the identity context, gRPC clients, and the Clerk verifier."""
