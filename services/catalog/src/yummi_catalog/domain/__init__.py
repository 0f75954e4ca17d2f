"""The catalog's rules, in plain Python: the catalog.json validator and the dataset lifecycle."""
