"""A local N-validator CometBFT network on loopback: create it, start, stop and inspect it.

``init_testnet`` lets ``cometbft testnet`` make the validator and node keys, then writes one
directory per validator (see ``citychain.node.supervisor.ValidatorDir``) with:

* its CometBFT config: its own loopback ports (p2p = base + 10 i, rpc = +1, proxy app = +2),
  every other validator as a persistent peer, and fast local timeouts;
* its organisation's account key in its keyring (organisation ``orgI`` holds the validator-org
  role; ``org0`` is also registrar and treasury);
* the shared genesis: chain id, the validators, and ``app_state`` with the identity section
  (every organisation with its roles, plus any extra accounts), the bank section (``ucity``
  and balances) and, when the validators module is registered, its section naming each
  validator's organisation.

The genesis is run through ``init_chain`` on an in-memory application before anything is
written. ``testnet.json`` at the top records the chain id and every node's ports.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from citychain.app.types import RequestInitChain, ValidatorUpdate
from citychain.core.crypto import PrivateKey, address_from_pubkey
from citychain.modules.identity.api import ROLE_REGISTRAR, ROLE_TREASURY, ROLE_VALIDATOR_ORG
from citychain.node.assemble import default_modules, memory_app
from citychain.node.cometbft import (
    find_cometbft,
    is_pid_alive,
    node_id,
    run_cometbft,
    set_config_values,
    stop_group,
    validator_pubkey,
)
from citychain.node.keyring import Keyring
from citychain.node.supervisor import ValidatorDir

DEFAULT_CHAIN_ID = "citychain-testnet"
DENOM = "ucity"
DENOM_DECIMALS = 6
ORGANISATION_BALANCE = 10**15
ORGANISATION_KEY = "org"
PORT_STRIDE = 10
MANIFEST = "testnet.json"

# Local timeouts for several validators sharing two cores (CometBFT's defaults are for a WAN).
LOCAL_CONSENSUS: dict[str, str | int | bool] = {
    "timeout_propose": "500ms",
    "timeout_propose_delta": "200ms",
    "timeout_prevote": "200ms",
    "timeout_prevote_delta": "200ms",
    "timeout_precommit": "200ms",
    "timeout_precommit_delta": "200ms",
    "timeout_commit": "250ms",
    "create_empty_blocks": True,
    "create_empty_blocks_interval": "1s",
}


class TestnetError(Exception):
    """The testnet directory is missing or incomplete, a port is taken, or a node failed."""


@dataclass(frozen=True)
class NodeInfo:
    index: int
    name: str
    p2p_port: int
    rpc_port: int
    proxy_port: int
    node_id: str
    organisation: str  # the organisation's DID
    validator_pubkey: str  # hex

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def proxy_app(self) -> str:
        return f"tcp://127.0.0.1:{self.proxy_port}"


@dataclass(frozen=True)
class Testnet:
    """A testnet directory and its manifest."""

    __test__ = False  # not a pytest test class

    root: Path
    chain_id: str
    nodes: tuple[NodeInfo, ...]

    def node_dir(self, index: int) -> ValidatorDir:
        return ValidatorDir(self.root / self.nodes[index].name)

    @classmethod
    def load(cls, root: Path) -> Testnet:
        """Read ``root/testnet.json``.

        Raises:
            TestnetError: the directory is not a testnet.
        """
        path = root / MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TestnetError(f"{root} is not a testnet ({path}: {exc}); create one with "
                               "`citychain testnet init`") from None
        return cls(root, data["chain_id"], tuple(NodeInfo(**node) for node in data["nodes"]))

    def save(self) -> None:
        data = {"chain_id": self.chain_id,
                "nodes": [node.__dict__ for node in self.nodes]}
        (self.root / MANIFEST).write_text(json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class NodeStatus:
    name: str
    running: bool
    height: int | None = None
    app_hash: str | None = None
    peers: int | None = None
    catching_up: bool | None = None
    error: str = ""


@dataclass(frozen=True)
class GenesisAccount:
    """An extra identity in the genesis app_state (tests, demos): key, roles, balance."""

    pubkey: bytes
    roles: tuple[str, ...] = ()
    balance: int = 0


@dataclass
class TestnetOptions:
    """What ``init_testnet`` creates: validators, chain id, ports, extra genesis accounts and
    consensus settings (``[consensus]`` keys of config.toml); ``config`` overrides any other
    config.toml keys by section (e.g. ``{"mempool": {"recheck": False}}``) and
    ``block_max_bytes`` sets the genesis consensus parameter (benchmarks use both)."""

    __test__ = False  # not a pytest test class
    validators: int = 4
    chain_id: str = DEFAULT_CHAIN_ID
    base_port: int | None = None
    accounts: Sequence[GenesisAccount] = ()
    consensus: Mapping[str, str | int | bool] = field(default_factory=dict)
    config: Mapping[str, Mapping[str, str | int | bool]] = field(default_factory=dict)
    block_max_bytes: int | None = None


def ports_are_free(ports: Sequence[int]) -> bool:
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def node_ports(base_port: int, index: int) -> tuple[int, int, int]:
    """(p2p, rpc, proxy app) of validator ``index``."""
    start = base_port + PORT_STRIDE * index
    return start, start + 1, start + 2


def pick_base_port(validators: int, rng: random.Random | None = None) -> int:
    """A base port whose every node port is free on 127.0.0.1 now.

    Raises:
        TestnetError: none found after many tries.
    """
    rng = rng or random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000 - PORT_STRIDE * validators, PORT_STRIDE)
        if ports_are_free([p for i in range(validators) for p in node_ports(base, i)]):
            return base
    raise TestnetError("found no free range of loopback ports; pass --base-port")


def _organisation_section(organisations: Sequence[tuple[NodeInfo, PrivateKey]],
                          accounts: Sequence[GenesisAccount]) -> dict[str, Any]:
    identity_accounts: list[dict[str, Any]] = []
    balances: dict[str, int] = {}
    for info, key in organisations:
        roles = [ROLE_VALIDATOR_ORG]
        if info.index == 0:
            roles += [ROLE_REGISTRAR, ROLE_TREASURY]
        identity_accounts.append({"pubkey": key.public_key.hex(), "roles": sorted(roles)})
        balances[key.address] = ORGANISATION_BALANCE
    for account in accounts:
        identity_accounts.append({"pubkey": account.pubkey.hex(), "roles": sorted(account.roles)})
        if account.balance:
            address = address_from_pubkey(account.pubkey)
            balances[address] = balances.get(address, 0) + account.balance
    app_state: dict[str, Any] = {
        "identity": {"params": {"self_registration_enabled": True},
                     "accounts": identity_accounts},
        "bank": {"params": {},
                 "denoms": [{"denom": DENOM, "display_name": "City credit",
                             "decimals": DENOM_DECIMALS}],
                 "balances": [{"address": address, "denom": DENOM, "amount": amount}
                              for address, amount in sorted(balances.items())]},
    }
    if "validators" in {module.name for module in default_modules()}:
        app_state["validators"] = {
            "params": {},
            "validators": [{"pubkey": info.validator_pubkey, "power": 1,
                            "organisation": info.organisation, "name": info.name}
                           for info, _ in organisations]}
    return app_state


def init_testnet(root: Path, options: TestnetOptions | None = None) -> Testnet:
    """Create a testnet of ``options.validators`` validators in ``root`` (must not exist or be
    empty).

    Raises:
        TestnetError: ``root`` is not empty, ports are taken, or CometBFT failed.
        CometBftError: the cometbft binary is missing.
        InvalidGenesisError: the application refuses the genesis.
    """
    options = options or TestnetOptions()
    count = options.validators
    if count < 1:
        raise TestnetError("a testnet needs at least one validator")
    if root.exists() and any(root.iterdir()):
        raise TestnetError(f"{root} is not empty; pick a new directory or remove it")
    base = options.base_port if options.base_port is not None else pick_base_port(count)
    wanted = [p for i in range(count) for p in node_ports(base, i)]
    if not ports_are_free(wanted) or max(wanted) > 65535:
        raise TestnetError(f"ports {min(wanted)}-{max(wanted)} on 127.0.0.1 are not all free")
    binary = find_cometbft()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        run_cometbft("testnet", "--v", str(count), "--o", scratch, "--node-dir-prefix", "node",
                     "--populate-persistent-peers=false", "--starting-ip-address", "127.0.0.1",
                     binary=binary)
        for index in range(count):
            shutil.move(os.path.join(scratch, f"node{index}"), root / f"node{index}" / "cometbft")

    organisations: list[tuple[NodeInfo, PrivateKey]] = []
    for index in range(count):
        node = ValidatorDir(root / f"node{index}")
        key = PrivateKey.generate()
        Keyring(node.keyring_dir).create(ORGANISATION_KEY, key)
        p2p, rpc, proxy = node_ports(base, index)
        info = NodeInfo(index=index, name=f"node{index}", p2p_port=p2p, rpc_port=rpc,
                        proxy_port=proxy, node_id=node_id(node.cometbft_home, binary),
                        organisation=key.did,
                        validator_pubkey=validator_pubkey(node.cometbft_home).hex())
        organisations.append((info, key))
    testnet = Testnet(root, options.chain_id, tuple(info for info, _ in organisations))

    # The genesis: CometBFT's own (validators, consensus params) with our chain id and app_state.
    genesis = json.loads((testnet.node_dir(0).cometbft_home / "config" / "genesis.json")
                         .read_text())
    genesis["chain_id"] = options.chain_id
    genesis["initial_height"] = "1"
    for validator, (info, _) in zip(genesis["validators"], organisations, strict=True):
        validator["name"] = info.name
    genesis["app_state"] = _organisation_section(organisations, options.accounts)
    if options.block_max_bytes is not None:
        genesis["consensus_params"]["block"]["max_bytes"] = str(options.block_max_bytes)
    memory_app().init_chain(RequestInitChain(
        chain_id=options.chain_id, time_ns=0, app_state=genesis["app_state"], initial_height=1,
        validators=tuple(ValidatorUpdate(bytes.fromhex(info.validator_pubkey), 1)
                         for info, _ in organisations)))
    genesis_text = json.dumps(genesis, indent=2) + "\n"

    consensus = {**LOCAL_CONSENSUS, **options.consensus}
    for info, _ in organisations:
        node = testnet.node_dir(info.index)
        (node.cometbft_home / "config" / "genesis.json").write_text(genesis_text)
        peers = ",".join(f"{other.node_id}@127.0.0.1:{other.p2p_port}"
                         for other, _ in organisations if other.index != info.index)
        sections: dict[str, dict[str, str | int | bool]] = {
            "": {"moniker": info.name, "proxy_app": info.proxy_app},
            "rpc": {"laddr": f"tcp://127.0.0.1:{info.rpc_port}",
                    "timeout_broadcast_tx_commit": "30s"},
            "p2p": {"laddr": f"tcp://127.0.0.1:{info.p2p_port}", "persistent_peers": peers,
                    "addr_book_strict": False, "allow_duplicate_ip": True,
                    "flush_throttle_timeout": "10ms"},
            "mempool": {"size": 50000, "cache_size": 100000},
            "consensus": consensus,
        }
        for name, values in options.config.items():
            sections.setdefault(name, {}).update(values)
        set_config_values(node.cometbft_home / "config" / "config.toml", sections)
        node.settings_path.write_text(json.dumps({
            "name": info.name, "chain_id": options.chain_id, "proxy_app": info.proxy_app,
            "rpc_port": info.rpc_port, "p2p_port": info.p2p_port}, indent=2) + "\n")
        node.log_dir.mkdir(parents=True, exist_ok=True)
    testnet.save()
    return testnet


# ------------------------------------------------------------------------------- processes


def is_running(testnet: Testnet, index: int) -> bool:
    pid = testnet.node_dir(index).read_pid("supervisor")
    return pid is not None and is_pid_alive(pid)


def start_node(testnet: Testnet, index: int) -> int:
    """Start validator ``index``'s supervisor in the background (its own process group);
    return its pid. Does nothing but return the pid when it already runs."""
    node = testnet.node_dir(index)
    running = node.read_pid("supervisor")
    if running is not None and is_pid_alive(running):
        return running
    node.log_dir.mkdir(parents=True, exist_ok=True)
    with (node.log_dir / "supervisor.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "citychain.node.supervisor", "--node", str(node.root)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    node.write_pid("supervisor", process.pid)
    return process.pid


def stop_node(testnet: Testnet, index: int, timeout: float = 30.0) -> bool:
    """Stop validator ``index`` cleanly (SIGTERM to its process group, SIGKILL after
    ``timeout``); return whether it was running."""
    node = testnet.node_dir(index)
    pid = node.read_pid("supervisor")
    if pid is None:
        return False
    was_running = stop_group(pid, timeout)
    for process in ("supervisor", "app", "cometbft"):
        node.pid_path(process).unlink(missing_ok=True)
    return was_running


def rpc_call(url: str, method: str, timeout: float = 5.0, **params: Any) -> Any:
    """One JSON-RPC call to a CometBFT node.

    Raises:
        httpx.HTTPError: the node cannot be reached.
        TestnetError: the node answered with an error.
    """
    reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                  "params": params}, timeout=timeout).json()
    if "error" in reply:
        raise TestnetError(f"{method}: {reply['error']}")
    return reply["result"]


def node_status(testnet: Testnet, index: int) -> NodeStatus:
    info = testnet.nodes[index]
    running = is_running(testnet, index)
    try:
        status = rpc_call(info.rpc_url, "status", timeout=2.0)
        peers = rpc_call(info.rpc_url, "net_info", timeout=2.0)
    except (httpx.HTTPError, TestnetError, ValueError) as exc:
        return NodeStatus(info.name, running, error=str(exc) or type(exc).__name__)
    sync = status["sync_info"]
    return NodeStatus(info.name, running, height=int(sync["latest_block_height"]),
                      app_hash=sync["latest_app_hash"], peers=int(peers["n_peers"]),
                      catching_up=bool(sync["catching_up"]))


def wait_for_rpc(testnet: Testnet, indexes: Sequence[int], timeout: float = 60.0) -> None:
    """Wait until every node in ``indexes`` answers ``status``.

    Raises:
        TestnetError: a node's supervisor exited, or the time ran out.
    """
    deadline = time.monotonic() + timeout
    waiting = list(indexes)
    while waiting:
        index = waiting[0]
        if node_status(testnet, index).height is not None:
            waiting.pop(0)
            continue
        if not is_running(testnet, index):
            log = testnet.node_dir(index).log_dir / "supervisor.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            raise TestnetError(f"{testnet.nodes[index].name} stopped: " + " | ".join(tail))
        if time.monotonic() > deadline:
            raise TestnetError(f"{testnet.nodes[index].name} did not answer on "
                               f"{testnet.nodes[index].rpc_url} within {timeout:.0f} s")
        time.sleep(0.2)


def start_testnet(testnet: Testnet, indexes: Sequence[int] | None = None,
                  wait: bool = True) -> None:
    """Start the given validators (default: all), optionally waiting for their RPC."""
    chosen = list(range(len(testnet.nodes))) if indexes is None else list(indexes)
    for index in chosen:
        start_node(testnet, index)
    if wait:
        wait_for_rpc(testnet, chosen)


def stop_testnet(testnet: Testnet, indexes: Sequence[int] | None = None) -> list[str]:
    """Stop the given validators (default: all); return the names of those that were running."""
    chosen = list(range(len(testnet.nodes))) if indexes is None else list(indexes)
    return [testnet.nodes[i].name for i in chosen if stop_node(testnet, i)]
