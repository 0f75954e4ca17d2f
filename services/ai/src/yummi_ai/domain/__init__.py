"""Pure ai rules: chat request limits, the daily budget, prices, retries, credentials and basket answers."""
