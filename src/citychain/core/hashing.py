"""SHA-256 helpers: the one hash function used for everything the chain commits to."""

from __future__ import annotations

import hashlib

HASH_SIZE = 32
EMPTY_HASH = bytes(HASH_SIZE)


def sha256(data: bytes) -> bytes:
    """Return the SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()


def tagged_hash(tag: bytes, *parts: bytes) -> bytes:
    """Hash ``parts`` under a domain ``tag`` (no length prefixes: callers fix the sizes)."""
    digest = hashlib.sha256(tag)
    for part in parts:
        digest.update(part)
    return digest.digest()
