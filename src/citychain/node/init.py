"""Creating a node home: node key, keyring accounts with roles, genesis.json and config.toml.

The genesis document makes the node key the single validator, creates the city credit
denomination (``ucity``, 6 decimals) and gives every named account an identity (with its roles)
and its starting balances. The document is checked by running it through ``init_chain`` on an
in-memory application before anything is written, so a home is never left with a genesis the
node would refuse.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citychain.app.genesis import Genesis
from citychain.core.crypto import PrivateKey
from citychain.modules.identity.api import (
    ROLE_REGISTRAR,
    ROLE_TREASURY,
    ROLE_VALIDATOR_ORG,
    ROLES,
)
from citychain.node.assemble import memory_app
from citychain.node.home import Home, HomeError, NodeConfig
from citychain.node.keyring import KeyInfo, Keyring, read_key_file, write_key_file

DEFAULT_CHAIN_ID = "citychain-local"
ADMIN_NAME = "admin"
ADMIN_ROLES: tuple[str, ...] = (ROLE_VALIDATOR_ORG, ROLE_REGISTRAR, ROLE_TREASURY)
NODE_VALIDATOR_NAME = "node"


@dataclass(frozen=True)
class DenomSpec:
    denom: str
    decimals: int
    display_name: str


CITY_CREDIT = DenomSpec("ucity", 6, "City credit")


@dataclass(frozen=True)
class AccountSpec:
    """A keyring key that gets an identity at genesis, with these roles."""

    name: str
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class BalanceSpec:
    """A starting balance, in the denomination's smallest unit."""

    name: str
    amount: int
    denom: str = CITY_CREDIT.denom


@dataclass(frozen=True)
class InitResult:
    home: Home
    genesis: Genesis
    node_address: str
    accounts: tuple[tuple[KeyInfo, tuple[str, ...]], ...]
    created_keys: tuple[str, ...] = field(default=())


def parse_account_spec(text: str) -> AccountSpec:
    """Parse ``NAME`` or ``NAME:role,role``.

    Raises:
        ValueError: the text is malformed or names an unknown role.
    """
    name, _, roles_text = text.partition(":")
    if not name:
        raise ValueError(f"account {text!r} must be NAME or NAME:role,role")
    roles = tuple(role.strip() for role in roles_text.split(",") if role.strip())
    for role in roles:
        if role not in ROLES:
            raise ValueError(f"account {text!r}: unknown role {role!r}; roles are "
                             f"{', '.join(ROLES)}")
    return AccountSpec(name, roles)


def parse_balance_spec(text: str) -> BalanceSpec:
    """Parse ``NAME:AMOUNT`` or ``NAME:AMOUNT:DENOM`` (AMOUNT in the smallest unit).

    Raises:
        ValueError: the text is malformed or the amount is not a positive integer.
    """
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise ValueError(f"balance {text!r} must be NAME:AMOUNT or NAME:AMOUNT:DENOM")
    try:
        amount = int(parts[1].replace("_", ""))
    except ValueError:
        raise ValueError(f"balance {text!r}: amount {parts[1]!r} is not an integer") from None
    if amount <= 0:
        raise ValueError(f"balance {text!r}: amount must be positive")
    return BalanceSpec(parts[0], amount, parts[2] if len(parts) == 3 else CITY_CREDIT.denom)


def parse_denom_spec(text: str) -> DenomSpec:
    """Parse ``DENOM:DECIMALS`` or ``DENOM:DECIMALS:DISPLAY NAME``.

    Raises:
        ValueError: the text is malformed.
    """
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0]:
        raise ValueError(f"denom {text!r} must be DENOM:DECIMALS or DENOM:DECIMALS:NAME")
    try:
        decimals = int(parts[1])
    except ValueError:
        raise ValueError(f"denom {text!r}: decimals {parts[1]!r} is not an integer") from None
    return DenomSpec(parts[0], decimals, parts[2] if len(parts) == 3 else parts[0])


def merge_accounts(specs: Sequence[AccountSpec],
                   balances: Sequence[BalanceSpec]) -> dict[str, tuple[str, ...]]:
    """Return name -> sorted roles: admin first, then the given accounts, then any name that
    only appears in a balance (an identity without roles)."""
    merged: dict[str, set[str]] = {ADMIN_NAME: set(ADMIN_ROLES)}
    for spec in specs:
        merged.setdefault(spec.name, set()).update(spec.roles)
    for balance in balances:
        merged.setdefault(balance.name, set())
    return {name: tuple(sorted(roles)) for name, roles in merged.items()}


def build_genesis(chain_id: str, genesis_time_ns: int, validator: PrivateKey,
                  accounts: Mapping[str, tuple[PrivateKey, tuple[str, ...]]],
                  balances: Sequence[BalanceSpec],
                  denoms: Sequence[DenomSpec] = (CITY_CREDIT,)) -> Genesis:
    """Build (and check) the genesis document.

    Raises:
        ValueError: a balance names an unknown account or denomination, or repeats one.
        InvalidGenesisError: the document is refused by a module's genesis checks.
    """
    known_denoms = {spec.denom for spec in denoms}
    totals: dict[tuple[str, str], int] = {}
    for balance in balances:
        if balance.name not in accounts:
            raise ValueError(f"balance for unknown account {balance.name!r}")
        if balance.denom not in known_denoms:
            raise ValueError(f"balance for {balance.name!r} in unknown denomination "
                             f"{balance.denom!r}; known: {', '.join(sorted(known_denoms))}")
        address = accounts[balance.name][0].address
        totals[(address, balance.denom)] = totals.get((address, balance.denom), 0) + balance.amount
    identity_accounts = [{"pubkey": key.public_key.hex(), "roles": list(roles)}
                         for key, roles in accounts.values()]
    app_state: dict[str, Any] = {
        "identity": {"params": {}, "accounts": identity_accounts},
        "bank": {
            "params": {},
            "denoms": [{"denom": d.denom, "display_name": d.display_name,
                        "decimals": d.decimals} for d in denoms],
            "balances": [{"address": address, "denom": denom, "amount": amount}
                         for (address, denom), amount in sorted(totals.items())],
        },
    }
    genesis = Genesis.from_json_value({
        "chain_id": chain_id, "genesis_time_ns": genesis_time_ns, "initial_height": 1,
        "validators": [{"name": NODE_VALIDATOR_NAME, "pubkey": validator.public_key.hex(),
                        "power": 1}],
        "app_state": app_state,
    })
    memory_app().init_chain(genesis.init_chain_request())
    return genesis


def init_home(root: Path, *, genesis_time_ns: int, chain_id: str = DEFAULT_CHAIN_ID,
              accounts: Sequence[AccountSpec] = (), balances: Sequence[BalanceSpec] = (),
              denoms: Sequence[DenomSpec] = (CITY_CREDIT,), force: bool = False,
              keys: Mapping[str, PrivateKey] | None = None,
              node_key: PrivateKey | None = None,
              config: NodeConfig | None = None) -> InitResult:
    """Create (or with ``force`` re-create) the home at ``root``.

    Existing keys (node key, keyring) are kept and reused, never overwritten; ``force`` only
    replaces genesis.json and config.toml and deletes the chain data. ``keys`` supplies keys
    for names that are not in the keyring yet (deterministic demo keys), ``node_key`` the node
    key if there is none.

    Raises:
        HomeError: the home is already initialised and ``force`` is false.
        ValueError: an account, balance or denomination is malformed.
        KeyringError: a key name is invalid or a key file unreadable.
        InvalidGenesisError: a module refuses the resulting genesis.
    """
    home = Home(root)
    if not force and (home.genesis_path.exists() or home.data_dir.exists()):
        raise HomeError(f"{root} is already initialised (genesis.json or data/ exists); "
                        "pass --force to replace its genesis and delete its chain data")
    wanted = merge_accounts(accounts, balances)
    keyring = Keyring(home.keyring_dir)
    supplied = dict(keys or {})
    existing = set(keyring.names())
    resolved: dict[str, tuple[PrivateKey, tuple[str, ...]]] = {}
    for name, roles in wanted.items():
        if name in existing:
            key = keyring.load(name)
        else:
            key = supplied.get(name) or PrivateKey.generate()
        resolved[name] = (key, roles)
    validator = (read_key_file(home.node_key_path) if home.node_key_path.exists()
                 else node_key or PrivateKey.generate())
    genesis = build_genesis(chain_id, genesis_time_ns, validator, resolved, balances, denoms)

    # Everything is checked; now write.
    root.mkdir(parents=True, exist_ok=True)
    if force:
        shutil.rmtree(home.data_dir, ignore_errors=True)
    if not home.node_key_path.exists():
        write_key_file(home.node_key_path, validator, NODE_VALIDATOR_NAME)
    created = []
    for name, (key, _roles) in resolved.items():
        if name not in existing:
            keyring.create(name, key)
            created.append(name)
    _write_atomically(home.genesis_path, genesis.to_json())
    _write_atomically(home.config_path, (config or NodeConfig()).to_toml())
    infos = tuple((keyring.info(name, key), roles) for name, (key, roles) in resolved.items())
    return InitResult(home, genesis, validator.address, infos, tuple(created))


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
