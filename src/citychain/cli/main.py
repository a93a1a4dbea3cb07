"""The `citychain` command: the root Typer app and its command tree."""

from __future__ import annotations

from typing import Annotated

import typer

from citychain import __version__
from citychain.cli import (
    api_cmd,
    contracts_cmd,
    demo_cmd,
    init_cmd,
    iot_cmd,
    keys,
    node_cmd,
    query,
    sim_cmd,
    testnet,
    tx,
    verify_cmd,
)
from citychain.cli.errors import EXIT_CODES
from citychain.cli.group import CityGroup


def _exit_code_help() -> str:
    rows = "\n".join(f"* **{code}**  {text}" for code, text in EXIT_CODES)
    return f"Exit codes:\n\n{rows}"


app = typer.Typer(
    cls=CityGroup,
    name="citychain",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    help="citychain: a shared, tamper-evident ledger for a city and its partners.\n\n"
         "Create a home with `citychain init`, run it with `citychain node start`, send "
         "transactions with `citychain tx`, read (and verify) state with `citychain query`, "
         "serve the HTTP API with `citychain api`, audit a chain with `citychain verify`, or "
         "watch a whole city at work with `citychain demo`.\n\n"
         "Errors are one line on stderr: error: [codespace/code] message (field f).\n\n"
         + _exit_code_help(),
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"citychain {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = False,
) -> None:
    """citychain command line."""


app.add_typer(keys.app, name="keys")
app.command("init")(init_cmd.init)
app.add_typer(node_cmd.app, name="node")
app.add_typer(tx.build_app(), name="tx")
app.add_typer(query.build_app(), name="query")
app.command("verify")(verify_cmd.verify)
app.command("demo")(demo_cmd.demo)
app.command("api")(api_cmd.api)
app.add_typer(testnet.app, name="testnet")
app.add_typer(iot_cmd.app, name="iot")
app.add_typer(contracts_cmd.app, name="contracts")
app.command("sim")(sim_cmd.sim)
