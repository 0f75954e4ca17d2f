"""Yummi payments: PayFast top-ups and the wallet ledger that pays for orders."""
