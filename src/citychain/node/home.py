"""The node's home directory: layout, config file, and where each file lives.

    <home>/config.toml        node settings (solo block interval, RPC address, ...)
    <home>/genesis.json       the chain's genesis document
    <home>/node_key.json      the validator key that signs solo blocks (mode 0600)
    <home>/keyring/<name>.json  account keys of this operator (mode 0600)
    <home>/data/state.db      authenticated state (SQLite)
    <home>/data/blocks.db     blocks, txs and results (SQLite, solo driver)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class HomeError(Exception):
    """The home directory is missing, incomplete or its config is invalid."""


@dataclass(slots=True)
class NodeConfig:
    """Settings read from config.toml (every key optional; these are the defaults)."""

    block_interval: float = 0.2
    max_block_txs: int = 5000
    create_empty_blocks: bool = False
    mempool_size: int = 100_000
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 26657
    extra: dict[str, Any] = field(default_factory=dict)

    def to_toml(self) -> str:
        return (
            "# citychain node settings\n"
            "[solo]\n"
            f"block_interval = {self.block_interval}   # seconds between blocks\n"
            f"max_block_txs = {self.max_block_txs}\n"
            f"create_empty_blocks = {str(self.create_empty_blocks).lower()}\n"
            f"mempool_size = {self.mempool_size}\n\n"
            "[rpc]\n"
            f'host = "{self.rpc_host}"   # keep on loopback; the API gateway is the public face\n'
            f"port = {self.rpc_port}\n"
        )

    @classmethod
    def from_toml(cls, text: str) -> NodeConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise HomeError(f"config.toml is not valid TOML: {exc}") from None
        config = cls()
        mapping = {("solo", "block_interval"): "block_interval",
                   ("solo", "max_block_txs"): "max_block_txs",
                   ("solo", "create_empty_blocks"): "create_empty_blocks",
                   ("solo", "mempool_size"): "mempool_size",
                   ("rpc", "host"): "rpc_host", ("rpc", "port"): "rpc_port"}
        types = {f.name: f.type for f in fields(cls)}
        for (section, key), attr in mapping.items():
            if key in data.get(section, {}):
                value = data[section][key]
                expected = {"float": (int, float), "int": (int,), "bool": (bool,),
                            "str": (str,)}[str(types[attr])]
                if not isinstance(value, expected) or (
                        isinstance(value, bool) and bool not in expected):
                    raise HomeError(f"config.toml [{section}] {key} must be {types[attr]}")
                setattr(config, attr, value)
        if config.block_interval <= 0:
            raise HomeError("config.toml [solo] block_interval must be positive")
        return config


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def genesis_path(self) -> Path:
        return self.root / "genesis.json"

    @property
    def node_key_path(self) -> Path:
        return self.root / "node_key.json"

    @property
    def keyring_dir(self) -> Path:
        return self.root / "keyring"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def state_db(self) -> Path:
        return self.data_dir / "state.db"

    @property
    def blocks_db(self) -> Path:
        return self.data_dir / "blocks.db"

    def is_initialised(self) -> bool:
        return self.genesis_path.exists() and self.node_key_path.exists()

    def require_initialised(self) -> None:
        if not self.root.exists():
            raise HomeError(f"home directory {self.root} does not exist; run "
                            f"`citychain init --home {self.root}` first")
        for path in (self.genesis_path, self.node_key_path):
            if not path.exists():
                raise HomeError(f"{path} is missing; run `citychain init --home {self.root}`")

    def config(self) -> NodeConfig:
        if not self.config_path.exists():
            return NodeConfig()
        return NodeConfig.from_toml(self.config_path.read_text())
