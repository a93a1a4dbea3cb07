"""Signed transfers committed per second by the solo node, split per tx, at two state sizes.

    .venv/bin/python bench/solo_throughput.py [--txs 20000] [--funded 2000]
                                              [--sizes 10000,200000] [--profile]

For each state size (identities in state, each with a balance; ``--funded`` of them hold keys
and send), the script:

1. builds the state by a genesis on a SQLite store and commits it with one empty block;
2. pre-signs ``--txs`` transfers among the funded accounts (not timed);
3. submits them all through ``SoloNode.submit`` (duplicate check, check_tx: decode, signature,
   ante checks on the check state) and produces blocks with ``produce_block`` until the mempool
   is empty (prepare_proposal, finalize_block, header signing, block store save, state commit,
   recheck);
4. reports committed tx/s over the whole of 3 on one core, and the cost per tx split into decode,
   signature, admission (ante + mempool, in check_tx), execution (ante + handlers, in
   finalize_block), mempool recheck,
   and state commit (compute_root + store commit + block store).

Decode and signature costs are micro-timed on the same txs; compute_root and the store commit are
timed by a store wrapper handed to the application (no patching). The reference is raw PyNaCl:
``VerifyKey(pk).verify(msg, sig)`` over the same signatures in the same run; the ratio
``committed tx/s / raw verifications/s`` is the figure to compare across machines.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nacl.signing

from citychain.app.application import Application
from citychain.consensus.solo.blockstore import BlockStore
from citychain.consensus.solo.node import BlockStats, SoloNode
from citychain.core.crypto import PrivateKey, verify_signature
from citychain.core.tx import decode_tx
from citychain.node.assemble import build_app
from citychain.store import SqliteStore
from citychain.testing.chain import Cast, make_genesis, named_key, transfer
from citychain.testing.timing import StoreTimings, TimingStore


@dataclass
class Result:
    state_accounts: int
    state_keys: int
    txs: int
    blocks: int
    submit_s: float
    produce_s: float
    decode_us: float
    signature_us: float
    raw_nacl_per_s: float
    execute_s: float
    block_store_s: float
    app_commit_s: float
    compute_root_s: float
    store_commit_s: float
    stats: list[BlockStats] = field(default_factory=list)
    profile: str = ""

    @property
    def committed_per_s(self) -> float:
        return self.txs / (self.submit_s + self.produce_s)

    def per_tx_us(self) -> dict[str, float]:
        n = self.txs
        check_exec = self.submit_s / n * 1e6 - self.decode_us - self.signature_us
        deliver_exec = (self.execute_s - self.compute_root_s) / n * 1e6
        in_blocks = self.execute_s + self.block_store_s + self.app_commit_s
        recheck = (self.produce_s - in_blocks) / n * 1e6
        state_commit = (self.compute_root_s + self.store_commit_s + self.block_store_s) / n * 1e6
        return {
            "decode": self.decode_us,
            "signature": self.signature_us,
            "admission in check_tx (ante + mempool)": check_exec,
            "execution in finalize_block (ante + handlers)": deliver_exec,
            "mempool recheck + header + bookkeeping": recheck,
            "state commit (compute_root + store commit + block store)": state_commit,
            "total": (self.submit_s + self.produce_s) / n * 1e6,
        }


def build_node(directory: Path, accounts: int, funded: list[PrivateKey],
               timings: StoreTimings) -> tuple[SoloNode, Application, SqliteStore, BlockStore, int]:
    cast = Cast.make(citizens=0, devices=0, prefix="bench-")
    filler = max(0, accounts - len(funded) - len(cast.accounts()))
    genesis = make_genesis(cast, extra_funded=funded, extra_balance=10**12,
                           filler_accounts=filler, filler_balance=1)
    store = SqliteStore(str(directory / "state.db"))
    app = build_app(TimingStore(store, timings))  # type: ignore[arg-type]
    blocks = BlockStore(directory / "blocks.db")
    clock = iter(range(genesis.genesis_time_ns + 1, 2**62, 1_000_000_000))
    node = SoloNode(app, blocks, cast.node, genesis, max_block_txs=5000,
                    mempool_size=1_000_000, clock=lambda: next(clock))
    node.handshake()
    node.produce_block()  # commits genesis with an empty block 1
    keys = sum(1 for _ in store.reader().iterate(b""))
    return node, app, store, blocks, keys


def sign_transfers(funded: list[PrivateKey], chain_id: str, count: int,
                   seed: int) -> list[bytes]:
    """``count`` transfers, round-robin over senders so each block holds many senders."""
    rng = random.Random(seed)
    per_sender = -(-count // len(funded))
    txs = []
    for sequence in range(per_sender):
        for sender in funded:
            if len(txs) == count:
                return txs
            to = funded[rng.randrange(len(funded))]
            txs.append(transfer(sender, chain_id, sequence, to, rng.randrange(1, 1000)))
    return txs


def micro_timings(app: Application, txs: list[bytes]) -> tuple[float, float, float]:
    """(decode µs/tx, our signature check µs/tx, raw PyNaCl verifications/s)."""
    started = time.perf_counter()
    decoded = [decode_tx(raw, app.registry) for raw in txs]
    decode_us = (time.perf_counter() - started) / len(txs) * 1e6
    started = time.perf_counter()
    for tx in decoded:
        if not verify_signature(tx.pubkey, tx.sign_bytes, tx.signature):
            raise RuntimeError("a benchmark signature does not verify")
    signature_us = (time.perf_counter() - started) / len(txs) * 1e6
    triples = [(tx.pubkey, tx.sign_bytes, tx.signature) for tx in decoded]
    started = time.perf_counter()
    for pubkey, message, signature in triples:
        nacl.signing.VerifyKey(pubkey).verify(message, signature)
    raw_per_s = len(triples) / (time.perf_counter() - started)
    return decode_us, signature_us, raw_per_s


def run(accounts: int, funded: list[PrivateKey], count: int, profile: bool,
        backlog: bool) -> Result:
    timings = StoreTimings()
    with tempfile.TemporaryDirectory(prefix="citychain-bench-") as directory:
        print(f"  state of {accounts:,} accounts: building ...", flush=True)
        started = time.perf_counter()
        node, app, store, blocks, keys = build_node(Path(directory), accounts, funded, timings)
        print(f"  built in {time.perf_counter() - started:.1f} s ({keys:,} keys); "
              f"signing {count:,} transfers ...", flush=True)
        txs = sign_transfers(funded, app.chain_id, count, seed=accounts)
        decode_us, signature_us, raw_per_s = micro_timings(app, txs)
        app.verified = type(app.verified)(app.registry)  # forget what the micro-timings cached
        timings.reset()
        stats: list[BlockStats] = []
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        # Streaming (default): submit one block's worth, produce it, repeat — the mempool never
        # holds a backlog. Backlog: submit everything first, then produce; every block then
        # rechecks the whole remaining mempool (as CometBFT's recheck does).
        chunk = len(txs) if backlog else node.max_block_txs
        submit_s = produce_s = 0.0
        for start in range(0, len(txs), chunk):
            started = time.perf_counter()
            for raw in txs[start:start + chunk]:
                result = node.submit(raw)
                if not result.ok:
                    raise RuntimeError(f"check_tx refused a benchmark tx: {result.log}")
            submitted = time.perf_counter()
            while node.mempool_count:
                stats.append(node.produce_block())
            produce_s += time.perf_counter() - submitted
            submit_s += submitted - started
        if profiler is not None:
            profiler.disable()
        failed = sum(s.failed for s in stats)
        if failed or sum(s.tx_count for s in stats) != count:
            raise RuntimeError(f"{failed} txs failed, {sum(s.tx_count for s in stats)} committed")
        text = ""
        if profiler is not None:
            buffer = io.StringIO()
            pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(25)
            text = buffer.getvalue()
        result_ = Result(
            state_accounts=accounts, state_keys=keys, txs=count, blocks=len(stats),
            submit_s=submit_s, produce_s=produce_s,
            decode_us=decode_us, signature_us=signature_us, raw_nacl_per_s=raw_per_s,
            execute_s=sum(s.execute_s for s in stats),
            block_store_s=sum(s.store_s for s in stats),
            app_commit_s=sum(s.commit_s for s in stats),
            compute_root_s=timings.compute_root_s, store_commit_s=timings.store_commit_s,
            stats=stats, profile=text)
        blocks.close()
        store.close()
    return result_


def print_result(result: Result) -> None:
    print(f"\n== state: {result.state_accounts:,} accounts ({result.state_keys:,} keys), "
          f"{result.txs:,} transfers in {result.blocks} blocks ==")
    print(f"  committed: {result.committed_per_s:,.0f} tx/s on one core "
          f"(check_tx {result.submit_s:.2f} s + blocks {result.produce_s:.2f} s)")
    print(f"  raw PyNaCl verify: {result.raw_nacl_per_s:,.0f} /s; ratio committed/raw = "
          f"{result.committed_per_s / result.raw_nacl_per_s:.3f}")
    print(f"  {'per tx':<58}{'µs':>9}{'share':>8}")
    parts = result.per_tx_us()
    total = parts["total"]
    for name, value in parts.items():
        print(f"  {name:<58}{value:>9.1f}{value / total:>8.0%}")
    full = [s for s in result.stats if s.tx_count >= 1000]
    if full:
        ms = sorted((s.store_s + s.commit_s) * 1e3 for s in full)
        roots = result.compute_root_s / len(result.stats) * 1e3
        print(f"  per block of ~{full[0].tx_count} txs: compute_root {roots:.0f} ms (mean), "
              f"block store + app commit {ms[len(ms) // 2]:.0f} ms (median), "
              f"execute {sorted(s.execute_s for s in full)[len(full) // 2] * 1e3:.0f} ms "
              "(median, incl. compute_root)")
    if result.profile:
        print("\n  cProfile, by own time:")
        print(result.profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--funded", type=int, default=2_000)
    parser.add_argument("--sizes", default="10000,200000",
                        help="comma-separated state sizes in accounts")
    parser.add_argument("--profile", action="store_true", help="cProfile the timed part")
    parser.add_argument("--backlog", action="store_true",
                        help="submit every tx before producing the first block")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"solo throughput: {args.txs:,} signed transfers among {args.funded:,} funded "
          f"accounts, SQLite state, one core, {'backlog' if args.backlog else 'streaming'} "
          f"mempool (python {sys.version.split()[0]})", flush=True)
    funded = [named_key(f"bench-funded-{i}") for i in range(args.funded)]
    results = []
    for size in sizes:
        results.append(run(size, funded, args.txs, args.profile, args.backlog))
        print_result(results[-1])
    print("\n== summary ==")
    print(f"  {'accounts':>10}{'keys':>11}{'tx/s':>9}{'ratio':>8}{'commit µs/tx':>14}"
          f"{'compute_root':>14}{'store commit':>14}{'block store':>13}  (ms per block)")
    for result in results:
        parts = result.per_tx_us()
        print(f"  {result.state_accounts:>10,}{result.state_keys:>11,}"
              f"{result.committed_per_s:>9,.0f}"
              f"{result.committed_per_s / result.raw_nacl_per_s:>8.3f}"
              f"{parts['state commit (compute_root + store commit + block store)']:>14.1f}"
              f"{result.compute_root_s / result.blocks * 1e3:>14.1f}"
              f"{result.store_commit_s / result.blocks * 1e3:>14.1f}"
              f"{result.block_store_s / result.blocks * 1e3:>13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
