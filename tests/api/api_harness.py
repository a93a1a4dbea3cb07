"""Harness of the gateway tests: a solo node with its RPC and a gateway in this process
(imported by tests/api/conftest.py, whose fixtures use it, and by the tests for its types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from typer.testing import CliRunner

from citychain.api.gateway import GatewaySettings
from citychain.api.server import GatewayThread
from citychain.cli.main import app as cli_app
from citychain.core.crypto import PrivateKey
from citychain.node.assemble import SoloRuntime
from citychain.node.keyring import Keyring

GENESIS_TIME_NS = 1_700_000_000_000_000_000
CHAIN_ID = "api-city"


@dataclass
class SoloCity:
    """A running solo chain and its gateway: admin (validator-org, registrar, treasury),
    alice (citizen, 1000 city) and bob (citizen, 5 city)."""

    home: Path
    runtime: SoloRuntime
    rpc_url: str
    api_url: str = ""
    gateway: GatewayThread | None = field(default=None, repr=False)

    @property
    def chain_id(self) -> str:
        return CHAIN_ID

    @property
    def genesis_path(self) -> Path:
        return self.home / "genesis.json"

    def key(self, name: str) -> PrivateKey:
        return Keyring(self.home / "keyring").load(name)

    def start_gateway(self, settings: GatewaySettings | None = None) -> str:
        """(Re)start the gateway; returns its URL."""
        self.stop_gateway()
        settings = settings or GatewaySettings(node_url=self.rpc_url, rate_limit=0)
        self.gateway = GatewayThread(settings).start()
        self.api_url = self.gateway.url
        return self.api_url

    def stop_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None


def init_home(home: Path) -> None:
    result = CliRunner().invoke(cli_app, [
        "init", "--home", str(home), "--chain-id", CHAIN_ID,
        "--genesis-time-ns", str(GENESIS_TIME_NS),
        "--account", "alice:citizen", "--account", "bob:citizen",
        "--balance", "alice:1000000000", "--balance", "bob:5000000"],
        env={"CITYCHAIN_HOME": None, "CITYCHAIN_NODE": None})
    assert result.exit_code == 0, result.stderr
