"""Composition root: which modules run, in which order, and how a node is put together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from citychain.app.application import Application
from citychain.app.genesis import Genesis
from citychain.consensus.solo.blockstore import BlockStore
from citychain.consensus.solo.node import SoloNode
from citychain.core.module import Module
from citychain.core.query_index import QueryIndex
from citychain.node.home import Home, NodeConfig
from citychain.node.keyring import read_key_file
from citychain.store import MemoryStore, SqliteStore, VersionedStore


def default_modules() -> list[Module]:
    """The modules of this release, in execution order (never discovered: order is consensus)."""
    from citychain.modules.bank.module import MODULE as BANK
    from citychain.modules.contracts.module import MODULE as CONTRACTS
    from citychain.modules.identity.module import MODULE as IDENTITY
    from citychain.modules.oracle.module import MODULE as ORACLE
    from citychain.modules.validators.module import MODULE as VALIDATORS

    return [IDENTITY, BANK, VALIDATORS, ORACLE, CONTRACTS]


def query_indexes() -> tuple[QueryIndex, ...]:
    """The query indexes of the default modules (node-local, outside the app hash)."""
    return tuple(index for module in default_modules() for index in module.query_indexes)


def rebuild_query_indexes(state_db: Path,
                          progress: Callable[[int, int], None] | None = None) -> int:
    """Rebuild a stopped node's query indexes from its state database; return the entries.

    Raises:
        FileNotFoundError: ``state_db`` does not exist (the node never committed a block).
        StoreFormatError: the file is not a citychain state database.
    """
    if not state_db.exists():
        raise FileNotFoundError(f"no state database at {state_db}")
    store = SqliteStore(str(state_db))
    try:
        return store.attach_indexes(query_indexes(), progress, rebuild=True) or 0
    finally:
        store.close()


def build_app(store: VersionedStore) -> Application:
    from citychain.modules.identity.api import ACCOUNT_KEEPER

    return Application(store, default_modules(), ACCOUNT_KEEPER)


def memory_app() -> Application:
    """A fresh application on an in-memory store (tests, audits)."""
    return build_app(MemoryStore())


def load_genesis(home: Home) -> Genesis:
    return Genesis.from_json(home.genesis_path.read_text())


@dataclass
class SoloRuntime:
    """Everything a running solo node holds open."""

    home: Home
    config: NodeConfig
    genesis: Genesis
    store: SqliteStore
    blocks: BlockStore
    app: Application
    node: SoloNode

    def close(self) -> None:
        self.node.stop()
        self.blocks.close()
        self.store.close()


def open_solo(root: Path | str, config: NodeConfig | None = None) -> SoloRuntime:
    """Open (not start) a solo node from its home directory.

    Raises:
        HomeError: the home is not initialised or its config is invalid.
        InvalidGenesisError: genesis.json is invalid.
    """
    home = Home(Path(root))
    home.require_initialised()
    config = config or home.config()
    genesis = load_genesis(home)
    home.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(str(home.state_db))
    blocks = BlockStore(home.blocks_db)
    app = build_app(store)
    node = SoloNode(app, blocks, read_key_file(home.node_key_path), genesis,
                    block_interval=config.block_interval, max_block_txs=config.max_block_txs,
                    create_empty_blocks=config.create_empty_blocks,
                    mempool_size=config.mempool_size)
    return SoloRuntime(home, config, genesis, store, blocks, app, node)
