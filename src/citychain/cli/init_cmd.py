"""`citychain init`: create a node home (node key, keyring, genesis.json, config.toml)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from citychain.cli.common import HomeOption, echo, resolve_home
from citychain.cli.errors import UsageFailure
from citychain.node.init import (
    ADMIN_ROLES,
    CITY_CREDIT,
    DEFAULT_CHAIN_ID,
    init_home,
    parse_account_spec,
    parse_balance_spec,
    parse_denom_spec,
)


def init(
    home: HomeOption = None,
    chain_id: Annotated[str, typer.Option(
        "--chain-id", help="Chain id: 1-63 characters of a-z, 0-9, '.', '_', '-'.")
    ] = DEFAULT_CHAIN_ID,
    account: Annotated[list[str] | None, typer.Option(
        "--account", metavar="NAME:ROLE,ROLE", show_default=False,
        help="An identity at genesis for keyring key NAME (created if missing), with these "
             "roles. Repeatable.")] = None,
    balance: Annotated[list[str] | None, typer.Option(
        "--balance", metavar="NAME:AMOUNT[:DENOM]", show_default=False,
        help="A starting balance in the smallest unit (1 city = 1000000 ucity); DENOM defaults "
             "to ucity. Repeatable.")] = None,
    denom: Annotated[list[str] | None, typer.Option(
        "--denom", metavar="DENOM:DECIMALS[:NAME]", show_default=False,
        help="An extra denomination besides ucity (City credit, 6 decimals). Repeatable.")
    ] = None,
    genesis_time_ns: Annotated[int | None, typer.Option(
        "--genesis-time-ns", min=0, show_default=False,
        help="Genesis time in UNIX nanoseconds (default: now).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Re-initialise an existing home: replace genesis.json and config.toml "
                        "and DELETE its chain data (keys are kept).")] = False,
) -> None:
    """Create a node home: a node key (the single validator), a keyring with an `admin` key
    (roles validator-org, registrar, treasury), genesis.json and config.toml.

    Refuses to touch an initialised home unless --force is given.
    """
    try:
        accounts = [parse_account_spec(text) for text in account or ()]
        balances = [parse_balance_spec(text) for text in balance or ()]
        denoms = [CITY_CREDIT, *(parse_denom_spec(text) for text in denom or ())]
        root = resolve_home(home)
        result = init_home(
            root.root, chain_id=chain_id, accounts=accounts, balances=balances, denoms=denoms,
            force=force,
            genesis_time_ns=time.time_ns() if genesis_time_ns is None else genesis_time_ns)
    except ValueError as exc:
        raise UsageFailure(str(exc)) from None
    echo(f"initialised {result.home.root} for chain {result.genesis.chain_id}")
    echo(f"validator: {result.node_address} (node_key.json)")
    for info, roles in result.accounts:
        marker = " (new key)" if info.name in result.created_keys else ""
        echo(f"account {info.name}: {info.did} roles [{', '.join(roles)}]{marker}")
    echo(f"admin holds {', '.join(ADMIN_ROLES)}; start the node with: "
         f"citychain node start --home {result.home.root}")
