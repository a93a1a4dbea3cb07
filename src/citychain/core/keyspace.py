"""Order-preserving store keys: prefixes, big-endian integers, length-prefixed fields.

Byte order of keys built here is deterministic: integers sort numerically, length-prefixed text
sorts shorter-first then bytewise (not alphabetically), so range scans are deterministic.
Each module documents its layout in docs/spec/<module>.md.
"""

from __future__ import annotations


def uint_part(value: int, width: int = 8) -> bytes:
    """Encode a non-negative integer big-endian in ``width`` bytes."""
    if value < 0:
        raise ValueError("key integers are unsigned")
    return value.to_bytes(width, "big")


def text_part(text: str) -> bytes:
    """Encode a string as one length byte and its UTF-8 bytes (at most 255 bytes)."""
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError("key text longer than 255 bytes")
    return bytes([len(raw)]) + raw


def bytes_part(raw: bytes) -> bytes:
    """Encode bytes as one length byte and the bytes (at most 255 bytes)."""
    if len(raw) > 255:
        raise ValueError("key bytes longer than 255 bytes")
    return bytes([len(raw)]) + raw


def address_part(address: str) -> bytes:
    """Encode a 40-hex-character address as its 20 raw bytes (fixed width, no length byte)."""
    return bytes.fromhex(address)


def make_key(prefix: bytes, *parts: bytes) -> bytes:
    """Join a module/sub-prefix and already-encoded parts into one key."""
    return prefix + b"".join(parts)
