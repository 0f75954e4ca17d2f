"""Use cases of the orders context: keyword-only async functions over a unit of work."""
