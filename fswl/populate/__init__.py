"""Populating the whitelist: list imports (importer, sources), SPF expansion (spf) and relay correlation."""
