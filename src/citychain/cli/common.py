"""Options and helpers shared by the commands: home, node URL, consoles, JSON output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from citychain.cli.errors import UsageFailure
from citychain.client.rpc import NodeClient
from citychain.node.home import Home
from citychain.node.keyring import Keyring
from citychain.node.supervisor import ValidatorDir

DEFAULT_HOME = Path.home() / ".citychain"
DEFAULT_NODE = "http://127.0.0.1:26657"

HomeOption = Annotated[Path | None, typer.Option(
    "--home", envvar="CITYCHAIN_HOME", show_default=False,
    help="Node home directory (keyring, genesis.json, config.toml, data/). "
         "Default: $CITYCHAIN_HOME or ~/.citychain.")]
NodeOption = Annotated[str | None, typer.Option(
    "--node", envvar="CITYCHAIN_NODE", show_default=False,
    help="RPC URL of the node. Default: $CITYCHAIN_NODE, else the address in the home's "
         "config.toml, else the RPC port in validator.json (a testnet node directory), else "
         f"{DEFAULT_NODE}.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
GenesisOption = Annotated[Path | None, typer.Option(
    "--genesis", metavar="FILE", show_default=False,
    help="With --prove: the genesis whose validators to trust. For a CometBFT node, its "
         "genesis.json (default: HOME/cometbft/config/genesis.json when --home is a testnet "
         "node directory); for the solo node, a citychain genesis.json (default: "
         "HOME/genesis.json).")]


def stderr_console() -> Console:
    """A console on stderr for progress bars (stdout stays parseable). Progress is shown only
    when stderr is a terminal, so redirected stderr holds nothing but errors."""
    return Console(stderr=True, soft_wrap=True)


def stdout_console() -> Console:
    return Console(soft_wrap=True)


def resolve_home(home: Path | None) -> Home:
    return Home((home or DEFAULT_HOME).expanduser())


def keyring_of(home: Path | None) -> Keyring:
    return Keyring(resolve_home(home).keyring_dir)


def resolve_node_url(node: str | None, home: Path | None) -> str:
    """The --node URL, else the RPC address of the home's config.toml, else the RPC port in
    validator.json when the home is a testnet node directory, else the default."""
    if node:
        return node if "://" in node else f"http://{node}"
    root = resolve_home(home)
    if root.config_path.exists():
        config = root.config()
        return f"http://{config.rpc_host}:{config.rpc_port}"
    validator = ValidatorDir(root.root)
    if validator.settings_path.exists():
        try:
            return f"http://127.0.0.1:{int(validator.settings()['rpc_port'])}"
        except (OSError, ValueError, KeyError, TypeError):
            raise UsageFailure(f"{validator.settings_path} names no RPC port") from None
    return DEFAULT_NODE


def open_client(node: str | None, home: Path | None) -> NodeClient:
    return NodeClient(resolve_node_url(node, home))


def plain(value: Any) -> Any:
    """Make decoded chain data JSON-friendly: bytes become hex, tuples lists."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(plain(value), indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


def echo(text: str = "") -> None:
    typer.echo(text)


def parse_hex(text: str, what: str) -> bytes:
    """Decode hex (an optional 0x prefix is allowed).

    Raises:
        CliError (usage): ``text`` is not hex.
    """
    cleaned = text[2:] if text.lower().startswith("0x") else text
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise UsageFailure(f"{what} must be hex, got {text!r}") from None

