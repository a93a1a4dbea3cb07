"""Typed reads and writes of identity state over a StateView (the only code that touches keys)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from citychain.core.state import ReadView, StateView, iterate_prefix, prefix_end
from citychain.modules.identity import keys
from citychain.modules.identity.params import DEFAULT_PARAMS, Params
from citychain.modules.identity.types import (
    Account,
    KeyRecord,
    decode_address,
    decode_sequence,
    encode_address,
    encode_sequence,
)


def get_params(view: ReadView) -> Params:
    """Return the stored params (defaults before genesis wrote them)."""
    data = view.get(keys.PARAMS_KEY)
    return DEFAULT_PARAMS if data is None else Params.from_bytes(data)


def set_params(view: StateView, params: Params) -> None:
    view.set(keys.PARAMS_KEY, params.to_bytes())


def get_account(view: ReadView, address: str) -> Account | None:
    """Return the account at ``address``, or None."""
    data = view.get(keys.account_key(address))
    return None if data is None else _decode_account(address, data)


@lru_cache(maxsize=65_536)
def _decode_account(address: str, data: bytes) -> Account:
    # Every tx reads its sender's record at check, recheck and execution, on every node, and an
    # IoT anchor reads the record of each device it lists; the record is immutable and equal
    # bytes decode to an equal record, so reuse the decoding. The size holds the working set
    # of a city's devices: an anchor cycling over more records than the cache holds would miss
    # every time (8,192 did, at 10,000 devices).
    return Account.from_bytes(address, data)


def has_account(view: ReadView, address: str) -> bool:
    return view.get(keys.account_key(address)) is not None


def set_account(view: StateView, account: Account) -> None:
    """Store the account record. Role index entries are kept by add_/delete_role_holder."""
    view.set(keys.account_key(account.address), account.to_bytes())


def iter_accounts(view: ReadView) -> Iterator[Account]:
    """Yield every account in address order."""
    for key, data in iterate_prefix(view, keys.ACCOUNT_PREFIX):
        yield Account.from_bytes(keys.address_from_account_key(key), data)


def get_sequence(view: ReadView, address: str) -> int:
    """Return the account's next expected sequence (0 when none is stored)."""
    data = view.get(keys.sequence_key(address))
    return 0 if data is None else decode_sequence(data)


def set_sequence(view: StateView, address: str, sequence: int) -> None:
    """Store the next expected sequence; 0 is stored as an absent key.

    Raises:
        ValueError: ``sequence`` is negative.
    """
    if sequence < 0:
        raise ValueError("a sequence number is never negative")
    key = keys.sequence_key(address)
    if sequence == 0:
        view.delete(key)
    else:
        view.set(key, encode_sequence(sequence))


def add_role_holder(view: StateView, role: str, address: str) -> None:
    view.set(keys.role_holder_key(role, address), b"")


def delete_role_holder(view: StateView, role: str, address: str) -> None:
    view.delete(keys.role_holder_key(role, address))


def iter_role_holders(view: ReadView, role: str, start_after: str | None = None) -> Iterator[str]:
    """Yield the addresses holding ``role`` in address order, after ``start_after`` if given."""
    prefix = keys.role_holders_prefix(role)
    start = prefix if start_after is None else keys.role_holder_key(role, start_after) + b"\x00"
    for key, _ in view.iterate(start, prefix_end(prefix)):
        yield key[len(prefix):].hex()


def get_key_record(view: ReadView, address: str, index: int) -> KeyRecord | None:
    data = view.get(keys.key_history_key(address, index))
    return None if data is None else KeyRecord.from_bytes(data)


def set_key_record(view: StateView, address: str, index: int, record: KeyRecord) -> None:
    view.set(keys.key_history_key(address, index), record.to_bytes())


def get_key_record_at(view: ReadView, address: str, key_count: int,
                      height: int) -> tuple[int, KeyRecord] | None:
    """Return the index and entry of the key in force at ``height`` (the entry with the greatest
    height not above ``height``; the latest such entry when several share it), or None when
    ``height`` comes before entry 0. Reads entries 0..key_count-1 by ``get`` only (a binary
    search: entry heights never decrease), so a client can prove the answer key by key.

    Raises:
        ValueError: an entry below ``key_count`` is missing (corrupt state).
    """
    found: tuple[int, KeyRecord] | None = None
    low, high = 0, key_count - 1
    while low <= high:
        middle = (low + high) // 2
        record = get_key_record(view, address, middle)
        if record is None:
            raise ValueError(f"key history entry {middle} of {address} is missing")
        if record.height <= height:
            found = (middle, record)
            low = middle + 1
        else:
            high = middle - 1
    return found


def iter_key_records(view: ReadView, address: str) -> Iterator[KeyRecord]:
    """Yield an account's key history, oldest first."""
    for _, data in iterate_prefix(view, keys.key_history_prefix(address)):
        yield KeyRecord.from_bytes(data)


def get_key_binding(view: ReadView, pubkey: bytes) -> str | None:
    """Return the address ``pubkey`` is or was the key of, or None if it was never used."""
    data = view.get(keys.key_binding_key(pubkey))
    return None if data is None else decode_address(data)


def set_key_binding(view: StateView, pubkey: bytes, address: str) -> None:
    view.set(keys.key_binding_key(pubkey), encode_address(address))
