"""Typed reads and writes of bank state over a StateView (the only code that touches keys).

Zero amounts are never stored: a balance or supply of 0 is an absent key.
"""

from __future__ import annotations

from collections.abc import Iterator

from citychain.core.state import ReadView, StateView, iterate_prefix, prefix_end
from citychain.modules.bank import keys
from citychain.modules.bank.params import DEFAULT_PARAMS, Params
from citychain.modules.bank.types import (
    Denom,
    decode_amount,
    encode_amount,
    validate_escrow_name,
)


def get_params(view: ReadView) -> Params:
    """Return the stored params (defaults before genesis wrote them)."""
    data = view.get(keys.PARAMS_KEY)
    return DEFAULT_PARAMS if data is None else Params.from_bytes(data)


def set_params(view: StateView, params: Params) -> None:
    view.set(keys.PARAMS_KEY, params.to_bytes())


def get_denom(view: ReadView, denom: str) -> Denom | None:
    data = view.get(keys.denom_key(denom))
    return None if data is None else Denom.from_bytes(denom, data)


def has_denom(view: ReadView, denom: str) -> bool:
    return view.get(keys.denom_key(denom)) is not None


def set_denom(view: StateView, record: Denom) -> None:
    view.set(keys.denom_key(record.denom), record.to_bytes())


def iter_denoms(view: ReadView, start_after: str | None = None) -> Iterator[Denom]:
    """Yield denominations in key order (by length, then bytes), after ``start_after``."""
    start = (keys.DENOM_PREFIX if start_after is None
             else keys.denom_key(start_after) + b"\x00")
    for key, data in view.iterate(start, prefix_end(keys.DENOM_PREFIX)):
        yield Denom.from_bytes(keys.denom_from_key(key, keys.DENOM_PREFIX), data)


def get_supply(view: ReadView, denom: str) -> int:
    data = view.get(keys.supply_key(denom))
    return 0 if data is None else decode_amount(data)


def set_supply(view: StateView, denom: str, amount: int) -> None:
    """Store a total supply (0 deletes the key). Raises ValueError if negative."""
    _set_amount(view, keys.supply_key(denom), amount)


def iter_supplies(view: ReadView) -> Iterator[tuple[str, int]]:
    """Yield (denom, supply) for every non-zero supply."""
    for key, data in iterate_prefix(view, keys.SUPPLY_PREFIX):
        yield keys.denom_from_key(key, keys.SUPPLY_PREFIX), decode_amount(data)


def get_balance(view: ReadView, address: str, denom: str) -> int:
    data = view.get(keys.balance_key(address, denom))
    return 0 if data is None else decode_amount(data)


def set_balance(view: StateView, address: str, denom: str, amount: int) -> None:
    """Store a balance (0 deletes the key). Raises ValueError if negative."""
    _set_amount(view, keys.balance_key(address, denom), amount)


def iter_balances(view: ReadView, address: str) -> Iterator[tuple[str, int]]:
    """Yield (denom, amount) for the address's non-zero balances, in key order."""
    prefix = keys.balances_prefix(address)
    for key, data in iterate_prefix(view, prefix):
        yield keys.denom_from_key(key, prefix), decode_amount(data)


def iter_all_balances(view: ReadView) -> Iterator[tuple[str, str, int]]:
    """Yield (address, denom, amount) for every non-zero balance, in key order."""
    for key, data in iterate_prefix(view, keys.BALANCE_PREFIX):
        address, denom = keys.split_balance_key(key)
        yield address, denom, decode_amount(data)


def get_escrow_balance(view: ReadView, owner: str, escrow_id: str, denom: str) -> int:
    """Return what escrow (owner, escrow_id) holds in ``denom``. Raises ValueError on a
    malformed owner or escrow id."""
    _validate_escrow(owner, escrow_id)
    data = view.get(keys.escrow_key(owner, escrow_id, denom))
    return 0 if data is None else decode_amount(data)


def set_escrow_balance(view: StateView, owner: str, escrow_id: str, denom: str,
                       amount: int) -> None:
    """Store an escrow balance (0 deletes the key). Raises ValueError if negative or on a
    malformed owner or escrow id."""
    _validate_escrow(owner, escrow_id)
    _set_amount(view, keys.escrow_key(owner, escrow_id, denom), amount)


def iter_escrow_balances(view: ReadView, owner: str, escrow_id: str) -> Iterator[tuple[str, int]]:
    """Yield (denom, amount) for the escrow's non-zero balances, in key order. Raises ValueError
    on a malformed owner or escrow id."""
    _validate_escrow(owner, escrow_id)
    prefix = keys.escrow_prefix(owner, escrow_id)
    for key, data in iterate_prefix(view, prefix):
        yield keys.denom_from_key(key, prefix), decode_amount(data)


def iter_all_escrow_balances(view: ReadView) -> Iterator[tuple[str, str, str, int]]:
    """Yield (owner, escrow_id, denom, amount) for every non-zero escrow balance, in key order."""
    for key, data in iterate_prefix(view, keys.ESCROW_PREFIX):
        owner, escrow_id, denom = keys.split_escrow_key(key)
        yield owner, escrow_id, denom, decode_amount(data)


def _validate_escrow(owner: str, escrow_id: str) -> None:
    validate_escrow_name(owner, "owner")
    validate_escrow_name(escrow_id, "escrow_id")


def _set_amount(view: StateView, key: bytes, amount: int) -> None:
    if amount < 0:
        raise ValueError("amounts are never negative")
    if amount == 0:
        view.delete(key)
    else:
        view.set(key, encode_amount(amount))
