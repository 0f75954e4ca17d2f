"""Pure ai rules: the daily usage window and budget."""
