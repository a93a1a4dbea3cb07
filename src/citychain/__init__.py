"""citychain: a shared, tamper-evident ledger for a city and its partners."""

__version__ = "0.1.0"
