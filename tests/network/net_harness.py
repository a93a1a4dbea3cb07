"""Shared harness of the network tests: building CometBFT, and probing a running testnet."""

from __future__ import annotations

import base64
import contextlib
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from citychain.client.rpc import RpcError
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.node.testnet import Testnet

ROOT = Path(__file__).resolve().parents[2]


def prepare_cometbft() -> None:
    """Build what the network tests need (never skip): the CometBFT binaries and the protobuf
    classes, at their pinned versions (each step is a no-op when already done)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "install_cometbft.sh")], check=True,
                   stdout=sys.stderr)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_abci_protos.py")], check=True,
                   stdout=sys.stderr)


class NetworkProbe(ABC):
    """Reads of a running testnet, node by node. Subclasses provide ``testnet`` (a field or a
    property) and ``rpc``."""

    testnet: Testnet

    @abstractmethod
    def rpc(self, index: int, method: str, **params: Any) -> Any:
        """Call ``method`` on node ``index``'s CometBFT RPC and return its result."""

    def height(self, index: int) -> int:
        return int(self.rpc(index, "status")["sync_info"]["latest_block_height"])

    def wait_height(self, index: int, height: int, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(RpcError):
                current = self.height(index)
                if current >= height:
                    return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"node{index} did not reach height {height} in {timeout} s\n"
                                   + self.logs(index))
            time.sleep(0.1)

    def header_app_hash(self, index: int, height: int) -> str:
        header = self.rpc(index, "block", height=str(height))["block"]["header"]
        return str(header["app_hash"]).upper()

    def app_info(self, index: int) -> tuple[int, str]:
        info = self.rpc(index, "abci_info")["response"]
        return (int(info.get("last_block_height", 0)),
                base64.b64decode(info.get("last_block_app_hash", "")).hex().upper())

    def assert_same_app_hash(self, nodes: list[int] | None = None) -> int:
        """Every node's application agrees with the headers of the first node listed (default:
        every node); returns the highest height checked."""
        nodes = list(range(len(self.testnet.nodes))) if nodes is None else nodes
        reference = nodes[0]
        checked = 0
        for index in nodes:
            height, app_hash = self.app_info(index)
            self.wait_height(reference, height + 1)
            assert self.header_app_hash(reference, height + 1) == app_hash, (
                f"node{index}'s application disagrees at height {height}\n" + self.logs(index))
            checked = max(checked, height)
        return checked

    def query(self, index: int, path: str, params: dict[str, Any]) -> Any:
        """The node's committed state (a tx sent through it and committed is visible)."""
        response = self.rpc(index, "abci_query", path=path,
                            data=codec.encode(params).hex())["response"]
        assert int(response.get("code", 0)) == 0, response
        return codec.decode(base64.b64decode(response["value"])) if response.get("value") else None

    def sequence_of(self, key: PrivateKey, index: int) -> int:
        account = self.query(index, "/identity/account", {"address": key.address})
        return 0 if account is None else int(account["sequence"])

    def logs(self, index: int, lines: int = 15) -> str:
        out = []
        for name in ("supervisor.log", "app.log", "cometbft.log"):
            path = self.testnet.node_dir(index).log_dir / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- node{index}/{name}\n" + "\n".join(tail))
        return "\n".join(out)
