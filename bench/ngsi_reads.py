"""Benchmark of the reads behind the NGSI-LD API: a device's latest values and its temporal
readings, by size of the gateway's reading store.

For each store size (default 10,000 and 1,000,000 readings, 1,000 devices with two streams each,
readings interleaved across devices as a gateway stores them) it builds a SQLite reading store in
a temporary directory with the gateway's own write path (``ReadingStore.commit_readings`` in
chunks of 500; the signatures are not checked by the store, so they are random bytes), then
times on a read-only store, as the NGSI-LD server opens it:

* ``latest``: ``latest_readings`` (the newest reading of each stream: what an entity, and every
  ``q`` filter, is built from);
* ``lastN``: ``device_readings(last=5)`` (``/temporal/entities/{id}?lastN=5``);
* ``window``: ``device_readings`` over ten seconds in the middle of the data
  (``timerel=between``; a device reports every second, so ten readings).

Every read returns the same number of readings at every size (each device has at least five
readings of each stream), so a difference between sizes is the cost of finding them.

Each is the median over many devices picked at random (seeded). The same-run reference is the
query the store ran before it indexed the readings for these reads (now by series, a number per
device and stream, on ``readings_series``): one statement over the device's rows with a window
function, run here with ``NOT INDEXED`` (SQLite's way to keep it off any index, as it was
before), so it scans every reading in the store. Its cost
grows with the store; the indexed reads should grow at most with log2 of its size. The summary
prints both and their growth next to the growth of log2(n).

Usage: .venv/bin/python bench/ngsi_reads.py [--sizes 10000,1000000] [--devices 1000]
"""

from __future__ import annotations

import argparse
import math
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from citychain.core.crypto import PrivateKey
from citychain.iot.reading import Reading
from citychain.iot.store import ACCEPTED, BATCHED, ReadingStore, ReadOnlyReadingStore

CHUNK = 500
STREAMS = ("pm25", "temp")
T0 = 1_800_000_000_000
STEP_MS = 1_000

# The statement ReadOnlyReadingStore.device_readings ran before the readings were indexed for
# it (with NOT INDEXED added: SQLite may not use any index for it).
REFERENCE = (
    "SELECT device, stream, seq, ts_ms, value, sig, received_ms, status, batch_id FROM ("
    " SELECT *, ROW_NUMBER() OVER (PARTITION BY stream ORDER BY ts_ms DESC) AS rank"
    " FROM readings NOT INDEXED WHERE device = ? AND status IN (?, ?)"
    " AND (CAST(? AS BIGINT) IS NULL OR ts_ms >= ?)"
    " AND (CAST(? AS BIGINT) IS NULL OR ts_ms < ?)) AS ranked"
    " WHERE (CAST(? AS BIGINT) IS NULL OR rank <= ?) ORDER BY stream, ts_ms")


def build(path: Path, size: int, devices: list[str], seed: int) -> None:
    """``size`` readings, round after round of every device in a shuffled order, each reading
    one of the device's streams in turn, stored as the gateway stores them."""
    rng = random.Random(seed)
    store = ReadingStore(path)
    seq = dict.fromkeys(devices, 0)
    order = list(devices)
    chunk: list[tuple[Reading, int]] = []
    started = time.perf_counter()
    written = 0
    while written < size:
        rng.shuffle(order)
        for device in order[:size - written]:
            n = seq[device] = seq[device] + 1
            ts = T0 + n * STEP_MS
            chunk.append((Reading(device, STREAMS[n % 2], n, ts, rng.randrange(1000),
                                  rng.randbytes(64)), ts))
            if len(chunk) == CHUNK:
                store.commit_readings(chunk, {}, {})
                chunk = []
        written += min(len(order), size - written)
        if written % 100_000 < len(order) or written == size:
                print(f"\r  building: {written:,}/{size:,} readings "
                  f"({time.perf_counter() - started:.0f} s)", end="", file=sys.stderr, flush=True)
    if chunk:
        store.commit_readings(chunk, {}, {})
    store.close()
    print(file=sys.stderr)


def median_us(call: Callable[[str], object], devices: list[str]) -> float:
    times = []
    for device in devices:
        started = time.perf_counter()
        call(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def measure(size: int, device_count: int, samples: int, reference_samples: int, seed: int,
            directory: str | None) -> dict[str, float]:
    devices = [PrivateKey.from_secret(f"ngsi-bench/{i}").did for i in range(device_count)]
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = Path(tmp) / "readings.db"
        build(path, size, devices, seed)
        rounds = size // device_count
        middle = T0 + (rounds // 2 - 4) * STEP_MS  # readings rounds/2-4 .. rounds/2+5
        window = {"from_ms": middle, "to_ms": middle + 10 * STEP_MS}
        rng = random.Random(seed + 1)
        picked = [rng.choice(devices) for _ in range(samples)]
        store = ReadOnlyReadingStore(path)
        # the reference statement on a read-only connection of its own, as the store opens one
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            for device in picked[:20]:  # warm the page cache as a running server has it
                store.latest_readings(device)
            figures = {
                "latest": median_us(store.latest_readings, picked),
                "lastN": median_us(lambda d: store.device_readings(d, last=5), picked),
                "window": median_us(lambda d: store.device_readings(d, **window), picked),
                "reference": median_us(lambda d: db.execute(REFERENCE, (
                    d, ACCEPTED, BATCHED, None, None, None, None, 1, 1)).fetchall(),
                    picked[:reference_samples]),
            }
            for read, expected in ((store.device_readings(picked[0], last=5), 10),
                                   (store.device_readings(picked[0], **window), 10)):
                if len(read) != expected:
                    raise SystemExit(f"a read returned {len(read)} readings, not {expected}")
        finally:
            db.close()
            store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000",
                        help="readings in the store, comma-separated (default 10000,1000000)")
    parser.add_argument("--devices", type=int, default=1000,
                        help="devices (at least 10 readings each: sizes >= 10 x devices)")
    parser.add_argument("--samples", type=int, default=500, help="devices timed per read")
    parser.add_argument("--reference-samples", type=int, default=10,
                        help="devices timed with the reference scan (slow on a big store)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default=None, help="directory for the stores (default: tmp)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if min(sizes) < 10 * args.devices:
        parser.error(f"--sizes must be at least 10 x --devices ({10 * args.devices:,})")
    results = {}
    for size in sizes:
        print(f"== {size:,} readings, {args.devices:,} devices", flush=True)
        results[size] = measure(size, args.devices, args.samples, args.reference_samples,
                                args.seed, args.dir)
        row = results[size]
        print("  " + ", ".join(f"{name} {value:,.0f} us" for name, value in row.items()),
              flush=True)
    print("\n== summary ==  (median microseconds per call; reference: the scan before the index)")
    print(f"  {'readings':>12} {'latest':>9} {'lastN':>9} {'window':>9} {'reference':>11} "
          f"{'ref/latest':>10}")
    for size, row in results.items():
        print(f"  {size:>12,} {row['latest']:>9,.0f} {row['lastN']:>9,.0f} "
              f"{row['window']:>9,.0f} {row['reference']:>11,.0f} "
              f"{row['reference'] / row['latest']:>10,.0f}")
    if len(sizes) > 1:
        low, high = results[sizes[0]], results[sizes[-1]]
        growth = math.log2(sizes[-1]) / math.log2(sizes[0])
        print(f"  growth {sizes[0]:,} -> {sizes[-1]:,}: log2(n) x{growth:.2f}; " + ", ".join(
            f"{name} x{high[name] / low[name]:.2f}" for name in low))


if __name__ == "__main__":
    main()
