"""The demo city: a fresh home with deterministic keys and a live workload submitted in-process.

Citizens register their own identities, the registrar grants them the citizen role, the treasury
issues city credit to each, then citizens pay each other in a steady stream. Now and then a
citizen tries to pay more than it holds, or to mint credit itself, so the view shows the chain
refusing a transaction with its typed error. Sequences and expected balances are tracked per
sender so every other transaction is accepted.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from citychain.consensus.solo.node import BlockStats, SoloNode
from citychain.consensus.solo.rpc import RpcServer
from citychain.core.crypto import PrivateKey
from citychain.core.errors import ChainError
from citychain.core.messages import Msg
from citychain.core.tx import build_tx
from citychain.modules.bank.messages import MsgMint, MsgTransfer
from citychain.modules.identity.api import (
    ROLE_CITIZEN,
    ROLE_DEVICE,
    ROLE_OPERATOR,
    ROLE_REGISTRAR,
    ROLE_TREASURY,
)
from citychain.modules.identity.messages import MsgCreateIdentity, MsgGrantRole
from citychain.node.assemble import SoloRuntime, open_solo
from citychain.node.home import Home, HomeError
from citychain.node.init import CITY_CREDIT, AccountSpec, InitResult, init_home

DEMO_CHAIN_ID = "citychain-demo"
DEMO_MARKER = "DEMO_HOME"
DEMO_SECRET = "citychain-demo"  # noqa: S105 - public by design: demo keys are reproducible
TREASURY = "treasury"
REGISTRAR = "registrar"
OPERATOR = "operator"  # owns the IoT devices and publishes the feeds
GATEWAY = "gateway"    # the IoT gateway's own device key: it signs the batch anchors
INITIAL_CREDIT = 1_000 * 10**CITY_CREDIT.decimals  # 1000 city per citizen
FAILING_TRANSFER_EVERY = 50
UNAUTHORISED_MINT_EVERY = 173


@dataclass(frozen=True)
class Citizen:
    index: int
    key: PrivateKey

    @property
    def address(self) -> str:
        return self.key.address

    @property
    def did(self) -> str:
        return self.key.did


@dataclass(frozen=True)
class DemoCity:
    treasury: PrivateKey
    registrar: PrivateKey
    citizens: tuple[Citizen, ...]
    operator: PrivateKey
    gateway: PrivateKey


def demo_key(role: str, index: int = 0) -> PrivateKey:
    """The deterministic demo key of ``role`` (and citizen ``index``)."""
    return PrivateKey.from_secret(f"{DEMO_SECRET}/{role}/{index}")


def demo_city(citizens: int) -> DemoCity:
    return DemoCity(demo_key(TREASURY), demo_key(REGISTRAR),
                    tuple(Citizen(i, demo_key("citizen", i)) for i in range(citizens)),
                    demo_key(OPERATOR), demo_key(GATEWAY))


def is_demo_home(root: Path) -> bool:
    return (root / DEMO_MARKER).is_file()


def prepare_home(root: Path, city: DemoCity, genesis_time_ns: int) -> InitResult:
    """Create a fresh demo home at ``root`` (an earlier demo home there is replaced).

    Raises:
        HomeError: ``root`` is a non-empty directory that is not a demo home.
    """
    if root.exists() and any(root.iterdir()):
        if not is_demo_home(root):
            raise HomeError(f"{root} is not empty and is not a demo home; the demo needs a "
                            "fresh directory (or one an earlier demo created)")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text(json.dumps({
        "created_by": "citychain demo", "citizens": len(city.citizens)}) + "\n")
    return init_home(
        root, chain_id=DEMO_CHAIN_ID, genesis_time_ns=genesis_time_ns,
        accounts=[AccountSpec(TREASURY, (ROLE_TREASURY,)),
                  AccountSpec(REGISTRAR, (ROLE_REGISTRAR,)),
                  AccountSpec(OPERATOR, (ROLE_OPERATOR,)),
                  AccountSpec(GATEWAY, (ROLE_DEVICE,))],
        keys={TREASURY: city.treasury, REGISTRAR: city.registrar, OPERATOR: city.operator,
              GATEWAY: city.gateway},
        node_key=demo_key("node"))


@dataclass
class DemoStats:
    """What the live view shows; written by the workload and the block producer threads."""

    window_s: float = 5.0
    started: float = field(default_factory=time.monotonic)
    phase: str = "starting"
    height: int = 0
    last_block_txs: int = 0
    last_block_failed: int = 0
    app_hash: bytes = b""
    blocks: int = 0
    committed_txs: int = 0
    failed_in_blocks: int = 0
    accepted: int = 0
    rejected: int = 0
    last_rejection: str = ""
    last_block_ms: float = 0.0
    _recent: deque[tuple[float, int]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record_block(self, stats: BlockStats) -> None:
        now = time.monotonic()
        with self._lock:
            self.height = stats.height
            self.last_block_txs = stats.tx_count
            self.last_block_failed = stats.failed
            self.app_hash = stats.app_hash
            self.blocks += 1
            self.committed_txs += stats.tx_count
            self.failed_in_blocks += stats.failed
            self.last_block_ms = 1000 * (stats.execute_s + stats.store_s + stats.commit_s)
            self._recent.append((now, stats.tx_count))
            self._trim(now)

    def record_rejection(self, text: str) -> None:
        with self._lock:
            self.rejected += 1
            self.last_rejection = text

    def tx_per_second(self) -> float:
        """Committed txs per second over the last ``window_s`` seconds."""
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            total = sum(count for _, count in self._recent)
        span = min(self.window_s, max(now - self.started, 1e-3))
        return total / span

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - self.window_s:
            self._recent.popleft()


class CityWorkload:
    """Submits the demo's transactions straight to an in-process node (``node.submit``)."""

    def __init__(self, node: SoloNode, chain_id: str, city: DemoCity, stats: DemoStats, *,
                 max_pending: int = 2000, rate: float = 0.0, seed: int = 7) -> None:
        self.node = node
        self.chain_id = chain_id
        self.city = city
        self.stats = stats
        self.max_pending = max_pending
        self.rate = rate
        self.rng = random.Random(seed)  # demo traffic only, never chain state
        self.sequences: dict[str, int] = {}
        self.balances: dict[str, int] = {}
        self._next_due = time.monotonic()

    def submit(self, key: PrivateKey, *messages: Msg) -> bool:
        """Sign with the sender's next sequence and submit; return whether check_tx accepted."""
        address = key.address
        sequence = self.sequences.get(address, 0)
        raw = build_tx(key, self.chain_id, sequence, *messages)
        try:
            result = self.node.submit(raw)
        except ChainError as error:
            self.stats.record_rejection(f"[{error.codespace}/{error.code}] {error.message}")
            return False
        if not result.ok:
            text = f"[{result.codespace}/{result.code}] {result.log}"
            if result.info:
                text += f" (field {result.info})"
            self.stats.record_rejection(text)
            return False
        self.sequences[address] = sequence + 1
        self.stats.accepted += 1
        return True

    def _pace(self, stop: threading.Event) -> None:
        while self.node.mempool_count >= self.max_pending and not stop.is_set():
            stop.wait(0.005)
        if self.rate > 0:
            self._next_due += 1.0 / self.rate
            delay = self._next_due - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                self._next_due = max(self._next_due, time.monotonic() - 1.0)

    def run(self, stop: threading.Event) -> None:
        """Run the phases, then transfers until ``stop`` is set."""
        citizens = self.city.citizens
        steps: list[tuple[str, Callable[[Citizen], None]]] = [
            ("citizens register their identities", self._register),
            ("the registrar grants the citizen role", self._grant),
            ("the treasury issues city credit", self._mint),
        ]
        for phase, step in steps:
            self.stats.phase = phase
            for citizen in citizens:
                if stop.is_set():
                    return
                self._pace(stop)
                step(citizen)
        self.stats.phase = "citizens pay each other"
        count = 0
        while not stop.is_set():
            self._pace(stop)
            count += 1
            self._transfer(count)

    def _register(self, citizen: Citizen) -> None:
        self.submit(citizen.key, MsgCreateIdentity(citizen.key.public_key))

    def _grant(self, citizen: Citizen) -> None:
        self.submit(self.city.registrar, MsgGrantRole(citizen.did, ROLE_CITIZEN))

    def _mint(self, citizen: Citizen) -> None:
        if self.submit(self.city.treasury, MsgMint(citizen.did, CITY_CREDIT.denom,
                                                   INITIAL_CREDIT)):
            self.balances[citizen.address] = self.balances.get(citizen.address, 0) + \
                INITIAL_CREDIT

    def _transfer(self, count: int) -> None:
        citizens = self.city.citizens
        if len(citizens) < 2:
            return
        sender, recipient = self.rng.sample(citizens, 2)
        if count % UNAUTHORISED_MINT_EVERY == 0:
            # A citizen trying to issue credit: refused for lack of the treasury role.
            self.submit(sender.key, MsgMint(sender.did, CITY_CREDIT.denom, 1))
            return
        available = self.balances.get(sender.address, 0)
        if count % FAILING_TRANSFER_EVERY == 0:
            amount = available + self.rng.randint(1, 10**CITY_CREDIT.decimals)
        elif available <= 0:
            return
        else:
            amount = self.rng.randint(1, min(available, 25 * 10**CITY_CREDIT.decimals))
        if self.submit(sender.key, MsgTransfer(recipient.did, CITY_CREDIT.denom, amount)):
            self.balances[sender.address] = available - amount
            self.balances[recipient.address] = self.balances.get(recipient.address, 0) + amount



class DemoRun:
    """A demo chain running in this process: node, RPC server and workload thread."""

    def __init__(self, root: Path, *, citizens: int, genesis_time_ns: int,
                 rpc_host: str = "127.0.0.1", rpc_port: int = 26657,
                 block_interval: float | None = None, rate: float = 0.0) -> None:
        self.root = root
        self.city = demo_city(citizens)
        self.genesis_time_ns = genesis_time_ns
        self.rpc_host = rpc_host
        self.rpc_port = rpc_port
        self.block_interval = block_interval
        self.rate = rate
        self.stats = DemoStats()
        self._stop = threading.Event()
        self._runtime: SoloRuntime | None = None
        self._server: RpcServer | None = None
        self._thread: threading.Thread | None = None
        self.workload_error: BaseException | None = None

    @property
    def node(self) -> SoloNode:
        if self._runtime is None:
            raise RuntimeError("the demo is not started")
        return self._runtime.node

    @property
    def rpc_url(self) -> str:
        return self._server.url if self._server is not None else ""

    @property
    def failure(self) -> BaseException | None:
        """Why the demo cannot go on (block production or the workload stopped), if it can't."""
        if self._runtime is not None and self._runtime.node.last_error is not None:
            return self._runtime.node.last_error
        return self.workload_error

    def start(self) -> None:
        """Create the home, open and start the node and RPC server, start the workload.

        Raises:
            HomeError: the directory is not usable for a demo.
        """
        prepare_home(self.root, self.city, self.genesis_time_ns)
        config = Home(self.root).config()
        if self.block_interval is not None:
            config = replace(config, block_interval=self.block_interval)
        self._runtime = open_solo(self.root, config)
        node = self._runtime.node
        node.on_block.append(self.stats.record_block)
        node.start()
        try:
            self._server = RpcServer(node, self.rpc_host, self.rpc_port)
        except OSError:  # the port is taken (another node?): any free port will do
            self._server = RpcServer(node, self.rpc_host, 0)
        self._server.start()
        workload = CityWorkload(node, self._runtime.genesis.chain_id, self.city, self.stats,
                                rate=self.rate)
        self.stats.started = time.monotonic()
        self._thread = threading.Thread(target=self._run_workload, args=(workload,),
                                        name="demo-workload", daemon=True)
        self._thread.start()

    def _run_workload(self, workload: CityWorkload) -> None:
        try:
            workload.run(self._stop)
        except BaseException as exc:  # shown by the view; the chain itself is unaffected
            self.workload_error = exc

    def stop(self) -> int:
        """Stop the workload, the RPC server and the node (after its block in progress);
        close the stores and return the last committed height."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self._server is not None:
            self._server.stop()
            self._server = None
        height = 0
        if self._runtime is not None:
            self._runtime.node.stop()
            height = self._runtime.app.last_height
            self._runtime.close()
            self._runtime = None
        return height
