"""Identity store keys (module prefix 0x01); the layout is documented in docs/spec/identity.md."""

from __future__ import annotations

from citychain.core.keyspace import address_part, make_key, text_part, uint_part

PREFIX = b"\x01"
PARAMS_KEY = PREFIX + b"\x00"
ACCOUNT_PREFIX = PREFIX + b"\x01"
SEQUENCE_PREFIX = PREFIX + b"\x02"
ROLE_HOLDER_PREFIX = PREFIX + b"\x03"
KEY_HISTORY_PREFIX = PREFIX + b"\x04"
KEY_BINDING_PREFIX = PREFIX + b"\x05"

KEY_INDEX_WIDTH = 4


def account_key(address: str) -> bytes:
    """0x01 0x01 | address(20)."""
    return ACCOUNT_PREFIX + address_part(address)


def address_from_account_key(key: bytes) -> str:
    """Return the address an account key names."""
    return key[len(ACCOUNT_PREFIX):].hex()


def sequence_key(address: str) -> bytes:
    """0x01 0x02 | address(20)."""
    return SEQUENCE_PREFIX + address_part(address)


def role_holders_prefix(role: str) -> bytes:
    """0x01 0x03 | len(role) | role: every holder of ``role``."""
    return make_key(ROLE_HOLDER_PREFIX, text_part(role))


def role_holder_key(role: str, address: str) -> bytes:
    """0x01 0x03 | len(role) | role | address(20)."""
    return make_key(ROLE_HOLDER_PREFIX, text_part(role), address_part(address))


def key_history_prefix(address: str) -> bytes:
    """0x01 0x04 | address(20): every key history entry of an account."""
    return KEY_HISTORY_PREFIX + address_part(address)


def key_history_key(address: str, index: int) -> bytes:
    """0x01 0x04 | address(20) | index (uint32 big-endian)."""
    return make_key(KEY_HISTORY_PREFIX, address_part(address), uint_part(index, KEY_INDEX_WIDTH))


def key_binding_key(pubkey: bytes) -> bytes:
    """0x01 0x05 | pubkey(32): the account a public key is (or was) bound to."""
    return KEY_BINDING_PREFIX + pubkey
