"""Use cases of the ai context, each a keyword-only async function."""
