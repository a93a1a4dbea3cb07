"""The solo driver: one organisation's embedded, signed, hash-linked block producer."""
