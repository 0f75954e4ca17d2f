"""Use cases of the payments context, each a keyword-only async function over a unit of work."""
