"""The catalog's use cases: keyword-only async functions over a unit of work."""
