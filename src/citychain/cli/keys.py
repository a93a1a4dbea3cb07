"""`citychain keys`: create, list and show the account keys of a home's keyring (never the seed)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from citychain.cli.common import (
    HomeOption,
    JsonOption,
    echo,
    keyring_of,
    print_json,
    stdout_console,
)
from citychain.node.keyring import KeyInfo

app = typer.Typer(help="Manage the account keys in a home's keyring (HOME/keyring). "
                       "Seeds stay in their files (mode 0600) and are never printed.",
                  no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="Key name: 1-64 letters, digits, '.', '_', '-'.")]


def _show(info: KeyInfo, as_json: bool) -> None:
    if as_json:
        print_json(asdict(info))
        return
    echo(f"name:    {info.name}")
    echo(f"address: {info.address}")
    echo(f"did:     {info.did}")
    echo(f"pubkey:  {info.pubkey}")


@app.command("new")
def new(name: NameArgument, home: HomeOption = None,
        as_json: JsonOption = False) -> None:
    """Create a new Ed25519 key named NAME from the operating system's random source."""
    _show(keyring_of(home).create(name), as_json)


@app.command("list")
def list_keys(home: HomeOption = None,
              as_json: JsonOption = False) -> None:
    """List the keys in the keyring: name, address and DID."""
    infos = keyring_of(home).list()
    if as_json:
        print_json([asdict(info) for info in infos])
        return
    if not infos:
        echo("no keys")
        return
    table = Table("name", "address", "did", box=None, pad_edge=False)
    for info in infos:
        table.add_row(info.name, info.address, info.did)
    stdout_console().print(table)


@app.command("show")
def show(name: NameArgument, home: HomeOption = None,
         as_json: JsonOption = False,
         did: Annotated[bool, typer.Option("--did", help="Print only the DID.")] = False,
         address: Annotated[bool, typer.Option("--address",
                                               help="Print only the address.")] = False) -> None:
    """Show a key's address, DID and public key (never its seed)."""
    info = keyring_of(home).info(name)
    if did or address:
        echo(info.did if did else info.address)
        return
    _show(info, as_json)
