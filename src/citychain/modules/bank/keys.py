"""Bank store keys (module prefix 0x02); the layout is documented in docs/spec/bank.md."""

from __future__ import annotations

from citychain.core.keyspace import address_part, make_key, text_part

PREFIX = b"\x02"
PARAMS_KEY = PREFIX + b"\x00"
DENOM_PREFIX = PREFIX + b"\x01"
SUPPLY_PREFIX = PREFIX + b"\x02"
BALANCE_PREFIX = PREFIX + b"\x03"
ESCROW_PREFIX = PREFIX + b"\x04"

ADDRESS_BYTES = 20


def denom_key(denom: str) -> bytes:
    """0x02 0x01 | len(denom) | denom."""
    return make_key(DENOM_PREFIX, text_part(denom))


def supply_key(denom: str) -> bytes:
    """0x02 0x02 | len(denom) | denom."""
    return make_key(SUPPLY_PREFIX, text_part(denom))


def balances_prefix(address: str) -> bytes:
    """0x02 0x03 | address(20): every balance of an address."""
    return BALANCE_PREFIX + address_part(address)


def balance_key(address: str, denom: str) -> bytes:
    """0x02 0x03 | address(20) | len(denom) | denom."""
    return make_key(BALANCE_PREFIX, address_part(address), text_part(denom))


def denom_from_key(key: bytes, prefix: bytes) -> str:
    """Return the length-prefixed denom that follows ``prefix`` in ``key``."""
    length = key[len(prefix)]
    start = len(prefix) + 1
    return key[start:start + length].decode()


def split_balance_key(key: bytes) -> tuple[str, str]:
    """Return (address, denom) of a balance key."""
    address_end = len(BALANCE_PREFIX) + ADDRESS_BYTES
    return key[len(BALANCE_PREFIX):address_end].hex(), denom_from_key(key, key[:address_end])


def escrow_prefix(owner: str, escrow_id: str) -> bytes:
    """0x02 0x04 | len(owner) | owner | len(escrow_id) | escrow_id: every denom of one escrow."""
    return make_key(ESCROW_PREFIX, text_part(owner), text_part(escrow_id))


def escrow_key(owner: str, escrow_id: str, denom: str) -> bytes:
    """0x02 0x04 | len(owner) | owner | len(escrow_id) | escrow_id | len(denom) | denom."""
    return make_key(ESCROW_PREFIX, text_part(owner), text_part(escrow_id), text_part(denom))


def split_escrow_key(key: bytes) -> tuple[str, str, str]:
    """Return (owner, escrow_id, denom) of an escrow key."""
    parts: list[str] = []
    position = len(ESCROW_PREFIX)
    for _ in range(3):
        length = key[position]
        parts.append(key[position + 1:position + 1 + length].decode())
        position += 1 + length
    return parts[0], parts[1], parts[2]
