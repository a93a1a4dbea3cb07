"""`citychain verify`: re-check a whole solo chain from genesis and name the first inconsistency.

Checks, block by block: the stored bytes decode; the stored hash is the header's hash; heights
are consecutive and each header links to the previous one; the header is for this chain and
signed by a genesis validator; the tx root and results hash match the stored txs and results;
re-executing the block on a fresh in-memory state gives the header's app hash and the stored
results. Then: the tx index points at the right txs, the state database passes its own audit
(every tree node and row re-hashed), its latest root equals the last header's app hash, and its
latest key/values equal the re-executed state, key by key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

from citychain.app.application import Application
from citychain.app.types import RequestFinalizeBlock, TxResult
from citychain.consensus.solo.block import GENESIS_PREV_HASH, SignedHeader, results_hash, tx_root
from citychain.consensus.solo.blockstore import BlockStore
from citychain.core import codec
from citychain.core.errors import ChainError
from citychain.core.events import Event
from citychain.core.tx import tx_hash
from citychain.node.assemble import load_genesis, memory_app
from citychain.node.home import Home
from citychain.store import SqliteStore
from citychain.store.audit import compare_index_entries

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Inconsistency:
    height: int
    what: str
    expected: str = ""
    found: str = ""

    def __str__(self) -> str:
        text = f"height {self.height}: {self.what}"
        if self.expected or self.found:
            text += f" (expected {self.expected or '-'}, found {self.found or '-'})"
        return text


@dataclass
class AuditReport:
    blocks_checked: int = 0
    txs_checked: int = 0
    problems: list[Inconsistency] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Inconsistency | None:
        return self.problems[0] if self.problems else None


class _Stop(Exception):
    pass


def verify_chain(root: Path | str, progress: Progress | None = None,
                 stop_at_first: bool = True) -> AuditReport:
    """Audit the solo chain in ``root``; the node must not be running."""
    home = Home(Path(root))
    home.require_initialised()
    report = AuditReport()
    if not home.blocks_db.exists() or not home.state_db.exists():
        return report  # the node never ran: no block, nothing to contradict genesis

    def problem(height: int, what: str, expected: str = "", found: str = "") -> None:
        report.problems.append(Inconsistency(height, what, expected, found))
        if stop_at_first:
            raise _Stop

    genesis = load_genesis(home)
    trusted = genesis.validator_pubkeys()
    blocks = BlockStore(home.blocks_db)
    app = memory_app()
    try:
        app.init_chain(genesis.init_chain_request())
        top = blocks.latest_height
        previous_hash = GENESIS_PREV_HASH
        previous_time = genesis.genesis_time_ns
        for height in range(genesis.initial_height, top + 1):
            _check_block(blocks, height, genesis.chain_id, trusted, previous_hash,
                         previous_time, app, problem, report)
            stored_header = _decode_header(blocks, height)
            previous_hash = stored_header.header.hash()
            previous_time = stored_header.header.time_ns
            if progress is not None:
                progress("blocks", height - genesis.initial_height + 1,
                         top - genesis.initial_height + 1)
        _check_tx_index(blocks, problem)
        _check_state(home, app, top, blocks, problem, progress)
    except _Stop:
        pass
    finally:
        blocks.close()
    return report


def _decode_header(blocks: BlockStore, height: int) -> SignedHeader:
    raw = blocks.get_raw(height)
    if raw is None:
        raise KeyError(height)
    return SignedHeader.from_value(codec.decode(raw["signed_header"]))


def _check_block(blocks: BlockStore, height: int, chain_id: str, trusted: frozenset[bytes],
                 previous_hash: bytes, previous_time: int, app: Application,
                 problem: Callable[..., None], report: AuditReport) -> None:
    raw = blocks.get_raw(height)
    if raw is None:
        problem(height, "block is missing from the block store")
        return
    try:
        signed = SignedHeader.from_value(codec.decode(raw["signed_header"]))
        txs = codec.decode(raw["txs"])
        results = codec.decode(raw["results"])
        events = [Event.from_value(e) for e in codec.decode(raw["events"])]
    except (ChainError, KeyError, TypeError, ValueError) as exc:
        problem(height, f"stored block bytes do not decode: {exc}")
        return
    header = signed.header
    if raw["hash"] != header.hash():
        problem(height, "stored block hash is not the hash of the stored header",
                header.hash().hex(), bytes(raw["hash"]).hex())
    if header.height != height:
        problem(height, "header height differs from its position", str(height),
                str(header.height))
    if header.chain_id != chain_id:
        problem(height, "header chain id differs from genesis", chain_id, header.chain_id)
    if header.prev_hash != previous_hash:
        problem(height, "header does not link to the previous block", previous_hash.hex(),
                header.prev_hash.hex())
    if header.time_ns <= previous_time:
        problem(height, "block time does not increase", f"> {previous_time}",
                str(header.time_ns))
    if not signed.verify(trusted):
        problem(height, "header signature is invalid or not by a genesis validator")
    computed_root = tx_root(txs)
    if computed_root != header.tx_root:
        problem(height, "tx root does not match the stored txs", header.tx_root.hex(),
                computed_root.hex())
    computed_results = results_hash(results)
    if computed_results != header.results_hash:
        problem(height, "results hash does not match the stored results",
                header.results_hash.hex(), computed_results.hex())
    response = app.finalize_block(RequestFinalizeBlock(tuple(txs), height, header.time_ns,
                                                       header.proposer, header.hash()))
    if response.app_hash != header.app_hash:
        problem(height, "re-executing the block gives another app hash",
                header.app_hash.hex(), response.app_hash.hex())
    for index, result in enumerate(response.tx_results):
        stored = results[index] if index < len(results) else b""
        if codec.encode(result.to_value()) != stored:
            found = TxResult.from_value(codec.decode(stored)) if stored else None
            problem(height, f"re-executed result of tx {index} differs from the stored one",
                    f"code {result.code}", f"code {found.code}" if found else "missing")
    if [e.to_value() for e in response.events] != [e.to_value() for e in events]:
        problem(height, "re-executed end-block events differ from the stored ones")
    app.commit()
    report.blocks_checked += 1
    report.txs_checked += len(txs)


def _check_tx_index(blocks: BlockStore, problem: Callable[..., None]) -> None:
    # Rows come in hash order: decode each block once, not once per tx it holds.
    hashes: dict[int, list[bytes]] = {}
    for hash_, height, position in blocks.tx_index_rows():
        if height not in hashes:
            stored = blocks.get(height)
            hashes[height] = [tx_hash(raw) for raw in stored.txs] if stored is not None else []
        known = hashes[height]
        if position >= len(known) or known[position] != hash_:
            problem(height, f"tx index entry {bytes(hash_).hex()} points at the wrong tx")


def _check_state(home: Home, app: Application, top: int, blocks: BlockStore,
                 problem: Callable[..., None], progress: Progress | None) -> None:
    store = SqliteStore(str(home.state_db))
    try:
        for text in store.audit(
                (lambda done, total: progress("state", done, total)) if progress else None):
            problem(store.latest_height, f"state database: {text}")
        if store.latest_height != top:
            problem(top, "state height differs from the last block (the node replays this "
                    "on start)", str(top), str(store.latest_height))
            return
        if top:
            last = blocks.get(top)
            if last is not None and store.latest_root != last.signed_header.header.app_hash:
                problem(top, "stored state root differs from the last header's app hash",
                        last.signed_header.header.app_hash.hex(), store.latest_root.hex())
        stored = store.reader().iterate(b"")
        expected = app.store.reader().iterate(b"")
        for (skey, svalue), (ekey, evalue) in zip_longest(stored, expected,
                                                          fillvalue=(None, None)):
            if skey != ekey or svalue != evalue:
                problem(top, "stored state differs from the re-executed state at key "
                        f"{(skey or ekey or b'').hex()}",
                        (evalue or b"").hex()[:64], (svalue or b"").hex()[:64])
                break
        compare_index_entries(store.index_entries(), app.store.index_entries(),
                              lambda text: problem(top, f"state database: {text} (rebuild "
                                                   "the index: citychain node reindex)"))
    finally:
        store.close()

