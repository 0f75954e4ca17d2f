"""Yummi's public HTTP API: Clerk auth, edge policies, the identity context, REST for the services."""
