"""The solo node: mempool through check_tx, a block producer thread, handshake and replay.

Block lifecycle: take txs from the mempool -> prepare_proposal -> finalize_block -> build and sign
the header (with the new app hash) -> store the block (durable) -> app commit (durable) -> notify
waiters -> recheck the rest of the mempool. A crash between the two durable steps leaves the block
store one block ahead; on start the handshake replays it and checks the app hash it produced
against the signed header.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from citychain.app.application import Application
from citychain.app.genesis import Genesis
from citychain.app.types import RequestFinalizeBlock, TxResult
from citychain.consensus.solo.block import (
    GENESIS_PREV_HASH,
    Header,
    results_hash,
    sign_header,
    tx_root,
)
from citychain.consensus.solo.blockstore import BlockStore, StoredBlock
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.errors import DuplicateTxError, MempoolFullError
from citychain.core.tx import tx_hash

log = logging.getLogger(__name__)


class HandshakeError(RuntimeError):
    """The block store and the application state disagree in a way replay cannot fix."""


@dataclass(frozen=True, slots=True)
class BlockStats:
    """What producing one block cost (seconds), for the live view and benchmarks."""

    height: int
    tx_count: int
    failed: int
    app_hash: bytes
    execute_s: float
    store_s: float
    commit_s: float


@dataclass(frozen=True, slots=True)
class Inclusion:
    height: int
    position: int
    result: TxResult


class SoloNode:
    """Produces signed, hash-linked blocks for one organisation, in this process."""

    def __init__(self, app: Application, blocks: BlockStore, key: PrivateKey, genesis: Genesis,
                 *, block_interval: float = 0.2, max_block_txs: int = 5000,
                 max_block_bytes: int = 8 * 1024 * 1024, mempool_size: int = 100_000,
                 create_empty_blocks: bool = False,
                 clock: Callable[[], int] = time.time_ns) -> None:
        if key.public_key not in genesis.validator_pubkeys():
            raise HandshakeError("the node key is not a validator in the genesis document")
        self.app = app
        self.blocks = blocks
        self.key = key
        self.genesis = genesis
        self.block_interval = block_interval
        self.max_block_txs = max_block_txs
        self.max_block_bytes = max_block_bytes
        self.mempool_size = mempool_size
        self.create_empty_blocks = create_empty_blocks
        self._clock = clock
        self._mempool: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()
        # Held while a block commits and the mempool is rechecked, so a tx submitted meanwhile
        # is checked against the rechecked state, in order after the pending txs.
        self._check_lock = threading.Lock()
        self._new_block = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_header: Header | None = None
        self.on_block: list[Callable[[BlockStats], None]] = []
        self.last_error: BaseException | None = None

    # ---------------------------------------------------------------- lifecycle
    def handshake(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Bring the application level with the block store; return the replayed block count.

        Raises:
            HandshakeError: the state is ahead of the blocks, or a replayed block's app hash
                differs from its signed header.
        """
        app_height = self.app.info().last_block_height
        store_height = self.blocks.latest_height
        if app_height > store_height:
            raise HandshakeError(f"application state is at height {app_height} but the block "
                                 f"store ends at {store_height}; the data directory is damaged")
        if app_height == 0:
            self.app.init_chain(self.genesis.init_chain_request())
        start = app_height + 1 if app_height else self.genesis.initial_height
        replayed = 0
        for height in range(start, store_height + 1):
            stored = self.blocks.get(height)
            if stored is None:
                raise HandshakeError(f"block {height} is missing from the block store")
            header = stored.signed_header.header
            response = self.app.finalize_block(RequestFinalizeBlock(
                tuple(stored.txs), height, header.time_ns, header.proposer, header.hash()))
            if response.app_hash != header.app_hash:
                raise HandshakeError(
                    f"replaying block {height} gave app hash {response.app_hash.hex()} but its "
                    f"signed header says {header.app_hash.hex()}")
            self.app.commit()
            replayed += 1
            if progress is not None:
                progress(replayed, store_height - start + 1)
        last = self.blocks.get(store_height) if store_height else None
        self._last_header = last.signed_header.header if last is not None else None
        return replayed

    def start(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Handshake (reporting replay progress), then produce blocks in a background thread."""
        self.handshake(progress)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="solo-producer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the block in progress (if any) is committed."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        next_due = time.monotonic()
        try:
            while not self._stop.is_set():
                delay = next_due - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    self._wake.clear()
                    if self._stop.is_set():
                        break
                next_due = time.monotonic() + self.block_interval
                if self._mempool or self.create_empty_blocks:
                    self.produce_block()
        except BaseException as exc:  # the chain must stop rather than diverge
            log.exception("block production stopped")
            self.last_error = exc
            with self._lock:
                self._new_block.notify_all()

    # ---------------------------------------------------------------- mempool
    def submit(self, raw: bytes) -> TxResult:
        """Run check_tx and, if it passes, add the tx to the mempool.

        Raises:
            DuplicateTxError: the tx is already pending or committed.
            MempoolFullError: the mempool holds ``mempool_size`` txs.
        """
        hash_ = tx_hash(raw)
        with self._lock:
            if hash_ in self._mempool or self.blocks.locate_tx(hash_) is not None:
                raise DuplicateTxError(f"transaction {hash_.hex()} is already pending or "
                                       "committed", field="tx")
            if len(self._mempool) >= self.mempool_size:
                raise MempoolFullError(f"the mempool is full ({self.mempool_size} txs); "
                                       "retry later", field="tx")
        with self._check_lock:
            result = self.app.check_tx(raw)
            if result.ok:
                with self._lock:
                    self._mempool[hash_] = raw
        return result

    @property
    def mempool_count(self) -> int:
        return len(self._mempool)

    def wait_for_tx(self, hash_: bytes, timeout: float) -> Inclusion | None:
        """Block until the tx is committed (or ``timeout`` passes); return where it landed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = self.find_tx(hash_)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.last_error is not None:
                    return None
                self._new_block.wait(remaining)

    def wait_for_height(self, height: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.app.last_height < height:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.last_error is not None:
                    return False
                self._new_block.wait(remaining)
            return True

    def find_tx(self, hash_: bytes) -> Inclusion | None:
        location = self.blocks.locate_tx(hash_)
        if location is None or location.height > self.app.last_height:
            return None
        stored = self.blocks.get(location.height)
        if stored is None:
            return None
        result = TxResult.from_value(codec.decode(stored.results[location.position]))
        return Inclusion(location.height, location.position, result)

    # ---------------------------------------------------------------- blocks
    def produce_block(self) -> BlockStats:
        """Execute, sign, store and commit one block from the mempool."""
        started = time.perf_counter()
        with self._lock:
            candidates: list[bytes] = []
            total = 0
            for raw in self._mempool.values():
                if len(candidates) >= self.max_block_txs or total + len(raw) > self.max_block_bytes:
                    break
                candidates.append(raw)
                total += len(raw)
        txs = self.app.prepare_proposal(candidates, self.max_block_bytes)
        previous = self._last_header
        height = previous.height + 1 if previous is not None else self.genesis.initial_height
        prev_time = previous.time_ns if previous is not None else self.genesis.genesis_time_ns
        block_time = max(self._clock(), prev_time + 1)
        response = self.app.finalize_block(RequestFinalizeBlock(
            tuple(txs), height, block_time, self.key.address))
        executed = time.perf_counter()
        results = [codec.encode(r.to_value()) for r in response.tx_results]
        header = Header(
            chain_id=self.genesis.chain_id, height=height, time_ns=block_time,
            prev_hash=previous.hash() if previous is not None else GENESIS_PREV_HASH,
            tx_root=tx_root(txs), results_hash=results_hash(results),
            app_hash=response.app_hash, proposer=self.key.address)
        self.blocks.save(StoredBlock(sign_header(self.key, header), txs, results,
                                     list(response.events)))
        stored = time.perf_counter()
        with self._check_lock:
            self.app.commit()
            committed = time.perf_counter()
            with self._lock:
                self._last_header = header
                for raw in candidates:  # included, or dropped by prepare_proposal as hopeless
                    self._mempool.pop(tx_hash(raw), None)
                self._new_block.notify_all()
            self._recheck()
        stats = BlockStats(height, len(txs), sum(1 for r in response.tx_results if not r.ok),
                           response.app_hash, executed - started, stored - executed,
                           committed - stored)
        for callback in self.on_block:
            callback(stats)
        return stats

    def _recheck(self) -> None:
        """Re-run check_tx on the txs still pending, dropping those that no longer pass."""
        with self._lock:
            pending = list(self._mempool.items())
        dropped = [hash_ for hash_, raw in pending if not self.app.check_tx(raw, recheck=True).ok]
        if dropped:
            with self._lock:
                for hash_ in dropped:
                    self._mempool.pop(hash_, None)

    @property
    def last_header(self) -> Header | None:
        return self._last_header
