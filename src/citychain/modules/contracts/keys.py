"""Contracts store keys (module prefix 0x05); the layout is documented in docs/spec/contracts.md."""

from __future__ import annotations

from citychain.core.keyspace import address_part, make_key, uint_part

PREFIX = b"\x05"
PARAMS_KEY = PREFIX + b"\x00"
NEXT_ID_KEY = PREFIX + b"\x01"
TERMS_PREFIX = PREFIX + b"\x02"
STATE_PREFIX = PREFIX + b"\x03"
MILESTONE_PREFIX = PREFIX + b"\x04"
ATTESTATION_PREFIX = PREFIX + b"\x05"
AMENDMENT_PREFIX = PREFIX + b"\x06"
AUDIT_PREFIX = PREFIX + b"\x07"
DUE_PREFIX = PREFIX + b"\x08"
PARTY_PREFIX = PREFIX + b"\x09"
SCHEDULE_PREFIX = PREFIX + b"\x0a"

ID_WIDTH = 8
INDEX_WIDTH = 2
PERIOD_WIDTH = 4
SEQ_WIDTH = 4
HEIGHT_WIDTH = 8
ADDRESS_BYTES = 20


def terms_key(contract_id: int) -> bytes:
    """0x05 0x02 | contract_id (uint64): the terms every party signed."""
    return TERMS_PREFIX + uint_part(contract_id, ID_WIDTH)


def state_key(contract_id: int) -> bytes:
    """0x05 0x03 | contract_id (uint64): status, signatures, schedule."""
    return STATE_PREFIX + uint_part(contract_id, ID_WIDTH)


def schedule_key(contract_id: int) -> bytes:
    """0x05 0x0a | contract_id (uint64): last and next end-block check."""
    return SCHEDULE_PREFIX + uint_part(contract_id, ID_WIDTH)


def milestone_key(contract_id: int, index: int) -> bytes:
    """0x05 0x04 | contract_id (uint64) | index (uint16)."""
    return make_key(MILESTONE_PREFIX, uint_part(contract_id, ID_WIDTH),
                    uint_part(index, INDEX_WIDTH))


def attestations_key(contract_id: int, index: int, period: int) -> bytes:
    """0x05 0x05 | contract_id (uint64) | index (uint16) | period (uint32): every role's
    sign-off of one period of a milestone, in one record (end-block reads it with one get)."""
    return make_key(ATTESTATION_PREFIX, uint_part(contract_id, ID_WIDTH),
                    uint_part(index, INDEX_WIDTH), uint_part(period, PERIOD_WIDTH))


def amendment_key(contract_id: int, number: int) -> bytes:
    """0x05 0x06 | contract_id (uint64) | number (uint32)."""
    return make_key(AMENDMENT_PREFIX, uint_part(contract_id, ID_WIDTH),
                    uint_part(number, SEQ_WIDTH))


def audit_prefix(contract_id: int) -> bytes:
    """0x05 0x07 | contract_id (uint64): the contract's audit trail."""
    return AUDIT_PREFIX + uint_part(contract_id, ID_WIDTH)


def audit_key(contract_id: int, seq: int) -> bytes:
    """0x05 0x07 | contract_id (uint64) | seq (uint32)."""
    return audit_prefix(contract_id) + uint_part(seq, SEQ_WIDTH)


def seq_from_audit_key(key: bytes) -> int:
    return int.from_bytes(key[-SEQ_WIDTH:], "big")


def due_key(height: int, contract_id: int) -> bytes:
    """0x05 0x08 | height (uint64) | contract_id (uint64): end-block checks the contract then."""
    return make_key(DUE_PREFIX, uint_part(height, HEIGHT_WIDTH), uint_part(contract_id, ID_WIDTH))


def due_end(height: int) -> bytes:
    """The first due key after every entry at ``height`` or lower."""
    return DUE_PREFIX + uint_part(height + 1, HEIGHT_WIDTH)


def split_due_key(key: bytes) -> tuple[int, int]:
    """Return (height, contract_id) of a due key."""
    start = len(DUE_PREFIX)
    return (int.from_bytes(key[start:start + HEIGHT_WIDTH], "big"),
            int.from_bytes(key[start + HEIGHT_WIDTH:], "big"))


def party_prefix(address: str) -> bytes:
    """0x05 0x09 | address (20): every contract the address is a party of."""
    return PARTY_PREFIX + address_part(address)


def party_key(address: str, contract_id: int) -> bytes:
    """0x05 0x09 | address (20) | contract_id (uint64)."""
    return party_prefix(address) + uint_part(contract_id, ID_WIDTH)


def contract_id_from_party_key(key: bytes) -> int:
    return int.from_bytes(key[-ID_WIDTH:], "big")


def party_prefix_end(address: str) -> bytes:
    """The first key after every party key of ``address``."""
    return party_key(address, 2**64 - 1) + b"\x00"
