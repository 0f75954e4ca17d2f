"""Pure payments rules: the wallet ledger, PayFast signatures and ITN checks, the top-up life cycle."""
