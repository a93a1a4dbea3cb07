"""Core: canonical encoding, hashing, keys, transactions, errors, events and state protocols."""
