"""`citychain testnet init|add-node|start|stop|status|run`: a local CometBFT network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from citychain.cli.common import echo
from citychain.cli.errors import CliError
from citychain.core.errors import ChainError
from citychain.node.cometbft import CometBftError
from citychain.node.join import add_node
from citychain.node.supervisor import Supervisor
from citychain.node.testnet import (
    DEFAULT_CHAIN_ID,
    Testnet,
    TestnetError,
    TestnetOptions,
    init_testnet,
    node_status,
    start_testnet,
    stop_testnet,
)

app = typer.Typer(help="Run a local network of several validators on CometBFT (loopback only).",
                  no_args_is_help=True)

DirOption = Annotated[Path, typer.Option("--dir", help="The testnet directory.")]
NodesOption = Annotated[list[int] | None, typer.Option(
    "--node", show_default=False, help="Only this validator (by index); repeatable.")]


@contextmanager
def _failures() -> Iterator[None]:
    try:
        yield
    except (TestnetError, CometBftError) as exc:
        raise CliError(str(exc)) from None


def _load(directory: Path) -> Testnet:
    with _failures():
        return Testnet.load(directory)


def _check_indexes(testnet: Testnet, nodes: list[int] | None) -> list[int] | None:
    for index in nodes or []:
        if not 0 <= index < len(testnet.nodes):
            raise CliError(f"--node {index}: the testnet has validators 0-{len(testnet.nodes) - 1}",
                           exit_code=2)
    return nodes or None


@app.command("init")
def init(
    directory: DirOption,
    validators: Annotated[int, typer.Option("--validators", "-v", min=1, max=32,
                                            help="Number of validators.")] = 4,
    chain_id: Annotated[str, typer.Option("--chain-id")] = DEFAULT_CHAIN_ID,
    base_port: Annotated[int | None, typer.Option(
        "--base-port", min=1024, max=65000, show_default=False,
        help="First port: validator i uses base+10i (p2p), +1 (rpc), +2 (proxy app). "
             "Default: a free range picked now.")] = None,
) -> None:
    """Create the validators' homes, keys, CometBFT configs and the shared genesis."""
    with _failures():
        try:
            testnet = init_testnet(directory, TestnetOptions(validators=validators,
                                                             chain_id=chain_id,
                                                             base_port=base_port))
        except ChainError as exc:
            raise CliError(f"the application refuses the genesis: {exc}") from None
    echo(f"testnet {testnet.chain_id} in {directory}: {len(testnet.nodes)} validators")
    for node in testnet.nodes:
        echo(f"  {node.name}  p2p {node.p2p_port}  rpc {node.rpc_url}  proxy app "
             f"{node.proxy_port}  organisation {node.organisation}")
    echo(f"start it with: citychain testnet start --dir {directory}")


@app.command("add-node")
def add_node_command(directory: DirOption) -> None:
    """Create the next node of the testnet (a full node, not a validator) with its own ports,
    keys and organisation key; it joins the set only by a validators-module proposal."""
    with _failures():
        info = add_node(directory)
    echo(f"{info.name} added to {directory}: p2p {info.p2p_port}  rpc {info.rpc_url}  proxy app "
         f"{info.proxy_port}")
    echo(f"  organisation key  {directory / info.name / 'keyring'} ({info.organisation})")
    echo(f"  validator pubkey  {info.validator_pubkey}")
    echo(f"start it with: citychain testnet start --dir {directory} --node {info.index}")


@app.command("start")
def start(directory: DirOption, nodes: NodesOption = None,
          wait: Annotated[bool, typer.Option(help="Wait until every node answers RPC.")] = True,
          ) -> None:
    """Start validators in the background (logs in nodeI/logs, pids in nodeI/*.pid)."""
    testnet = _load(directory)
    chosen = _check_indexes(testnet, nodes)
    with _failures():
        start_testnet(testnet, chosen, wait=wait)
    for index in chosen or range(len(testnet.nodes)):
        echo(f"{testnet.nodes[index].name} started, rpc {testnet.nodes[index].rpc_url}")


@app.command("stop")
def stop(directory: DirOption, nodes: NodesOption = None) -> None:
    """Stop validators cleanly (CometBFT first, then the application)."""
    testnet = _load(directory)
    stopped = stop_testnet(testnet, _check_indexes(testnet, nodes))
    echo(f"stopped: {', '.join(stopped)}" if stopped else "no validator was running")


@app.command("status")
def status(directory: DirOption,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Per validator: running, height, app hash, peers."""
    testnet = _load(directory)
    rows = [node_status(testnet, index) for index in range(len(testnet.nodes))]
    if as_json:
        echo(json.dumps([asdict(row) for row in rows], indent=2))
        return
    echo(f"{'node':<8}{'running':<9}{'height':>8}  {'peers':>5}  app hash")
    for row in rows:
        height = "-" if row.height is None else str(row.height)
        peers = "-" if row.peers is None else str(row.peers)
        echo(f"{row.name:<8}{'yes' if row.running else 'no':<9}{height:>8}  {peers:>5}  "
             f"{row.app_hash or row.error[:60]}")


@app.command("run")
def run(directory: DirOption,
        node: Annotated[int, typer.Option("--node", help="The validator's index.")]) -> None:
    """Run one validator in the foreground (application + CometBFT) until Ctrl-C."""
    testnet = _load(directory)
    _check_indexes(testnet, [node])
    code = Supervisor(testnet.node_dir(node)).run()
    if code:
        raise typer.Exit(code)

