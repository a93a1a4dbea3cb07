"""Rule-contract condition evaluations per second inside end-block, at two state sizes.

    .venv/bin/python bench/contracts_eval.py [--cases 10000:1000,100000:1000,20000:10000]
                                             [--blocks 8] [--memory] [--profile] [--quick]

For each case ``CONTRACTS:DUE`` the script:

1. writes a genesis (SQLite store in a temporary directory; ``--memory`` for a MemoryStore) with
   CONTRACTS active street-lighting contracts, each over one of 100 declared feeds whose values
   cite an anchored batch, with the inspector's attestation and a hold of years (so a milestone
   is met, holds, and never releases). ``check_every_blocks`` is CONTRACTS / DUE and the first
   checks are staggered, so exactly DUE contracts are due at every height and every contract
   is judged once per rotation; ``max_due_per_block`` is DUE;
2. commits the genesis with block 1, then times finalize_block + commit of ``--blocks`` empty
   blocks (one warm-up block is not counted). The contracts module's end-block is timed by a
   wrapper handed to the application (no patching), compute_root and the store commit by a
   store wrapper. The module's cache of decoded terms is cleared before every block, so every
   size is measured on the cold path (a contract's terms decoded at each check);
3. reports condition evaluations per second inside end-block (DUE / end-block time; each due
   contract has one milestone, so one evaluation each), the per-contract cost, and the per-block
   cost of compute_root and commit.

Same-run references: raw ``conditions.evaluate()`` calls per second on the same condition and
the same activation end-block builds (so ``end-block / raw`` is the machinery's share: state
reads and writes, the branch, the schedule), and finalize + commit of an empty block on a chain
with no contracts. The bar is 5,000 evaluations/s inside end-block; the aim 20,000/s.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from citychain.app.application import Application
from citychain.app.genesis import Genesis
from citychain.app.types import RequestFinalizeBlock
from citychain.core.context import BlockContext
from citychain.core.events import Event
from citychain.core.state import StateView
from citychain.modules.contracts import evaluation, state
from citychain.modules.contracts.conditions import evaluate
from citychain.modules.contracts.templates import STREET_LIGHTING
from citychain.modules.identity.api import ACCOUNT_KEEPER
from citychain.modules.oracle.types import compute_batch_id
from citychain.node.assemble import default_modules
from citychain.store import MemoryStore, SqliteStore
from citychain.testing.chain import BLOCK_STEP_NS, GENESIS_TIME_NS, Cast, make_genesis
from citychain.testing.timing import StoreTimings, TimingStore

BAR_PER_S = 5_000
AIM_PER_S = 20_000
FEEDS = 100
YEAR = 365 * 86_400
GENESIS_S = GENESIS_TIME_NS // 10**9


# ---------------------------------------------------------------------------- timing wrappers

@dataclass
class Timings(StoreTimings):
    end_block_s: list[float] = field(default_factory=list)


def build_app(store: Any, timings: Timings) -> Application:
    """The default modules, with the contracts module's end-block timed."""
    modules = []
    for module in default_modules():
        if module.name == "contracts" and module.end_block is not None:
            inner = module.end_block

            def timed(view: StateView, block: BlockContext, inner: Any = inner) -> list[Event]:
                started = time.perf_counter()
                found: list[Event] = inner(view, block)
                timings.end_block_s.append(time.perf_counter() - started)
                return found

            module = replace(module, end_block=timed)
        modules.append(module)
    return Application(TimingStore(store, timings), modules,  # type: ignore[arg-type]
                       ACCOUNT_KEEPER)


# ---------------------------------------------------------------------------- genesis

def feed_id(index: int) -> str:
    return f"lights.d{index}.working"


def make_contracts_genesis(cast: Cast, contracts: int, due: int) -> Genesis:
    """The test genesis plus an oracle section (devices, one anchored batch, FEEDS feeds with
    values) and CONTRACTS active contracts, DUE of them due at each height from 1 on."""
    city, contractor, inspector = cast.citizens[0], cast.citizens[1], cast.citizens[2]
    gateway, sensor = cast.devices
    operator = cast.operator.address
    base = make_genesis(cast).to_json_value()
    root = bytes(range(32))
    first_ms, last_ms = (GENESIS_S - 60) * 1000, (GENESIS_S - 1) * 1000
    batch = compute_batch_id(root, (sensor.did,), first_ms, last_ms, 10, b"").hex()
    device = {"owner": operator, "district": "d0", "has_coordinates": False,
              "latitude_udeg": 0, "longitude_udeg": 0, "registered_height": 0,
              "updated_height": 0, "status": "registered", "decommissioned_height": 0}
    base["app_state"]["oracle"] = {
        "devices": sorted([{**device, "address": gateway.address, "device_type": "Gateway",
                            "streams": []},
                           {**device, "address": sensor.address, "device_type": "StreetLight",
                            "streams": ["on:P1:0:1"]}], key=lambda item: str(item["address"])),
        "anchors": [{"batch_id": batch, "merkle_root": root.hex(), "devices": [sensor.address],
                     "first_reading_ms": first_ms, "last_reading_ms": last_ms,
                     "reading_count": 10, "previous_batch_id": "", "operator": operator,
                     "submitter": gateway.address, "height": 0, "time_ns": GENESIS_TIME_NS}],
        "feeds": [{"feed_id": feed_id(index), "publisher": operator,
                   "description": f"working lights d{index}", "unit": "C62", "scale": 0,
                   "aggregation": "count", "coverage": [f"d{index}"], "created_height": 0}
                  for index in range(FEEDS)],
        "feed_values": [{"feed_id": feed_id(index), "value": 120 + index,
                         "window_start_ms": first_ms, "window_end_ms": last_ms,
                         "source_batch_ids": [batch], "height": 0, "time_ns": GENESIS_TIME_NS}
                        for index in range(FEEDS)],
    }
    rotation = max(1, contracts // due)
    sample = {index: json.loads(STREET_LIGHTING.terms({
        "payer": city.did, "payee": contractor.did, "inspector": inspector.did,
        "districts": [f"d{index}:{feed_id(index)}:100"], "amount_per_district": 5_000,
        "deadline": GENESIS_S + 10 * YEAR, "hold_days": 3_000, "max_feed_age": 10 * YEAR,
        "check_every_blocks": rotation})) for index in range(FEEDS)}
    records = []
    for contract_id in range(1, contracts + 1):
        records.append({
            "contract_id": contract_id,
            # distinct terms per contract, as real ones are (no decode is ever shared)
            "terms": {**sample[contract_id % FEEDS],
                      "title": f"Smart street lighting, lot {contract_id}"},
            "state": {"status": "active", "creator": city.address, "created_height": 0,
                      "created_time": GENESIS_S, "signed": ["payer", "payee", "inspector"],
                      "activated_height": 0, "activated_time": GENESIS_S, "closed_height": 0,
                      "amendments": 0, "audit_count": 0, "last_check_height": 0,
                      "last_check_time": 0,
                      "next_check_height": 1 + (contract_id - 1) % rotation},
            "milestones": [{"status": "pending", "met_since": GENESIS_S, "periods_settled": 0,
                            "paid": 0, "refunded": 0, "penalties": 0, "outcome": "met",
                            "detail": "the condition holds", "outcome_height": 0}],
            "attestations": [{"milestone": 0, "period": 0, "role": "inspector",
                              "time": GENESIS_S, "height": 0, "address": inspector.address,
                              "evidence": ""}],
            "amendments": [], "audit": []})
    base["app_state"]["contracts"] = {"params": {"max_due_per_block": due},
                                      "next_id": contracts + 1, "contracts": records}
    return Genesis.from_json_value(base)


# ---------------------------------------------------------------------------- measuring

@dataclass
class Result:
    contracts: int
    due: int
    store: str
    genesis_s: float
    state_keys: int
    end_block_ms: list[float]
    finalize_ms: list[float]
    compute_root_ms: list[float]
    commit_ms: list[float]
    profile: str = ""

    @property
    def end_block_median_ms(self) -> float:
        return statistics.median(self.end_block_ms)

    @property
    def per_s(self) -> float:
        return self.due / (self.end_block_median_ms / 1e3)

    @property
    def per_contract_us(self) -> float:
        return self.end_block_median_ms * 1e3 / self.due


def open_store(directory: str, memory: bool) -> Any:
    return MemoryStore() if memory else SqliteStore(str(Path(directory) / "state.db"))


def run_case(contracts: int, due: int, blocks: int, memory: bool, profile: bool,
             directory: str) -> Result:
    cast = Cast.make(devices=2, prefix="bench-contracts-")
    started = time.perf_counter()
    genesis = make_contracts_genesis(cast, contracts, due)
    timings = Timings()
    store = open_store(directory, memory)
    app = build_app(store, timings)
    app.init_chain(genesis.init_chain_request())
    height, time_ns = 0, GENESIS_TIME_NS

    def block() -> tuple[float, float]:
        nonlocal height, time_ns
        height += 1
        time_ns += BLOCK_STEP_NS
        state.clear_caches()  # every block decodes its due contracts' terms: the cold path
        began = time.perf_counter()
        response = app.finalize_block(RequestFinalizeBlock((), height, time_ns, ""))
        finalized = time.perf_counter()
        app.commit()
        if response.tx_results:
            raise RuntimeError("an empty block returned tx results")
        return finalized - began, time.perf_counter() - finalized

    block()  # block 1 commits the genesis (and judges the first DUE contracts)
    genesis_s = time.perf_counter() - started
    state_keys = sum(1 for _ in store.reader().iterate(b""))
    block()  # warm-up, not counted
    result = Result(contracts, due, "memory" if memory else "sqlite", genesis_s, state_keys,
                    [], [], [], [])
    profiler = cProfile.Profile() if profile else None
    for _ in range(blocks):
        timings.end_block_s.clear()
        timings.compute_root_s = timings.store_commit_s = 0.0
        if profiler is not None:
            profiler.enable()
        finalize_s, commit_s = block()
        if profiler is not None:
            profiler.disable()
        result.end_block_ms.append(timings.end_block_s[0] * 1e3)
        result.finalize_ms.append(finalize_s * 1e3)
        result.compute_root_ms.append(timings.compute_root_s * 1e3)
        result.commit_ms.append(commit_s * 1e3)
    checked = _count_checked(store, contracts, height)
    if checked != due:
        raise RuntimeError(f"{checked} contracts were judged at height {height}, "
                           f"expected {due}")
    if profiler is not None:
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(20)
        result.profile = buffer.getvalue()
    if not memory:
        store.close()
    return result


def _count_checked(store: Any, contracts: int, height: int) -> int:
    """How many contracts were judged at ``height`` (and found met, holding, still active)."""
    reader = store.reader()
    checked = 0
    for contract_id in range(1, contracts + 1):
        record = state.get_state(reader, contract_id)
        milestone = state.get_milestone(reader, contract_id, 0)
        if (record is None or milestone is None
                or state.get_schedule(reader, contract_id).last_check_height != height):
            continue
        if record.status != "active" or milestone.outcome != "met":
            raise RuntimeError(f"contract {contract_id}: {record.status}, {milestone.outcome}")
        checked += 1
    return checked


def measure_raw(memory: bool, directory: str) -> tuple[float, float, float]:
    """(raw evaluate() calls/s, check_milestone calls/s, empty-block finalize + commit ms) on
    a small chain holding the same contract, with the activation end-block would build."""
    cast = Cast.make(devices=2, prefix="bench-contracts-")
    genesis = make_contracts_genesis(cast, 1, 1)
    timings = Timings()
    store = open_store(directory, memory)
    app = build_app(store, timings)
    app.init_chain(genesis.init_chain_request())
    app.finalize_block(RequestFinalizeBlock((), 1, GENESIS_TIME_NS + BLOCK_STEP_NS, ""))
    app.commit()
    reader = store.reader()
    contract = state.get_state(reader, 1)
    terms = state.get_terms(reader, 1)
    record = state.get_milestone(reader, 1, 0)
    if contract is None or terms is None or record is None:
        raise RuntimeError("the reference contract is missing")
    milestone = terms.milestones[0]
    now = GENESIS_S + 2
    check = evaluation.check_milestone(reader, contract, 0, milestone, record, 2, now)
    if not check.met:
        raise RuntimeError(f"the reference condition is not met: {check.outcome}")
    activation = evaluation._activation(contract, 0, milestone, record, 0, 2, now,
                                        list(check.feeds), check.attestations)
    rounds = 20_000
    runs = []
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(rounds):
            evaluate(milestone.condition, "bool", activation)
        runs.append(time.perf_counter() - began)
    raw_per_s = rounds / min(runs)
    began = time.perf_counter()
    for _ in range(rounds // 4):
        evaluation.check_milestone(reader, contract, 0, milestone, record, 2, now)
    check_per_s = rounds / 4 / (time.perf_counter() - began)
    # Empty blocks: the only contract is judged every block (rotation 1), a negligible cost.
    empties = []
    for height in range(2, 12):
        began = time.perf_counter()
        app.finalize_block(RequestFinalizeBlock((), height,
                                                GENESIS_TIME_NS + height * BLOCK_STEP_NS, ""))
        app.commit()
        empties.append(time.perf_counter() - began)
    if not memory:
        store.close()
    return raw_per_s, check_per_s, statistics.median(empties[1:]) * 1e3


# ---------------------------------------------------------------------------- report

def print_report(results: list[Result], raw_per_s: float, check_per_s: float,
                 empty_ms: float) -> None:
    print(f"\nreferences (same run): raw conditions.evaluate() {raw_per_s:,.0f} /s "
          f"({1e6 / raw_per_s:.1f} µs); check_milestone (state reads + evaluate) "
          f"{check_per_s:,.0f} /s; empty block finalize + commit {empty_ms:.2f} ms")
    print("\nper block: median of the measured blocks; end-block = the contracts module's "
          "end-block (judge, schedule, write)")
    header = (f"{'contracts':>10} {'due':>7} {'store':>6} {'keys':>9} {'end-block ms':>12} "
              f"{'µs/contract':>11} {'eval/s':>9} {'x raw':>6} {'finalize ms':>11} "
              f"{'root ms':>8} {'commit ms':>9} {'genesis s':>9}")
    print(header)
    print("-" * len(header))
    for result in results:
        print(f"{result.contracts:>10,} {result.due:>7,} {result.store:>6} "
              f"{result.state_keys:>9,} {result.end_block_median_ms:>12.1f} "
              f"{result.per_contract_us:>11.1f} {result.per_s:>9,.0f} "
              f"{raw_per_s / result.per_s:>6.1f} "
              f"{statistics.median(result.finalize_ms):>11.1f} "
              f"{statistics.median(result.compute_root_ms):>8.1f} "
              f"{statistics.median(result.commit_ms):>9.1f} {result.genesis_s:>9.1f}")
    by_due: dict[int, list[Result]] = {}
    for result in results:
        by_due.setdefault(result.due, []).append(result)
    for due, group in sorted(by_due.items()):
        if len(group) >= 2:
            small = min(group, key=lambda item: item.contracts)
            large = max(group, key=lambda item: item.contracts)
            log_growth = math.log2(large.state_keys) / math.log2(small.state_keys)
            print(f"\ngrowth with state at {due:,} due per block, {small.contracts:,} -> "
                  f"{large.contracts:,} contracts (x{large.contracts / small.contracts:,.0f}; "
                  f"log2(keys) x{log_growth:.2f}): "
                  f"end-block x{_growth(small.end_block_ms, large.end_block_ms):.2f}, "
                  f"finalize x{_growth(small.finalize_ms, large.finalize_ms):.2f}, "
                  f"commit x{_growth(small.commit_ms, large.commit_ms):.2f}")
    by_state: dict[int, list[Result]] = {}
    for result in results:
        by_state.setdefault(result.contracts, []).append(result)
    for contracts, group in sorted(by_state.items()):
        if len(group) >= 2:
            few = min(group, key=lambda item: item.due)
            many = max(group, key=lambda item: item.due)
            print(f"growth with due per block at {contracts:,} contracts, {few.due:,} -> "
                  f"{many.due:,} due (x{many.due / few.due:,.0f}): "
                  f"end-block x{_growth(few.end_block_ms, many.end_block_ms):.2f}, "
                  f"µs per contract x{many.per_contract_us / few.per_contract_us:.2f}")
    worst = min(result.per_s for result in results)
    verdict = ("meets the aim" if worst >= AIM_PER_S else
               "meets the bar, short of the aim" if worst >= BAR_PER_S else "MISSES THE BAR")
    print(f"\nslowest case: {worst:,.0f} evaluations/s inside end-block: {verdict} "
          f"(bar {BAR_PER_S:,}/s, aim {AIM_PER_S:,}/s)")
    for result in results:
        if result.profile:
            print(f"\ncProfile of the measured blocks, {result.contracts:,} contracts / "
                  f"{result.due:,} due, by own time:")
            print(result.profile)


def _growth(before: list[float], after: list[float]) -> float:
    return statistics.median(after) / statistics.median(before)


def parse_cases(text: str) -> list[tuple[int, int]]:
    cases = []
    for part in text.split(","):
        contracts, _, due = part.partition(":")
        cases.append((int(contracts), int(due or contracts)))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="10000:1000,100000:1000,10000:10000",
                        help="comma-separated CONTRACTS:DUE pairs")
    parser.add_argument("--blocks", type=int, default=8, help="measured blocks per case")
    parser.add_argument("--memory", action="store_true", help="MemoryStore instead of SQLite")
    parser.add_argument("--profile", action="store_true", help="cProfile the measured blocks")
    parser.add_argument("--quick", action="store_true",
                        help="small cases for a smoke run (1000:100,4000:100; 3 blocks)")
    parser.add_argument("--dir", default=None, help="directory for the databases (default: tmp)")
    args = parser.parse_args(argv)
    cases = parse_cases("1000:100,4000:100" if args.quick else args.cases)
    blocks = 3 if args.quick else args.blocks
    print(f"contracts end-block: street-lighting conditions over {FEEDS} anchored feeds, "
          f"{'memory' if args.memory else 'SQLite'} state, one core "
          f"(python {sys.version.split()[0]})", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="citychain-bench-", dir=args.dir) as directory:
        raw_per_s, check_per_s, empty_ms = measure_raw(args.memory,
                                                       str(Path(directory)))
        for index, (contracts, due) in enumerate(cases):
            case_dir = Path(directory) / f"case-{index}"
            case_dir.mkdir()
            print(f"  {contracts:,} contracts, {due:,} due per block ...", flush=True)
            results.append(run_case(contracts, due, blocks, args.memory, args.profile,
                                    str(case_dir)))
    print_report(results, raw_per_s, check_per_s, empty_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
