"""The ai context's outside world: Postgres tables, key encryption (local or KMS), OpenAI and the catalog."""
