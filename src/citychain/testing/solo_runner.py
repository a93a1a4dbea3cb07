"""Run a solo node from a home directory in this process, for crash tests (``python -m``).

Usage::

    python -m citychain.testing.solo_runner --home DIR [--port 0] [--crash-after-save HEIGHT]

Prints ``READY <rpc url> <height>`` on stdout once the handshake is done and the RPC serves, then
runs until SIGTERM/SIGINT. With ``--crash-after-save H`` (or the environment variable
``CITYCHAIN_CRASH_AFTER_SAVE=H``) the process kills itself with SIGKILL right after block ``H`` is
written to the block store and before the application commits its state: the exact window the
handshake's replay exists for.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from citychain.consensus.solo.blockstore import BlockStore, StoredBlock
from citychain.consensus.solo.node import SoloNode
from citychain.consensus.solo.rpc import RpcServer
from citychain.node.assemble import build_app, load_genesis
from citychain.node.home import Home
from citychain.node.keyring import read_key_file
from citychain.store import SqliteStore

CRASH_ENV = "CITYCHAIN_CRASH_AFTER_SAVE"


class CrashingBlockStore(BlockStore):
    """A block store that SIGKILLs its own process right after saving block ``crash_height``."""

    def __init__(self, path: Path | str, crash_height: int) -> None:
        super().__init__(path)
        self.crash_height = crash_height

    def save(self, block: StoredBlock) -> None:
        super().save(block)
        if block.height == self.crash_height:
            os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m citychain.testing.solo_runner")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--block-interval", type=float, default=None)
    parser.add_argument("--crash-after-save", type=int,
                        default=int(os.environ.get(CRASH_ENV, "0") or 0))
    args = parser.parse_args(argv)

    home = Home(args.home)
    home.require_initialised()
    config = home.config()
    genesis = load_genesis(home)
    home.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(str(home.state_db))
    blocks: BlockStore = (CrashingBlockStore(home.blocks_db, args.crash_after_save)
                          if args.crash_after_save else BlockStore(home.blocks_db))
    app = build_app(store)
    node = SoloNode(app, blocks, read_key_file(home.node_key_path), genesis,
                    block_interval=args.block_interval or config.block_interval,
                    max_block_txs=config.max_block_txs,
                    create_empty_blocks=config.create_empty_blocks,
                    mempool_size=config.mempool_size)
    node.start()
    rpc = RpcServer(node, args.host, args.port)
    rpc.start()
    done = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"READY {rpc.url} {app.last_height}", flush=True)
    while not done.wait(0.5):
        if node.last_error is not None:
            print(f"FAILED {node.last_error!r}", file=sys.stderr, flush=True)
            break
    rpc.stop()
    node.stop()
    blocks.close()
    store.close()
    return 1 if node.last_error is not None else 0


if __name__ == "__main__":
    sys.exit(main())
