"""Benchmark of the authenticated state store: block commit cost, reads and proofs by state size.

For each state size (default 10k and 1M keys, built in large commits) it measures, on a
SqliteStore in a temporary directory:

* compute_root + commit of a block changing 1,000 and 5,000 keys (half updates of existing keys,
  half new keys), median over several blocks, and the tree nodes written per changed key;
* point reads of the latest state (value cache warm, and first touch of keys never read);
* prove() and verify_proof() time and encoded proof size, for present and absent keys;
* resident memory of the measuring process (the state is built by a child process, so this is
  the memory of a node that opened an existing state and committed the measured blocks).

Same-run references make the figures comparable across machines: the cost per changed key is
printed as a multiple of one raw sha256 call of a 65-byte message, and the block's cost as a
multiple of a plain SQLite upsert of the same rows (same pragmas, a table of the same size, no
Merkle tree, no history). Per-block cost must grow at most with log2(state size): the summary
prints the measured growth next to the growth of log2(n).

Usage: .venv/bin/python bench/state_commit.py [--sizes 10000,1000000] [--blocks 5]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import multiprocessing
import os
import random
import resource
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass, field

from citychain.core import codec
from citychain.core.merkle import verify_proof
from citychain.store import SqliteStore

BUILD_BATCH = 50_000
BLOCK_SIZES = (1_000, 5_000)
VALUE_SIZE = 40


def make_key(index: int) -> bytes:
    """A realistic state key: module prefix, 20-byte address, denomination suffix (27 bytes)."""
    return b"\x02b/" + hashlib.sha256(index.to_bytes(8, "big")).digest()[:20] + b"ucty"


@dataclass
class BlockFigures:
    block_keys: int
    compute_ms: float
    commit_ms: float
    nodes_per_key: float
    plain_ms: float
    best_ms: float

    @property
    def total_ms(self) -> float:
        return self.compute_ms + self.commit_ms

    @property
    def per_key_us(self) -> float:
        return self.total_ms * 1000 / self.block_keys


@dataclass
class SizeFigures:
    size: int
    build_s: float
    blocks: list[BlockFigures] = field(default_factory=list)
    get_warm_us: float = 0.0
    get_first_us: float = 0.0
    prove_us: float = 0.0
    prove_absent_us: float = 0.0
    verify_us: float = 0.0
    proof_bytes: float = 0.0
    siblings: float = 0.0
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0


def measure_sha256() -> float:
    """Return the µs of one sha256(65 bytes).digest() call (best of 5 runs)."""
    message = bytes(range(65))
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(100_000):
            hashlib.sha256(message).digest()
        runs.append((time.perf_counter() - start) / 100_000 * 1e6)
    return min(runs)


def open_plain(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -32768")  # the store's default page cache
    return conn


def plain_commit(conn: sqlite3.Connection, rows: list[tuple[bytes, bytes]]) -> float:
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) "
                     "DO UPDATE SET value = excluded.value", rows)
    conn.execute("COMMIT")
    return (time.perf_counter() - start) * 1000


def build_state(store_path: str, plain_path: str, size: int, seed: int) -> None:
    """Write keys 0..size-1 in commits of BUILD_BATCH (run in a child process, so the memory
    figures of the measuring process are those of a node that opened an existing state)."""
    rng = random.Random(seed)
    store = SqliteStore(store_path)
    plain = open_plain(plain_path)
    plain.execute("CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
    for height, low in enumerate(range(0, size, BUILD_BATCH), start=1):
        working = store.begin()
        rows = [(make_key(index), rng.randbytes(VALUE_SIZE))
                for index in range(low, min(size, low + BUILD_BATCH))]
        for key, value in rows:
            working.set(key, value)
        store.commit(working, height)
        rows.sort()
        plain.execute("BEGIN")
        plain.executemany("INSERT INTO kv (key, value) VALUES (?, ?)", rows)
        plain.execute("COMMIT")
    store.close()
    plain.close()


def run_size(size: int, blocks: int, directory: str, rng: random.Random) -> SizeFigures:
    store_path = os.path.join(directory, f"state-{size}.db")
    plain_path = os.path.join(directory, f"plain-{size}.db")
    start = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(
        target=build_state, args=(store_path, plain_path, size, rng.randrange(2**32)))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"building the {size:,}-key state failed")
    store = SqliteStore(store_path)
    plain = open_plain(plain_path)
    height = store.latest_height
    figures = SizeFigures(size, time.perf_counter() - start)
    next_index = size

    for block_keys in BLOCK_SIZES:
        computes: list[float] = []
        commits: list[float] = []
        nodes: list[int] = []
        plains: list[float] = []
        for round_index in range(blocks + 1):  # the first block warms caches and is not counted
            changes: dict[bytes, bytes] = {}
            for _ in range(block_keys // 2):
                changes[make_key(rng.randrange(next_index))] = rng.randbytes(VALUE_SIZE)
            while len(changes) < block_keys:
                changes[make_key(next_index)] = rng.randbytes(VALUE_SIZE)
                next_index += 1
            working = store.begin()
            for key, value in changes.items():
                working.set(key, value)
            began = time.perf_counter()
            working.compute_root()
            computed = time.perf_counter()
            height += 1
            store.commit(working, height)
            committed = time.perf_counter()
            plain_ms = plain_commit(plain, sorted(changes.items()))
            if round_index:
                computes.append((computed - began) * 1000)
                commits.append((committed - computed) * 1000)
                nodes.append(_nodes_written(store, height))
                plains.append(plain_ms)
        figures.blocks.append(BlockFigures(
            block_keys, statistics.median(computes), statistics.median(commits),
            statistics.mean(nodes) / block_keys, statistics.median(plains),
            min(compute + commit for compute, commit in zip(computes, commits, strict=True))))

    reader = store.reader()
    warm = [make_key(rng.randrange(size)) for _ in range(1000)]
    for key in warm:
        reader.get(key)
    start = time.perf_counter()
    for _ in range(20):
        for key in warm:
            reader.get(key)
    figures.get_warm_us = (time.perf_counter() - start) / 20_000 * 1e6
    first = [make_key(index) for index in rng.sample(range(size), min(size, 20_000))]
    start = time.perf_counter()
    for key in first:
        reader.get(key)
    figures.get_first_us = (time.perf_counter() - start) / len(first) * 1e6

    present = [make_key(index) for index in rng.sample(range(size), min(size, 2_000))]
    absent = [make_key(next_index + 10_000_000 + index) for index in range(2_000)]
    start = time.perf_counter()
    proofs = [store.prove(key) for key in present]
    figures.prove_us = (time.perf_counter() - start) / len(present) * 1e6
    start = time.perf_counter()
    for key in absent:
        store.prove(key)
    figures.prove_absent_us = (time.perf_counter() - start) / len(absent) * 1e6
    root = store.latest_root
    start = time.perf_counter()
    for key, (value, proof) in zip(present, proofs, strict=True):
        if not verify_proof(root, key, value, proof):
            raise SystemExit(f"proof for {key.hex()} does not verify")
    figures.verify_us = (time.perf_counter() - start) / len(present) * 1e6
    figures.proof_bytes = statistics.mean(len(codec.encode(proof.to_value()))
                                          for _, proof in proofs)
    figures.siblings = statistics.mean(len(proof.siblings) for _, proof in proofs)
    figures.rss_mib = current_rss_mib()
    figures.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store.close()
    plain.close()
    return figures


def current_rss_mib() -> float:
    """Resident memory of this process now (Linux), in MiB."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def _nodes_written(store: SqliteStore, height: int) -> int:
    """Tree nodes the commit of ``height`` wrote (from the store's version row)."""
    row = store._get_version(height)  # a storage detail, not part of the store API
    return row.node_count if row is not None else 0


def print_report(results: list[SizeFigures], sha_us: float) -> None:
    print(f"\nreference: one sha256 of 65 bytes = {sha_us:.3f} µs (same run)\n")
    print("per block: median of the measured blocks (best: the fastest one), SqliteStore, "
          "WAL + synchronous=FULL")
    header = (f"{'state keys':>11} {'block keys':>10} {'compute ms':>10} {'commit ms':>9} "
              f"{'total ms':>8} {'best ms':>7} {'µs/key':>7} {'x sha256':>8} {'plain ms':>8} "
              f"{'x plain':>7} {'nodes/key':>9}")
    print(header)
    print("-" * len(header))
    for figures in results:
        for block in figures.blocks:
            print(f"{figures.size:>11,} {block.block_keys:>10,} {block.compute_ms:>10.1f} "
                  f"{block.commit_ms:>9.1f} {block.total_ms:>8.1f} {block.best_ms:>7.1f} "
                  f"{block.per_key_us:>7.1f} "
                  f"{block.per_key_us / sha_us:>8.0f} {block.plain_ms:>8.1f} "
                  f"{block.total_ms / block.plain_ms:>7.1f} {block.nodes_per_key:>9.2f}")
    print("\nreads and proofs (latest state)")
    header = (f"{'state keys':>11} {'build s':>7} {'get µs warm':>11} {'get µs 1st':>10} "
              f"{'prove µs':>8} {'absent µs':>9} {'verify µs':>9} {'proof B':>7} "
              f"{'siblings':>8} {'RSS MiB':>7} {'peak':>5}")
    print(header)
    print("-" * len(header))
    for figures in results:
        print(f"{figures.size:>11,} {figures.build_s:>7.1f} {figures.get_warm_us:>11.2f} "
              f"{figures.get_first_us:>10.2f} {figures.prove_us:>8.1f} "
              f"{figures.prove_absent_us:>9.1f} {figures.verify_us:>9.1f} "
              f"{figures.proof_bytes:>7.0f} {figures.siblings:>8.1f} {figures.rss_mib:>7.0f} "
              f"{figures.peak_rss_mib:>5.0f}")
    if len(results) >= 2:
        small, large = results[0], results[-1]
        log_growth = math.log2(large.size) / math.log2(small.size)
        print(f"\ngrowth from {small.size:,} to {large.size:,} keys (state x"
              f"{large.size / small.size:,.0f}; log2(state) x{log_growth:.2f}):")
        for before, after in zip(small.blocks, large.blocks, strict=True):
            relative = (after.total_ms / after.plain_ms) / (before.total_ms / before.plain_ms)
            per_node = ((after.total_ms / after.nodes_per_key)
                        / (before.total_ms / before.nodes_per_key))
            print(f"  {before.block_keys:>5,}-key block: wall time x"
                  f"{after.total_ms / before.total_ms:.2f} | tree nodes written per key x"
                  f"{after.nodes_per_key / before.nodes_per_key:.2f} (the hashing work: "
                  f"~log2(n/block) + 3 levels) | time per node written x{per_node:.2f} | "
                  f"plain SQLite upsert of the same rows x{after.plain_ms / before.plain_ms:.2f}"
                  f" | Merkle store relative to plain x{relative:.2f}")
        print(f"  proof siblings x{large.siblings / small.siblings:.2f}, "
              f"prove time x{large.prove_us / small.prove_us:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000",
                        help="comma-separated state sizes in keys (default 10000,1000000)")
    parser.add_argument("--blocks", type=int, default=5,
                        help="measured blocks per block size (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default=None, help="directory for the databases (default: tmp)")
    args = parser.parse_args()
    sizes = sorted(int(part) for part in args.sizes.split(",") if part)
    rng = random.Random(args.seed)
    sha_us = measure_sha256()
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        for size in sizes:
            print(f"building and measuring a {size:,}-key state ...", flush=True)
            results.append(run_size(size, args.blocks, directory, rng))
    print_report(results, sha_us)


if __name__ == "__main__":
    main()
