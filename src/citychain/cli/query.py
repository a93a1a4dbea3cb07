"""`citychain query`: read state from a node, optionally verified against a signed header.

One sub-command per module query (``query bank balance --param did=... --param denom=ucity``),
plus ``query account``, ``query balance`` and ``query key`` for everyday use.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from citychain.cli import chain
from citychain.cli.common import (
    GenesisOption,
    HomeOption,
    JsonOption,
    NodeOption,
    echo,
    parse_hex,
    print_json,
)
from citychain.cli.errors import UsageFailure
from citychain.core.crypto import address_from_did, is_address
from citychain.core.module import Module
from citychain.node.assemble import default_modules

ProveOption = Annotated[bool, typer.Option(
    "--prove", help="Verify the answer: check every read's Merkle proof against the app hash of "
                    "a header signed by validators trusted from genesis (on a CometBFT node: "
                    "by more than 2/3 of their voting power), and re-run the query over the "
                    "proven reads. Exit code 4 if anything does not match.")]
TrustNodeOption = Annotated[bool, typer.Option(
    "--trust-node", help="With --prove and no trusted genesis (--genesis, or the home's): take "
                         "the trusted validators from the node's own genesis (weaker).")]
HeightOption = Annotated[int, typer.Option(
    "--height", min=0, help="Committed height to read at (0: the latest).")]
ParamOption = Annotated[list[str] | None, typer.Option(
    "--param", "-p", metavar="KEY=VALUE", show_default=False,
    help="A query parameter. VALUE is an integer if it is up to 18 digits, else a string; force "
         "a type with KEY:str=VALUE, KEY:int=VALUE, KEY:bool=true or KEY:hex=00ff. Repeatable.")]

_PARAM_RE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<kind>str|int|bool|hex))?="
                       r"(?P<value>.*)$", re.DOTALL)
_SMALL_INT_RE = re.compile(r"^-?\d{1,18}$")


def parse_param(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` (or ``KEY:TYPE=VALUE``) into a typed query parameter.

    Raises:
        UsageFailure: malformed text or value.
    """
    match = _PARAM_RE.match(text)
    if match is None:
        raise UsageFailure(f"--param {text!r} must be KEY=VALUE or KEY:TYPE=VALUE")
    key, kind, value = match["key"], match["kind"], match["value"]
    if kind == "str":
        return key, value
    if kind == "hex":
        return key, parse_hex(value, f"--param {key}")
    if kind == "bool":
        if value.lower() not in ("true", "false"):
            raise UsageFailure(f"--param {key}: a bool is true or false, got {value!r}")
        return key, value.lower() == "true"
    if kind == "int" or (kind is None and _SMALL_INT_RE.match(value)):
        try:
            return key, int(value)
        except ValueError:
            raise UsageFailure(f"--param {key}: {value!r} is not an integer") from None
    return key, value


def parse_params(items: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for text in items or ():
        key, value = parse_param(text)
        if key in params:
            raise UsageFailure(f"--param {key} is given twice")
        params[key] = value
    return params


def account_params(reference: str) -> dict[str, str]:
    """``{"did": ...}`` or ``{"address": ...}`` for an argument that is either.

    Raises:
        UsageFailure: the argument is neither a did:city DID nor an address.
    """
    if address_from_did(reference) is not None:
        return {"did": reference}
    if is_address(reference.lower()):
        return {"address": reference.lower()}
    raise UsageFailure(f"{reference!r} is neither a did:city DID nor an address "
                       "(40 hex characters)")


def report(outcome: chain.QueryOutcome, as_json: bool) -> None:
    if as_json:
        print_json({**outcome.to_value(), "verification": outcome.verification})
        return
    if outcome.value is None:
        echo(f"not found (height {outcome.height})")
    elif isinstance(outcome.value, bytes):
        echo(outcome.value.hex())
    else:
        print_json(outcome.value)
    if outcome.verification is not None:
        echo(outcome.verification)


def run_query(path: str, params: dict[str, Any], *, home: Path | None, node: str | None,
              height: int, prove: bool, trust_node: bool, as_json: bool,
              genesis: Path | None = None) -> None:
    report(chain.query(home, node, path, params, height=height, prove=prove,
                       trust_node=trust_node, genesis=genesis), as_json)


def make_query_command(path: str, handler: Callable[..., Any],
                       provable: bool) -> Callable[..., None]:
    def command(
        param: ParamOption = None,
        height: HeightOption = 0,
        prove: ProveOption = False,
        trust_node: TrustNodeOption = False,
        genesis: GenesisOption = None,
        home: HomeOption = None,
        node: NodeOption = None,
        as_json: JsonOption = False,
    ) -> None:
        run_query(path, parse_params(param), home=home, node=node, height=height, prove=prove,
                  trust_node=trust_node, as_json=as_json, genesis=genesis)

    doc = inspect.cleandoc(handler.__doc__ or path)
    note = "" if provable else ("\n\nThis query reads a range, so it cannot be used with "
                                "--prove.")
    command.__doc__ = f"Query {path}. {doc}{note}"
    return command


def account(
    reference: Annotated[str, typer.Argument(metavar="DID_OR_ADDRESS",
                                             help="did:city:ADDRESS or the address.")],
    height: HeightOption = 0,
    prove: ProveOption = False,
    trust_node: TrustNodeOption = False,
    genesis: GenesisOption = None,
    home: HomeOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show an identity: DID, key, sequence, roles and status."""
    run_query(chain.ACCOUNT_PATH, account_params(reference), home=home, node=node,
              height=height, prove=prove, trust_node=trust_node, as_json=as_json,
              genesis=genesis)


def balance(
    reference: Annotated[str, typer.Argument(metavar="ADDRESS_OR_DID",
                                             help="did:city:ADDRESS or the address.")],
    denom: Annotated[str, typer.Argument(metavar="DENOM", help="Denomination, e.g. ucity.")],
    height: HeightOption = 0,
    prove: ProveOption = False,
    trust_node: TrustNodeOption = False,
    genesis: GenesisOption = None,
    home: HomeOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show an account's balance in one denomination (in its smallest unit)."""
    run_query("/bank/balance", {**account_params(reference), "denom": denom}, home=home,
              node=node, height=height, prove=prove, trust_node=trust_node, as_json=as_json,
              genesis=genesis)


def key(
    key_hex: Annotated[str, typer.Argument(metavar="HEX", help="The raw store key, in hex.")],
    height: HeightOption = 0,
    prove: ProveOption = False,
    trust_node: TrustNodeOption = False,
    genesis: GenesisOption = None,
    home: HomeOption = None,
    node: NodeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Read one raw store key (the value is printed in hex); with --prove, check its
    membership or non-membership proof."""
    outcome = chain.query_key(home, node, parse_hex(key_hex, "HEX"), height=height,
                              prove=prove, trust_node=trust_node, genesis=genesis)
    report(outcome, as_json)


def build_app(modules: list[Module] | None = None) -> typer.Typer:
    app = typer.Typer(help="Read state from a node; --prove verifies the answer without "
                           "trusting the node.", no_args_is_help=True)
    app.command("account")(account)
    app.command("balance")(balance)
    app.command("key")(key)
    for module in modules if modules is not None else default_modules():
        group = typer.Typer(help=f"Queries of the {module.name} module.", no_args_is_help=True)
        for name in sorted(module.queries):
            command = make_query_command(f"/{module.name}/{name}", module.queries[name],
                                         name in module.provable_queries)
            group.command(name.replace("_", "-"))(command)
        app.add_typer(group, name=module.name)
    return app
