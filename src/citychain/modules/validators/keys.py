"""Validators store keys (module prefix 0x03); layout documented in docs/spec/validators.md."""

from __future__ import annotations

from citychain.core.keyspace import make_key, uint_part

PREFIX = b"\x03"
PARAMS_KEY = PREFIX + b"\x00"
VALIDATOR_PREFIX = PREFIX + b"\x01"
PROPOSAL_PREFIX = PREFIX + b"\x02"
NEXT_PROPOSAL_ID_KEY = PREFIX + b"\x03"
OPEN_PREFIX = PREFIX + b"\x04"
EXPIRY_PREFIX = PREFIX + b"\x05"
QUEUE_PREFIX = PREFIX + b"\x06"
PENDING_PREFIX = PREFIX + b"\x07"
APPLIED_PREFIX = PREFIX + b"\x08"

UINT_WIDTH = 8


def validator_key(pubkey: bytes) -> bytes:
    """0x03 0x01 | pubkey(32)."""
    return VALIDATOR_PREFIX + pubkey


def pubkey_from_validator_key(key: bytes) -> bytes:
    return key[len(VALIDATOR_PREFIX):]


def proposal_key(proposal_id: int) -> bytes:
    """0x03 0x02 | id (uint64 big-endian)."""
    return make_key(PROPOSAL_PREFIX, uint_part(proposal_id, UINT_WIDTH))


def open_key(proposal_id: int) -> bytes:
    """0x03 0x04 | id: an open proposal (value empty)."""
    return make_key(OPEN_PREFIX, uint_part(proposal_id, UINT_WIDTH))


def expiry_key(expiry_height: int, proposal_id: int) -> bytes:
    """0x03 0x05 | expiry height | id: an open proposal, by the height it lapses at."""
    return make_key(EXPIRY_PREFIX, uint_part(expiry_height, UINT_WIDTH),
                    uint_part(proposal_id, UINT_WIDTH))


def expiry_scan_end(height: int) -> bytes:
    """The first expiry key after every proposal expiring at or before ``height``."""
    return make_key(EXPIRY_PREFIX, uint_part(height + 1, UINT_WIDTH))


def queue_key(proposal_id: int) -> bytes:
    """0x03 0x06 | id: a passed proposal the end of this block applies (empty between blocks)."""
    return make_key(QUEUE_PREFIX, uint_part(proposal_id, UINT_WIDTH))


def pending_key(pubkey: bytes) -> bytes:
    """0x03 0x07 | pubkey(32): the open or queued proposal that targets ``pubkey``."""
    return PENDING_PREFIX + pubkey


def applied_prefix(height: int) -> bytes:
    """0x03 0x08 | height: every proposal applied at ``height``."""
    return make_key(APPLIED_PREFIX, uint_part(height, UINT_WIDTH))


def applied_key(height: int, proposal_id: int) -> bytes:
    """0x03 0x08 | height | id: a proposal applied to the set at ``height``."""
    return make_key(applied_prefix(height), uint_part(proposal_id, UINT_WIDTH))


def trailing_id(key: bytes) -> int:
    """Return the uint64 id that ends an index key."""
    return int.from_bytes(key[-UINT_WIDTH:], "big")
