"""Use cases of the identity context: ensure a user on first sight, erase, export, sync from Clerk."""
