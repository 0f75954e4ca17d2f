"""Routes, one module per area of the public contract."""
