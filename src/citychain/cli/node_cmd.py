"""`citychain node start`: run a solo node, or one validator of a CometBFT network."""

from __future__ import annotations

import signal
import threading
from dataclasses import replace
from types import FrameType
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from citychain.cli.common import HomeOption, echo, resolve_home, stderr_console
from citychain.cli.errors import CliError, UsageFailure
from citychain.consensus.solo.node import BlockStats, SoloNode
from citychain.consensus.solo.rpc import RpcServer
from citychain.node.assemble import open_solo, rebuild_query_indexes
from citychain.node.cometbft import is_pid_alive
from citychain.node.supervisor import Supervisor, ValidatorDir

app = typer.Typer(help="Run a node, or rebuild its query indexes.", no_args_is_help=True)


def replay_with_progress(node: SoloNode) -> int:
    """Replay stored blocks the state has not committed yet, with a progress bar on stderr."""
    behind = node.blocks.latest_height - node.app.last_height
    if behind <= 0:
        return 0
    console = stderr_console()
    with Progress(TextColumn("replaying blocks"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("replay", total=behind)
        replayed = node.handshake(lambda done, total: progress.update(task, completed=done,
                                                                      total=total))
    return replayed


def block_line(stats: BlockStats) -> str:
    """One line per block: height, txs, failed txs, app hash prefix."""
    return (f"block {stats.height:>7}  txs {stats.tx_count:>5}  failed {stats.failed:>4}  "
            f"app {stats.app_hash.hex()[:16]}")


@app.command("start")
def start(
    home: HomeOption = None,
    rpc_port: Annotated[int | None, typer.Option(
        "--rpc-port", min=0, max=65535, show_default=False,
        help="RPC port on the loopback address (default: [rpc] port in config.toml; "
             "0 picks a free port).")] = None,
    block_interval: Annotated[float | None, typer.Option(
        "--block-interval", min=0.001, show_default=False,
        help="Seconds between blocks (default: [solo] block_interval in config.toml).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="Do not print a line per block.")] = False,
) -> None:
    """Start the node of a home, until Ctrl-C or SIGTERM.

    A solo home (from `citychain init`): replay if needed, produce blocks, serve JSON-RPC; the
    block in progress is finished and committed, then the stores are closed.

    A validator directory of a CometBFT network (it holds validator.json, e.g. net/node0 from
    `citychain testnet init`): run that organisation's application and its CometBFT under one
    supervisor; if either stops, both stop and the reason is printed (ports come from
    validator.json, so --rpc-port and --block-interval do not apply).
    """
    root = resolve_home(home)
    validator = ValidatorDir(root.root)
    if validator.settings_path.exists():
        if rpc_port is not None or block_interval is not None:
            raise UsageFailure(f"{root.root} is a CometBFT validator directory: its ports and "
                               "block timing come from validator.json and its CometBFT config, "
                               "so --rpc-port and --block-interval do not apply")
        code = Supervisor(validator).run()
        if code:
            raise typer.Exit(code)
        return
    root.require_initialised()
    config = root.config()
    if rpc_port is not None:
        config = replace(config, rpc_port=rpc_port)
    if block_interval is not None:
        config = replace(config, block_interval=block_interval)
    runtime = open_solo(root.root, config)
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    server: RpcServer | None = None
    try:
        replayed = replay_with_progress(runtime.node)
        if not quiet:
            runtime.node.on_block.append(lambda stats: echo(block_line(stats)))
        runtime.node.start()
        try:
            server = RpcServer(runtime.node, config.rpc_host, config.rpc_port)
        except OSError as exc:
            raise CliError(f"cannot serve RPC on {config.rpc_host}:{config.rpc_port}: "
                           f"{exc.strerror or exc}") from None
        server.start()
        for sig in previous:
            signal.signal(sig, request_stop)
        echo(f"chain {runtime.genesis.chain_id} at height {runtime.app.last_height}"
             + (f" (replayed {replayed} blocks)" if replayed else ""))
        echo(f"rpc: {server.url}")
        echo("press Ctrl-C to stop")
        while not stop.wait(0.25):
            if runtime.node.last_error is not None:
                raise CliError(f"block production stopped: {runtime.node.last_error}")
        echo("stopping: finishing the block in progress")
    finally:
        if server is not None:
            server.stop()
        runtime.node.stop()
        height = runtime.app.last_height
        runtime.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    echo(f"stopped at height {height}")


@app.command("reindex")
def reindex(home: HomeOption = None) -> None:
    """Rebuild the node's query indexes from its state database (the node must be stopped).

    Query indexes are node-local lookups that queries read and the app hash leaves out (which
    batches list a device, for `/oracle/anchors_by_device`); every commit writes them with its
    block and a node rebuilds them by itself when they are missing or were built by another
    version (docs/adr/0011-query-index.md). Run this when `citychain verify` reports a query
    index entry missing or different. Works on a solo home and on a validator directory.
    """
    root = resolve_home(home)
    validator = ValidatorDir(root.root)
    pid = validator.read_pid("supervisor") if validator.settings_path.exists() else None
    if pid is not None and is_pid_alive(pid):
        raise CliError(f"the node of {root.root} is running (supervisor pid {pid}); stop it "
                       "first")
    console = stderr_console()
    with Progress(TextColumn("rebuilding query indexes"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("reindex", total=None)
        try:
            entries = rebuild_query_indexes(
                root.state_db, lambda done, total: progress.update(task, completed=done,
                                                                   total=total))
        except FileNotFoundError:
            raise CliError(f"{root.root} has no state database yet ({root.state_db}): "
                           "nothing to index") from None
    echo(f"query indexes rebuilt: {entries} {'entry' if entries == 1 else 'entries'}")
