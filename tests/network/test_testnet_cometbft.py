"""A real 4-validator CometBFT testnet of citychain on loopback: agreement, crashes, halts, tamper.

One network (``citychain.node.testnet``) serves the tests of this file in order; each test leaves
all four validators running again, except the last, which corrupts one node for good. Signed
identity and bank transactions go to different nodes through ``broadcast_tx_sync``
(``citychain.client.rpc.NodeClient``); a transaction counts as committed once ``tx`` finds it
with code 0. Agreement is checked by comparing every application's ``abci_info`` app hash with
the app hash the network put in the next block header.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import random
import re
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from net_harness import NetworkProbe, prepare_cometbft

from citychain.client.rpc import NodeClient, RpcError
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.messages import Msg
from citychain.core.tx import build_tx
from citychain.modules.bank.keys import balance_key
from citychain.modules.bank.messages import MsgTransfer
from citychain.modules.identity.api import ROLE_OPERATOR
from citychain.modules.identity.messages import MsgCreateIdentity, MsgGrantRole
from citychain.node.cometbft import is_pid_alive
from citychain.node.keyring import Keyring
from citychain.node.testnet import (
    ORGANISATION_KEY,
    GenesisAccount,
    Testnet,
    TestnetOptions,
    init_testnet,
    is_running,
    start_node,
    start_testnet,
    stop_node,
    stop_testnet,
    wait_for_rpc,
)

pytestmark = [pytest.mark.slow]


CHAIN_ID = "citychain-nettest"
DENOM = "ucity"
SENDERS = 12
SENDER_BALANCE = 10**9


def sender_key(index: int) -> PrivateKey:
    return PrivateKey.from_secret(f"citychain-testnet-test/sender-{index}")


# ============================================================================ harness


@dataclass
class Sender:
    key: PrivateKey
    node: int
    sequence: int = 0


@dataclass
class Net(NetworkProbe):
    testnet: Testnet
    clients: list[NodeClient]
    senders: list[Sender]
    committed: dict[str, int] = field(default_factory=dict)  # tx hash hex -> height
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def size(self) -> int:
        return len(self.testnet.nodes)

    def rpc(self, index: int, method: str, **params: Any) -> Any:
        return self.clients[index].call(method, **params)

    def find_tx(self, index: int, hash_hex: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.rpc(
                index, "tx", hash=base64.b64encode(bytes.fromhex(hash_hex)).decode())
        except RpcError as exc:
            if "not found" in str(exc):
                return None
            raise
        return result

    def wait_tx(self, index: int, hash_hex: str, timeout: float = 15) -> dict[str, Any] | None:
        """``find_tx``, waiting a while: CometBFT indexes a block's txs just after applying it,
        so a node that reports a height may not have indexed its last block yet."""
        deadline = time.monotonic() + timeout
        while (found := self.find_tx(index, hash_hex)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        return found

    def indexed_txs(self, index: int, height: int) -> int:
        """How many txs node ``index``'s tx index holds for block ``height``."""
        result = self.rpc(index, "tx_search", query=f"tx.height={height}", per_page="100")
        return int(result["total_count"])

    def block_txs(self, index: int, height: int) -> int:
        return len(self.rpc(index, "block", height=str(height))["block"]["data"]["txs"] or [])


class Load:
    """Senders pinned to nodes sign and send transfers with broadcast_tx_sync until stopped."""

    def __init__(self, net: Net, nodes: list[int], seed: int) -> None:
        self.net = net
        self.nodes = nodes
        self.rng = random.Random(seed)
        self.accepted: list[str] = []
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(sender, seed + number),
                                         daemon=True)
                        for number, sender in enumerate(net.senders) if sender.node in nodes]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self, sender: Sender, seed: int) -> None:
        rng = random.Random(seed)
        client = NodeClient(self.net.testnet.nodes[sender.node].rpc_url, timeout=10)
        try:
            while not self.stop_event.is_set():
                to = rng.choice(self.net.senders).key
                raw = build_tx(sender.key, CHAIN_ID, sender.sequence,
                               MsgTransfer(to.did, DENOM, rng.randint(1, 1000)))
                try:
                    answer = client.broadcast(raw, commit=False)
                except RpcError:
                    self.stop_event.wait(0.5)
                    continue
                if answer["code"] == 0:
                    sender.sequence += 1
                    with self.net.lock:
                        self.accepted.append(hashlib.sha256(raw).hexdigest().upper())
                else:  # a stale or future sequence after a crash: read the committed one
                    self.stop_event.wait(0.3)
                    with contextlib.suppress(RpcError, AssertionError):
                        sender.sequence = self.net.sequence_of(sender.key, sender.node)
                self.stop_event.wait(0.02)
        finally:
            client.close()


def settle(net: Net, hashes: list[str], reader: int, timeout: float = 30) -> list[str]:
    """Wait until the accepted ``hashes`` are committed (or the time runs out); record and
    return those that were."""
    deadline = time.monotonic() + timeout
    pending = list(hashes)
    found: list[str] = []
    while pending and time.monotonic() < deadline:
        still = []
        for hash_hex in pending:
            result = net.find_tx(reader, hash_hex)
            if result is None:
                still.append(hash_hex)
            else:
                assert int(result["tx_result"].get("code", 0)) == 0, result
                found.append(hash_hex)
                net.committed[hash_hex] = int(result["height"])
        pending = still
        if pending:
            time.sleep(0.3)
    return found


def resync(net: Net, index: int) -> None:
    for sender in net.senders:
        sender.sequence = net.sequence_of(sender.key, index)


def kill_group(net: Net, index: int) -> None:
    """SIGKILL the validator's supervisor, application and CometBFT at once."""
    node = net.testnet.node_dir(index)
    pid = node.read_pid("supervisor")
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    prepare_cometbft()
    root = tmp_path_factory.mktemp("testnet") / "net"
    senders = [sender_key(i) for i in range(SENDERS)]
    testnet = init_testnet(root, TestnetOptions(
        validators=4, chain_id=CHAIN_ID,
        accounts=[GenesisAccount(key.public_key, (), SENDER_BALANCE) for key in senders]))
    clients = [NodeClient(node.rpc_url, timeout=30) for node in testnet.nodes]
    network = Net(testnet, clients, [Sender(key, i % 4) for i, key in enumerate(senders)])
    try:
        start_testnet(testnet)
        network.wait_height(0, 2)
        yield network
    finally:
        stop_testnet(testnet)
        for index in range(len(testnet.nodes)):  # anything a killed supervisor left behind
            for process in ("app", "cometbft"):
                pid = testnet.node_dir(index).read_pid(process)
                if pid is not None and is_pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
        for client in clients:
            client.close()


# ============================================================================ tests


@pytest.mark.timeout(150)
def test_a_random_workload_leaves_identical_app_hashes_on_all_nodes(net: Net) -> None:
    rng = random.Random(11)
    org0 = Keyring(net.testnet.node_dir(0).keyring_dir).load(ORGANISATION_KEY)
    org_sequence = net.sequence_of(org0, 0)
    newcomers = [PrivateKey.from_secret(f"citychain-testnet-test/newcomer-{i}") for i in range(8)]
    accepted: list[str] = []

    def send(index: int, raw: bytes) -> None:
        answer = net.clients[index].broadcast(raw, commit=False)
        assert answer["code"] == 0, answer
        accepted.append(hashlib.sha256(raw).hexdigest().upper())

    # Identity: newcomers register themselves, each through another node.
    for number, key in enumerate(newcomers):
        send(number % 4, build_tx(key, CHAIN_ID, 0, MsgCreateIdentity(key.public_key)))
    assert len(settle(net, accepted, 1)) == len(accepted)
    # The registrar grants a role; senders pay newcomers and each other, on every node.
    messages: list[Msg] = [MsgGrantRole(newcomers[0].did, ROLE_OPERATOR)]
    send(0, build_tx(org0, CHAIN_ID, org_sequence, *messages))
    for _ in range(60):
        sender = rng.choice(net.senders)
        to = rng.choice([*newcomers, *(s.key for s in net.senders)])
        send(sender.node, build_tx(sender.key, CHAIN_ID, sender.sequence,
                                   MsgTransfer(to.did, DENOM, rng.randint(1, 10**6))))
        sender.sequence += 1
    # A refused tx (stale sequence) never enters a block.
    stale = build_tx(net.senders[0].key, CHAIN_ID, 0, MsgTransfer(newcomers[0].did, DENOM, 1))
    assert net.clients[2].broadcast(stale, commit=False)["code"] != 0
    # broadcast_tx_commit through the client works against CometBFT as well.
    sender = net.senders[3]
    done = net.clients[sender.node].broadcast(build_tx(
        sender.key, CHAIN_ID, sender.sequence, MsgTransfer(newcomers[1].did, DENOM, 5)))
    sender.sequence += 1
    assert done["check_tx"]["code"] == 0 and done["tx_result"].get("code", 0) == 0, done

    assert len(settle(net, accepted, 3)) == len(accepted)
    account = net.query(2, "/identity/account", {"did": newcomers[0].did})
    assert ROLE_OPERATOR in account["roles"]
    height = net.assert_same_app_hash()
    assert height >= max(net.committed.values())
    balances = {net.query(i, "/bank/balance", {"address": newcomers[1].address, "denom": DENOM})
                ["amount"] for i in range(4)}
    assert len(balances) == 1  # (queries may see different heights; quiet chain, same answer)


@pytest.mark.timeout(180)
def test_b_kill_9_one_validator_under_load_then_it_catches_up(net: Net) -> None:
    resync(net, 0)
    with Load(net, [0, 1, 2, 3], seed=21) as load:
        time.sleep(3)
        kill_group(net, 3)
        before = net.height(0)
        time.sleep(5)
        assert net.height(0) >= before + 3, "the other three stopped committing"
    committed = settle(net, load.accepted, 0)
    assert len(committed) >= len(load.accepted) // 2 and committed

    start_node(net.testnet, 3)
    wait_for_rpc(net.testnet, [3])
    net.wait_height(3, net.height(0))
    for hash_hex in committed:  # nothing reported committed is lost, on any node
        for index in range(4):
            found = net.wait_tx(index, hash_hex)
            assert found is not None, f"node{index} cannot find tx {hash_hex} " \
                f"(committed at height {net.committed[hash_hex]})"
            assert int(found["height"]) == net.committed[hash_hex]
    net.assert_same_app_hash()


@pytest.mark.timeout(150)
def test_c_a_node_re_indexes_its_last_blocks_txs_when_it_starts(net: Net) -> None:
    """A kill between applying a block and indexing its txs loses them from that node's ``/tx``
    (CometBFT does not replay an applied block); the supervisor re-indexes the last blocks
    before CometBFT starts. Deleting the node's whole tx index makes the loss certain."""
    resync(net, 0)
    node = net.testnet.node_dir(1)
    with Load(net, [0, 2, 3], seed=41):
        time.sleep(3)
        stop_node(net.testnet, 1)  # under load: its last blocks hold txs
        time.sleep(1)
    shutil.rmtree(node.cometbft_home / "data" / "tx_index.db")
    log_start = (node.log_dir / "supervisor.log").stat().st_size
    start_node(net.testnet, 1)
    wait_for_rpc(net.testnet, [1])
    with (node.log_dir / "supervisor.log").open() as log:
        log.seek(log_start)
        said = re.search(r"re-indexed the txs of heights (\d+)\.\.(\d+)", log.read())
    assert said, "the supervisor did not re-index"
    first, last = int(said.group(1)), int(said.group(2))
    assert last - first == 2 and first > 1
    net.wait_height(1, net.height(0))
    expected = [net.block_txs(0, height) for height in range(first, last + 1)]
    assert sum(expected) > 0, "the load did not reach the re-indexed blocks"
    deadline = time.monotonic() + 15
    while [net.indexed_txs(1, h) for h in range(first, last + 1)] != expected:
        assert time.monotonic() < deadline, "node1 did not re-index its last blocks' txs"
        time.sleep(0.2)
    older = max(h for h in range(2, first) if net.block_txs(0, h) > 0)
    assert net.indexed_txs(1, older) == 0  # older blocks' entries stay lost: the limit
    net.assert_same_app_hash()


@pytest.mark.timeout(150)
def test_d_killing_only_the_application_stops_cometbft_and_a_restart_replays(net: Net) -> None:
    resync(net, 0)
    node = net.testnet.node_dir(2)
    app_pid, comet_pid = node.read_pid("app"), node.read_pid("cometbft")
    assert app_pid is not None and comet_pid is not None
    with Load(net, [0, 1, 3], seed=31) as load:
        time.sleep(2)
        os.kill(app_pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while is_pid_alive(comet_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not is_pid_alive(comet_pid), "CometBFT kept running without its application"
        while is_running(net.testnet, 2) and time.monotonic() < deadline:
            time.sleep(0.1)  # the supervisor exits just after it has stopped CometBFT
        assert not is_running(net.testnet, 2), "the supervisor outlived both its children"
        time.sleep(2)
    message = (node.log_dir / "supervisor.log").read_text()
    assert f"the application (pid {app_pid}) exited with code -9; stopping CometBFT" in message
    committed = settle(net, load.accepted, 0)
    assert committed

    start_node(net.testnet, 2)
    wait_for_rpc(net.testnet, [2])
    net.wait_height(2, net.height(0))
    for hash_hex in committed:
        assert net.wait_tx(2, hash_hex) is not None
    net.assert_same_app_hash()


@pytest.mark.timeout(150)
def test_e_two_of_four_down_halts_the_chain_and_one_back_resumes_it(net: Net) -> None:
    stop_node(net.testnet, 2)
    stop_node(net.testnet, 3)
    time.sleep(2)  # a block in flight may still commit
    halted = net.height(0)
    time.sleep(5)
    assert net.height(0) == halted and net.height(1) == halted
    assert net.header_app_hash(0, halted) == net.header_app_hash(1, halted)
    block0 = net.rpc(0, "block", height=str(halted))["block_id"]["hash"]
    block1 = net.rpc(1, "block", height=str(halted))["block_id"]["hash"]
    assert block0 == block1  # no fork

    start_node(net.testnet, 2)
    wait_for_rpc(net.testnet, [2])
    net.wait_height(0, halted + 3)
    start_node(net.testnet, 3)
    wait_for_rpc(net.testnet, [3])
    net.wait_height(3, net.height(0))
    net.assert_same_app_hash()


@pytest.mark.timeout(150)
def test_f_a_tampered_state_database_stops_that_node_with_an_app_hash_error(net: Net) -> None:
    resync(net, 0)
    victim = net.senders[0]
    node = net.testnet.node_dir(3)
    stop_node(net.testnet, 3)
    with sqlite3.connect(node.state_db) as db:  # the latest value of the sender's balance
        key = balance_key(victim.key.address, DENOM)
        (value,) = db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        tampered = codec.encode(codec.decode(value) + 1)
        db.execute("UPDATE state SET value = ? WHERE key = ?", (tampered, key))
    start_node(net.testnet, 3)
    wait_for_rpc(net.testnet, [3])  # the handshake still agrees: the stored root is untouched

    raw = build_tx(victim.key, CHAIN_ID, victim.sequence,
                   MsgTransfer(net.senders[1].key.did, DENOM, 7))
    victim.sequence += 1
    done = net.clients[0].broadcast(raw)
    assert done["tx_result"].get("code", 0) == 0, done
    height = int(done["height"])

    deadline = time.monotonic() + 30
    while is_running(net.testnet, 3) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not is_running(net.testnet, 3), "the tampered node kept running\n" + net.logs(3)
    message = (node.log_dir / "supervisor.log").read_text()
    # Block height+1 carries the others' app hash of block ``height``, which node3 computed
    # from the tampered balance.
    assert (f"reported a consensus failure: app hash mismatch at height {height + 1}"
            in message), message
    before = net.height(0)
    net.wait_height(0, before + 3)  # the others continue
    net.assert_same_app_hash([0, 1, 2])
