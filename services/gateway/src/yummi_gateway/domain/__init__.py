"""The gateway's pure rules: tokens and roles, client IPs, webhook signatures; no I/O."""
