"""Bank genesis: validate and load the section, and export state so that init(export) == state.

Section::

    {"params": {"transfers_enabled": bool},
     "denoms": [{"denom": str, "display_name": str, "decimals": int,
                 "creator": address | "",            # optional, default ""
                 "created_height": int}, ...],        # optional, default the genesis height
     "balances": [{"address": address, "denom": str, "amount": int}, ...],
     "escrows": [{"owner": str, "escrow_id": str, "denom": str, "amount": int}, ...]}

``escrows`` is optional (older genesis files have none). Supply is not part of the section: it is
the sum of the balances and escrow balances. Every balance's address must already have an
identity (the identity module's genesis runs first).
"""

from __future__ import annotations

from typing import Any

from citychain.core.context import BlockContext
from citychain.core.crypto import is_address
from citychain.core.errors import InvalidGenesisError
from citychain.core.genesis_fields import (
    check_fields,
    genesis_integer,
    genesis_list,
    require_fields,
)
from citychain.core.state import ReadView, StateView
from citychain.modules.bank import keys, state
from citychain.modules.bank.params import Params
from citychain.modules.bank.types import (
    MAX_AMOUNT,
    MAX_DECIMALS,
    MAX_DISPLAY_NAME,
    MAX_ESCROW_NAME,
    Denom,
    is_denom,
    is_escrow_name,
)
from citychain.modules.identity import api as identity

SECTION_PATH = "app_state.bank"


def init_genesis(view: StateView, block_ctx: BlockContext, section: Any) -> None:
    """Validate the bank section and write params, denoms, balances, escrows and supplies.

    Every check runs before the first write; writes go in key order.

    Raises:
        InvalidGenesisError: naming the path of the first invalid field.
    """
    if not isinstance(section, dict):
        raise InvalidGenesisError(f"{SECTION_PATH} must be a map", field=SECTION_PATH)
    check_fields(section, ("balances", "denoms", "escrows", "params"), SECTION_PATH)
    params = Params.from_genesis(section.get("params", {}), f"{SECTION_PATH}.params")
    denoms: dict[str, Denom] = {}
    for index, raw in enumerate(genesis_list(section, "denoms", SECTION_PATH)):
        record = _parse_denom(raw, f"{SECTION_PATH}.denoms[{index}]", block_ctx.height)
        if record.denom in denoms:
            raise InvalidGenesisError(f"{SECTION_PATH}.denoms[{index}] repeats {record.denom}",
                                      field=f"{SECTION_PATH}.denoms[{index}].denom")
        denoms[record.denom] = record
    balances: dict[tuple[str, str], int] = {}
    supplies: dict[str, int] = {}
    for index, raw in enumerate(genesis_list(section, "balances", SECTION_PATH)):
        path = f"{SECTION_PATH}.balances[{index}]"
        address, denom, amount = _parse_balance(view, raw, path, denoms)
        if (address, denom) in balances:
            raise InvalidGenesisError(f"{path} repeats the balance of {address} in {denom}",
                                      field=path)
        supply = supplies.get(denom, 0) + amount
        if supply > MAX_AMOUNT:
            raise InvalidGenesisError(f"{path}.amount takes the supply of {denom} past "
                                      f"{MAX_AMOUNT}", field=f"{path}.amount")
        balances[(address, denom)] = amount
        supplies[denom] = supply
    escrows: dict[bytes, tuple[str, str, str, int]] = {}
    for index, raw in enumerate(genesis_list(section, "escrows", SECTION_PATH)):
        path = f"{SECTION_PATH}.escrows[{index}]"
        owner, escrow_id, denom, amount = _parse_escrow(raw, path, denoms)
        key = keys.escrow_key(owner, escrow_id, denom)
        if key in escrows:
            raise InvalidGenesisError(f"{path} repeats escrow {owner}/{escrow_id} in {denom}",
                                      field=path)
        supply = supplies.get(denom, 0) + amount
        if supply > MAX_AMOUNT:
            raise InvalidGenesisError(f"{path}.amount takes the supply of {denom} past "
                                      f"{MAX_AMOUNT}", field=f"{path}.amount")
        escrows[key] = (owner, escrow_id, denom, amount)
        supplies[denom] = supply

    state.set_params(view, params)
    for denom in sorted(denoms):
        state.set_denom(view, denoms[denom])
    for denom in sorted(supplies):
        state.set_supply(view, denom, supplies[denom])
    for address, denom in sorted(balances):
        state.set_balance(view, address, denom, balances[(address, denom)])
    for key in sorted(escrows):
        state.set_escrow_balance(view, *escrows[key])


def export_genesis(view: ReadView) -> dict[str, Any]:
    """Return the bank section describing the current state (in key order)."""
    return {
        "params": state.get_params(view).to_value(),
        "denoms": [record.to_value() for record in state.iter_denoms(view)],
        "balances": [{"address": address, "denom": denom, "amount": amount}
                     for address, denom, amount in state.iter_all_balances(view)],
        "escrows": [{"owner": owner, "escrow_id": escrow_id, "denom": denom, "amount": amount}
                    for owner, escrow_id, denom, amount in state.iter_all_escrow_balances(view)],
    }


def _parse_denom(raw: Any, path: str, genesis_height: int) -> Denom:
    if not isinstance(raw, dict):
        raise InvalidGenesisError(f"{path} must be a map", field=path)
    check_fields(raw, ("created_height", "creator", "decimals", "denom", "display_name"), path)
    require_fields(raw, ("decimals", "denom", "display_name"), path)
    denom = raw["denom"]
    if not isinstance(denom, str) or not is_denom(denom):
        raise InvalidGenesisError(f"{path}.denom must match [a-z][a-z0-9]{{2,15}}",
                                  field=f"{path}.denom")
    name = raw["display_name"]
    if (not isinstance(name, str) or not 1 <= len(name) <= MAX_DISPLAY_NAME
            or not name.isprintable()):
        raise InvalidGenesisError(f"{path}.display_name must be 1 to {MAX_DISPLAY_NAME} "
                                  "printable characters", field=f"{path}.display_name")
    decimals = genesis_integer(raw["decimals"], f"{path}.decimals", 0, MAX_DECIMALS)
    creator = raw.get("creator", "")
    if not isinstance(creator, str) or (creator != "" and not is_address(creator)):
        raise InvalidGenesisError(f"{path}.creator must be an address or empty",
                                  field=f"{path}.creator")
    created = genesis_integer(raw.get("created_height", genesis_height),
                              f"{path}.created_height", 0, MAX_AMOUNT)
    return Denom(denom, name, decimals, creator, created)


def _parse_balance(view: ReadView, raw: Any, path: str,
                   denoms: dict[str, Denom]) -> tuple[str, str, int]:
    if not isinstance(raw, dict):
        raise InvalidGenesisError(f"{path} must be a map", field=path)
    check_fields(raw, ("address", "amount", "denom"), path)
    require_fields(raw, ("address", "amount", "denom"), path)
    address = raw["address"]
    if not isinstance(address, str) or not is_address(address):
        raise InvalidGenesisError(f"{path}.address must be 40 lowercase hex characters",
                                  field=f"{path}.address")
    if not identity.exists(view, address):
        raise InvalidGenesisError(f"{path}.address {address} has no identity; list it in "
                                  "app_state.identity.accounts", field=f"{path}.address")
    denom = raw["denom"]
    if not isinstance(denom, str) or denom not in denoms:
        raise InvalidGenesisError(f"{path}.denom {denom!r} is not listed in "
                                  f"{SECTION_PATH}.denoms", field=f"{path}.denom")
    amount = genesis_integer(raw["amount"], f"{path}.amount", 1, MAX_AMOUNT)
    return address, denom, amount


def _parse_escrow(raw: Any, path: str, denoms: dict[str, Denom]) -> tuple[str, str, str, int]:
    if not isinstance(raw, dict):
        raise InvalidGenesisError(f"{path} must be a map", field=path)
    check_fields(raw, ("amount", "denom", "escrow_id", "owner"), path)
    require_fields(raw, ("owner", "escrow_id", "denom", "amount"), path)
    for name in ("owner", "escrow_id"):
        if not isinstance(raw[name], str) or not is_escrow_name(raw[name]):
            raise InvalidGenesisError(f"{path}.{name} must be 1 to {MAX_ESCROW_NAME} printable "
                                      "ASCII characters", field=f"{path}.{name}")
    denom = raw["denom"]
    if not isinstance(denom, str) or denom not in denoms:
        raise InvalidGenesisError(f"{path}.denom {denom!r} is not listed in "
                                  f"{SECTION_PATH}.denoms", field=f"{path}.denom")
    amount = genesis_integer(raw["amount"], f"{path}.amount", 1, MAX_AMOUNT)
    return raw["owner"], raw["escrow_id"], denom, amount
