"""Identity genesis: validate and load the section, and export state so that init(export) == state.

Section::

    {"params": {"self_registration_enabled": bool},
     "accounts": [{"pubkey": hex,                      # initial key; derives the address
                   "roles": [role, ...],               # optional, default []
                   "address": hex,                     # optional; checked against pubkey
                   "sequence": int,                    # optional, default 0
                   "created_height": int,              # optional, default the genesis height
                   "suspension": null | {"reason": str, "height": int, "by": address},
                   "key_history": [{"height": int, "pubkey": hex}, ...]},  # rotations, oldest first
                  ...]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from citychain.core.context import BlockContext
from citychain.core.crypto import PUBKEY_SIZE, address_from_pubkey, is_address
from citychain.core.errors import InvalidGenesisError
from citychain.core.genesis_fields import check_fields, genesis_integer
from citychain.core.state import ReadView, StateView
from citychain.modules.identity import state
from citychain.modules.identity.messages import MAX_REASON_LENGTH
from citychain.modules.identity.params import Params
from citychain.modules.identity.types import ROLES, Account, KeyRecord, Suspension

SECTION_PATH = "app_state.identity"
MAX_SEQUENCE = 2**63 - 1
_ACCOUNT_FIELDS = ("address", "created_height", "key_history", "pubkey", "roles", "sequence",
                   "suspension")


@dataclass(frozen=True, slots=True)
class _GenesisAccount:
    account: Account
    sequence: int
    keys: tuple[KeyRecord, ...]


def init_genesis(view: StateView, block_ctx: BlockContext, section: Any) -> None:
    """Validate the identity section and write params, accounts, key history and indexes.

    Every check runs before the first write; writes go in address order.

    Raises:
        InvalidGenesisError: naming the path of the first invalid field.
    """
    if not isinstance(section, dict):
        raise InvalidGenesisError(f"{SECTION_PATH} must be a map", field=SECTION_PATH)
    check_fields(section, ("accounts", "params"), SECTION_PATH)
    params = Params.from_genesis(section.get("params", {}), f"{SECTION_PATH}.params")
    raw_accounts = section.get("accounts", [])
    if not isinstance(raw_accounts, list):
        raise InvalidGenesisError(f"{SECTION_PATH}.accounts must be a list",
                                  field=f"{SECTION_PATH}.accounts")
    accounts: dict[str, _GenesisAccount] = {}
    bound: dict[bytes, str] = {}
    for index, raw in enumerate(raw_accounts):
        path = f"{SECTION_PATH}.accounts[{index}]"
        entry = _parse_account(raw, path, block_ctx.height)
        address = entry.account.address
        if address in accounts:
            raise InvalidGenesisError(f"{path} repeats account {address}", field=f"{path}.pubkey")
        for position, record in enumerate(entry.keys):
            owner = bound.get(record.pubkey)
            if owner is not None:
                where = "pubkey" if position == 0 else f"key_history[{position - 1}].pubkey"
                raise InvalidGenesisError(f"{path}.{where} is already a key of account {owner}",
                                          field=f"{path}.{where}")
            bound[record.pubkey] = address
        accounts[address] = entry

    state.set_params(view, params)
    for address in sorted(accounts):
        entry = accounts[address]
        state.set_account(view, entry.account)
        state.set_sequence(view, address, entry.sequence)
        for position, record in enumerate(entry.keys):
            state.set_key_record(view, address, position, record)
            state.set_key_binding(view, record.pubkey, address)
        for role in entry.account.roles:
            state.add_role_holder(view, role, address)


def export_genesis(view: ReadView) -> dict[str, Any]:
    """Return the identity section describing the current state (accounts in address order)."""
    accounts = []
    for account in state.iter_accounts(view):
        records = list(state.iter_key_records(view, account.address))
        suspension = account.suspension
        accounts.append({
            "address": account.address,
            "pubkey": records[0].pubkey.hex() if records else account.pubkey.hex(),
            "roles": list(account.roles),
            "sequence": state.get_sequence(view, account.address),
            "created_height": account.created_height,
            "suspension": None if suspension is None else suspension.to_value(),
            "key_history": [{"height": r.height, "pubkey": r.pubkey.hex()}
                            for r in records[1:]],
        })
    return {"params": state.get_params(view).to_value(), "accounts": accounts}


def _parse_account(raw: Any, path: str, genesis_height: int) -> _GenesisAccount:
    if not isinstance(raw, dict):
        raise InvalidGenesisError(f"{path} must be a map", field=path)
    check_fields(raw, _ACCOUNT_FIELDS, path)
    if "pubkey" not in raw:
        raise InvalidGenesisError(f"{path} is missing pubkey", field=f"{path}.pubkey")
    pubkey = _pubkey(raw["pubkey"], f"{path}.pubkey")
    address = address_from_pubkey(pubkey)
    if "address" in raw and raw["address"] != address:
        raise InvalidGenesisError(f"{path}.address does not match the address of pubkey "
                                  f"({address})", field=f"{path}.address")
    roles = _roles(raw.get("roles", []), f"{path}.roles")
    sequence = genesis_integer(raw.get("sequence", 0), f"{path}.sequence", 0, MAX_SEQUENCE)
    created = genesis_integer(raw.get("created_height", genesis_height), f"{path}.created_height",
                              0, MAX_SEQUENCE)
    keys = [KeyRecord(created, pubkey)]
    history = raw.get("key_history", [])
    if not isinstance(history, list):
        raise InvalidGenesisError(f"{path}.key_history must be a list",
                                  field=f"{path}.key_history")
    for position, item in enumerate(history):
        where = f"{path}.key_history[{position}]"
        if not isinstance(item, dict):
            raise InvalidGenesisError(f"{where} must be a map", field=where)
        check_fields(item, ("height", "pubkey"), where)
        for name in ("height", "pubkey"):
            if name not in item:
                raise InvalidGenesisError(f"{where} is missing {name}", field=f"{where}.{name}")
        height = genesis_integer(item["height"], f"{where}.height", keys[-1].height, MAX_SEQUENCE)
        keys.append(KeyRecord(height, _pubkey(item["pubkey"], f"{where}.pubkey")))
    suspension = _suspension(raw.get("suspension"), f"{path}.suspension", created)
    account = Account(address=address, pubkey=keys[-1].pubkey, roles=roles,
                      created_height=created, key_count=len(keys), suspension=suspension)
    return _GenesisAccount(account, sequence, tuple(keys))


def _suspension(raw: Any, path: str, created: int) -> Suspension | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidGenesisError(f"{path} must be null or a map", field=path)
    check_fields(raw, ("by", "height", "reason"), path)
    for name in ("by", "height", "reason"):
        if name not in raw:
            raise InvalidGenesisError(f"{path} is missing {name}", field=f"{path}.{name}")
    reason = raw["reason"]
    if (not isinstance(reason, str) or not 1 <= len(reason) <= MAX_REASON_LENGTH
            or not reason.isprintable()):
        raise InvalidGenesisError(f"{path}.reason must be 1 to {MAX_REASON_LENGTH} printable "
                                  "characters", field=f"{path}.reason")
    height = genesis_integer(raw["height"], f"{path}.height", created, MAX_SEQUENCE)
    by = raw["by"]
    if not isinstance(by, str) or not is_address(by):
        raise InvalidGenesisError(f"{path}.by must be an address", field=f"{path}.by")
    return Suspension(reason, height, by)


def _roles(raw: Any, path: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise InvalidGenesisError(f"{path} must be a list of roles", field=path)
    for position, role in enumerate(raw):
        if role not in ROLES:
            raise InvalidGenesisError(f"{path}[{position}] must be one of {', '.join(ROLES)}, "
                                      f"got {role!r}", field=f"{path}[{position}]")
        if role in raw[:position]:
            raise InvalidGenesisError(f"{path}[{position}] repeats {role}",
                                      field=f"{path}[{position}]")
    return tuple(sorted(raw))


def _pubkey(raw: Any, path: str) -> bytes:
    if (not isinstance(raw, str) or len(raw) != 2 * PUBKEY_SIZE
            or raw.strip("0123456789abcdef") != ""):
        raise InvalidGenesisError(f"{path} must be {2 * PUBKEY_SIZE} lowercase hex characters",
                                  field=path)
    return bytes.fromhex(raw)
