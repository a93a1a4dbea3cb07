"""Crash safety of a real solo node process: SIGKILL under load, and between the block store
write and the state commit; after a restart every tx reported committed is there with its result,
the state is the last block's, and the audit passes."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from citychain.client.rpc import NodeClient, RpcError
from citychain.consensus.solo.blockstore import BlockStore
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.tx import tx_hash
from citychain.node.audit import verify_chain
from citychain.node.home import Home, NodeConfig
from citychain.store import SqliteStore
from citychain.testing.chain import Cast, solo_home, transfer

pytestmark = pytest.mark.slow

SENDERS = 6
START_TIMEOUT = 60.0


class NodeProcess:
    """A solo node in its own interpreter (citychain.testing.solo_runner)."""

    def __init__(self, root: Path, *, crash_after_save: int = 0) -> None:
        self.log_path = root / f"node-{time.monotonic_ns()}.log"
        args = [sys.executable, "-m", "citychain.testing.solo_runner", "--home", str(root)]
        if crash_after_save:
            args += ["--crash-after-save", str(crash_after_save)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
        self.url, self.start_height = self._wait_ready()

    def _wait_ready(self) -> tuple[str, int]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(remaining, 0))
            if not ready:
                self.process.kill()
                raise AssertionError(f"node did not start: {self.log()}")
            chunk = os.read(self.process.stdout.fileno(), 1)
            if not chunk:
                raise AssertionError(f"node exited before READY: {self.log()}")
            line += chunk
        word, url, height = line.decode().split()
        assert word == "READY"
        return url, int(height)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(60)
        assert code == 0, self.log()

    def wait_exit(self, timeout: float) -> int:
        return self.process.wait(timeout)


@dataclass
class Committed:
    height: int
    code: int


@dataclass
class Load:
    """Sender threads that broadcast transfers with commit=True until the node goes away."""

    url: str
    chain_id: str
    senders: list[PrivateKey]
    recipients: list[PrivateKey]
    committed: dict[str, Committed] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for index, key in enumerate(self.senders):
            thread = threading.Thread(target=self._send, args=(index, key), daemon=True)
            thread.start()
            self.threads.append(thread)

    def wait_for(self, committed: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.committed) < committed:
            assert time.monotonic() < deadline, f"only {len(self.committed)} txs committed"
            assert not self.errors, self.errors
            time.sleep(0.01)

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(90)
            assert not thread.is_alive()

    def _send(self, index: int, key: PrivateKey) -> None:
        rng = random.Random(index)
        try:
            with NodeClient(self.url, timeout=60) as client:
                sequence = account_sequence(client, key)
                while not self.stop.is_set():
                    to = self.recipients[rng.randrange(len(self.recipients))]
                    raw = transfer(key, self.chain_id, sequence, to, rng.randrange(1, 100))
                    hash_hex = tx_hash(raw).hex()
                    answer = client.broadcast(raw, commit=True)
                    if answer["check_tx"]["code"] != 0:
                        sequence = account_sequence(client, key)
                        continue
                    result = answer["tx_result"]
                    with self.lock:
                        self.committed[hash_hex] = Committed(int(answer["height"]),
                                                             int(result["code"]))
                    sequence += 1
        except RpcError:
            return  # the node was killed: whatever was reported committed is recorded
        except Exception as exc:  # pragma: no cover - shown in the assertion
            self.errors.append(repr(exc))


def account_sequence(client: NodeClient, key: PrivateKey) -> int:
    answer = client.query("/identity/account", {"address": key.address})
    assert answer.ok, answer.log
    account = codec.decode(answer.value)
    # Before the first block nothing is committed, genesis included: the sequence is 0.
    return 0 if account is None else int(account["sequence"])


def check_reported_txs(url: str, committed: dict[str, Committed]) -> None:
    """Every tx the node reported committed is found, at its height, with its result code."""
    with NodeClient(url) as client:
        for hash_hex, reported in sorted(committed.items()):
            found = client.tx(hash_hex)
            assert int(found["height"]) == reported.height, hash_hex
            assert found["tx_result"]["code"] == reported.code, hash_hex


def heights(root: Path) -> tuple[int, int]:
    """(block store height, state height) on disk; the node must not be running."""
    home = Home(root)
    blocks = BlockStore(home.blocks_db)
    store = SqliteStore(str(home.state_db))
    try:
        return blocks.latest_height, store.latest_height
    finally:
        blocks.close()
        store.close()


def assert_audit_ok(root: Path) -> int:
    report = verify_chain(root, stop_at_first=False)
    assert report.ok, [str(problem) for problem in report.problems]
    return report.blocks_checked


@pytest.fixture
def node_home(tmp_path: Path) -> tuple[Path, Cast, str]:
    root = tmp_path / "node"
    cast = Cast.make(citizens=SENDERS + 2)
    _home, genesis, _cast = solo_home(root, cast, config=NodeConfig(block_interval=0.05))
    return root, cast, genesis.chain_id


def test_sigkill_under_load_loses_no_committed_tx(node_home: tuple[Path, Cast, str]) -> None:
    root, cast, chain_id = node_home
    rng = random.Random()
    all_committed: dict[str, Committed] = {}
    for cycle, delay in enumerate((rng.uniform(0.0, 0.5), rng.uniform(0.5, 1.0),
                                   rng.uniform(1.0, 2.0))):
        node = NodeProcess(root)
        load = Load(node.url, chain_id, list(cast.citizens[:SENDERS]), list(cast.citizens))
        load.start()
        load.wait_for(committed=SENDERS, timeout=60)  # under load, however slow the machine
        time.sleep(delay)
        node.kill9()
        load.join()
        assert not load.errors, load.errors
        assert load.committed, f"cycle {cycle}: nothing committed in {delay:.2f} s"
        all_committed.update(load.committed)

        restarted = NodeProcess(root)
        try:
            top = max(c.height for c in all_committed.values())
            assert restarted.start_height >= top
            check_reported_txs(restarted.url, all_committed)
            with NodeClient(restarted.url) as client:
                status = client.status()["sync_info"]
                block = client.block(int(status["latest_block_height"]))
                assert status["latest_app_hash"] == block["header"]["app_hash"]
        finally:
            restarted.stop()
        assert heights(root)[0] == heights(root)[1]
        assert assert_audit_ok(root) == restarted.start_height


def test_crash_between_block_save_and_state_commit_replays(
        node_home: tuple[Path, Cast, str]) -> None:
    root, cast, chain_id = node_home
    node = NodeProcess(root)
    load = Load(node.url, chain_id, list(cast.citizens[:2]), list(cast.citizens))
    load.start()
    time.sleep(0.5)
    node.stop()  # a clean stop under load
    load.join()
    saved, committed = heights(root)
    assert saved == committed >= 1

    crash_height = saved + 3
    node = NodeProcess(root, crash_after_save=crash_height)
    load = Load(node.url, chain_id, list(cast.citizens[:SENDERS]), list(cast.citizens))
    load.start()
    assert node.wait_exit(60) == -signal.SIGKILL, node.log()
    load.join()
    assert not load.errors, load.errors
    # The block store holds the crash block; the state is one block behind.
    assert heights(root) == (crash_height, crash_height - 1)
    report = verify_chain(root)
    assert not report.ok and report.first is not None
    assert report.first.height == crash_height
    assert "state height differs from the last block" in report.first.what
    # No waiter was told about the crash block's txs: its commit never happened.
    home = Home(root)
    blocks = BlockStore(home.blocks_db)
    crashed = blocks.get(crash_height)
    blocks.close()
    assert crashed is not None and crashed.txs
    crashed_hashes = {tx_hash(raw).hex() for raw in crashed.txs}
    assert not crashed_hashes & set(load.committed)

    restarted = NodeProcess(root)
    try:
        assert restarted.start_height == crash_height  # the handshake replayed it
        with NodeClient(restarted.url) as client:
            status = client.status()["sync_info"]
            assert int(status["latest_block_height"]) == crash_height
            assert status["latest_app_hash"] == crashed.signed_header.header.app_hash.hex()
            for position, raw in enumerate(crashed.txs):
                found = client.tx(tx_hash(raw).hex())
                assert int(found["height"]) == crash_height and found["index"] == position
                stored = codec.decode(crashed.results[position])
                assert found["tx_result"]["code"] == stored["code"]
        check_reported_txs(restarted.url, load.committed)
    finally:
        restarted.stop()
    store = SqliteStore(str(Home(root).state_db))
    try:
        assert store.latest_height == crash_height
        assert store.latest_root == crashed.signed_header.header.app_hash
    finally:
        store.close()
    assert assert_audit_ok(root) == crash_height


def test_crash_after_saving_the_first_block_replays_genesis(
        node_home: tuple[Path, Cast, str]) -> None:
    """The first block also commits the genesis state: a crash before that commit leaves an
    empty state next to block 1, and the restart runs init_chain again before replaying it."""
    root, cast, chain_id = node_home
    node = NodeProcess(root, crash_after_save=1)
    assert node.start_height == 0
    with NodeClient(node.url) as client:
        raw = transfer(cast.citizens[0], chain_id, 0, cast.citizens[1], 5)
        assert client.broadcast(raw, commit=False)["code"] == 0
    assert node.wait_exit(60) == -signal.SIGKILL, node.log()
    assert heights(root) == (1, 0)

    restarted = NodeProcess(root)
    try:
        assert restarted.start_height == 1
        with NodeClient(restarted.url) as client:
            found = client.tx(tx_hash(raw).hex())
            assert int(found["height"]) == 1 and found["tx_result"]["code"] == 0
            assert account_sequence(client, cast.citizens[0]) == 1
    finally:
        restarted.stop()
    assert assert_audit_ok(root) == 1
