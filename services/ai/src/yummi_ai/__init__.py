"""Yummi ai: assistant features on OpenAI, with the server's key or a user's own, under daily budgets."""
