"""Committed tx/s and commit latency of a 4-validator citychain testnet vs CometBFT's kvstore.

    .venv/bin/python bench/network_throughput.py [--txs 3000] [--senders 32] [--validators 4]
                                                 [--sizes 0,20000]

For each state size (``--sizes``: extra identities with a balance in genesis), the script:

1. creates a local testnet (``citychain.node.testnet``) and starts it: one supervisor, one
   Python application and one CometBFT per validator, all on this machine;
2. pre-signs ``--txs`` transfers among ``--senders`` funded accounts (not timed);
3. sends them from ``--senders`` threads, each pinned to one node, with ``broadcast_tx_sync``
   (``citychain.client.rpc.NodeClient``), as fast as the nodes accept them;
4. follows the blocks on node 0 and matches each block's txs (sha256) to the send times:
   committed tx/s = committed txs / (last commit - first send), and p50/p99 latency from
   send to the moment the block was seen.

The reference runs the same way in the same run: the same directories and CometBFT settings,
but each CometBFT runs its built-in ``kvstore`` application (``--proxy_app=kvstore``), and the
txs are ``key=value`` strings of exactly the byte size of the signed transfers. The ratio
citychain / kvstore is the figure to compare across machines.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from citychain.client.rpc import NodeClient, RpcError
from citychain.core.crypto import PrivateKey
from citychain.core.tx import build_tx
from citychain.modules.bank.messages import MsgTransfer
from citychain.node.cometbft import start_cometbft, stop_process
from citychain.node.testnet import (
    GenesisAccount,
    Testnet,
    TestnetOptions,
    init_testnet,
    start_testnet,
    stop_testnet,
)
from citychain.testing.chain import filler_pubkey

CHAIN_ID = "citychain-bench"
DENOM = "ucity"


@dataclass
class Result:
    name: str
    sent: int
    committed: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.committed / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def line(self) -> str:
        return (f"{self.name:<28} sent {self.sent:>6}  committed {self.committed:>6}  "
                f"{self.rate:>8.1f} tx/s  p50 {self.percentile(0.5) * 1000:>7.0f} ms  "
                f"p99 {self.percentile(0.99) * 1000:>7.0f} ms")


def sender_key(index: int) -> PrivateKey:
    return PrivateKey.from_secret(f"citychain-bench/sender-{index}")


def presign(senders: Sequence[PrivateKey], count: int) -> list[list[bytes]]:
    """Per sender, its transfers in sequence order (round-robin over senders)."""
    queues: list[list[bytes]] = [[] for _ in senders]
    for number in range(count):
        index = number % len(senders)
        to = senders[(index + 1) % len(senders)]
        queues[index].append(build_tx(senders[index], CHAIN_ID, len(queues[index]),
                                      MsgTransfer(to.did, DENOM, 1 + number % 97)))
    return queues


def run_load(testnet: Testnet, queues: list[list[bytes]], timeout: float) -> Result:
    """Send every queue from its own thread; follow node 0's blocks until all are committed
    (or nothing new commits for ``timeout`` seconds)."""
    sent_at: dict[str, float] = {}
    lock = threading.Lock()
    accepted = [0]

    def send(index: int, queue: list[bytes]) -> None:
        node = testnet.nodes[index % len(testnet.nodes)]
        with NodeClient(node.rpc_url, timeout=30) as client:
            for raw in queue:
                digest = hashlib.sha256(raw).hexdigest().upper()
                with lock:
                    sent_at[digest] = time.perf_counter()
                for _attempt in range(50):  # a full mempool answers with an error: retry
                    try:
                        answer = client.broadcast(raw, commit=False)
                    except RpcError:
                        time.sleep(0.05)
                        continue
                    if answer.get("code", 0) == 0:
                        with lock:
                            accepted[0] += 1
                    break

    reader = NodeClient(testnet.nodes[0].rpc_url, timeout=30)
    height = int(reader.status()["sync_info"]["latest_block_height"])
    start = time.perf_counter()
    threads = [threading.Thread(target=send, args=(i, q), daemon=True)
               for i, q in enumerate(queues)]
    for thread in threads:
        thread.start()
    total = sum(len(q) for q in queues)
    latencies: list[float] = []
    last_commit = start
    last_progress = time.perf_counter()
    committed = 0
    while committed < total and time.perf_counter() - last_progress < timeout:
        latest = int(reader.status()["sync_info"]["latest_block_height"])
        if latest <= height:
            time.sleep(0.02)
            continue
        for current in range(height + 1, latest + 1):
            block = reader.call("block", height=str(current))["block"]
            seen = time.perf_counter()
            for encoded in block["data"]["txs"] or []:
                digest = hashlib.sha256(base64.b64decode(encoded)).hexdigest().upper()
                with lock:
                    sent = sent_at.get(digest)
                if sent is not None:
                    latencies.append(seen - sent)
                    committed += 1
                    last_commit = seen
                    last_progress = seen
        height = latest
        if all(not t.is_alive() for t in threads) and committed >= accepted[0]:
            break
    for thread in threads:
        thread.join(5)
    reader.close()
    return Result("", total, committed, last_commit - start, latencies)


def with_testnet(root: Path, options: TestnetOptions,
                 body: Callable[[Testnet], Result], kvstore: bool) -> Result:
    testnet = init_testnet(root, options)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if kvstore:
            for index in range(len(testnet.nodes)):
                node = testnet.node_dir(index)
                processes.append(start_cometbft(node.cometbft_home, node.log_dir / "kvstore.log",
                                                ["--proxy_app", "kvstore"]))
            wait_for_rpc_plain(testnet)
        else:
            start_testnet(testnet)
        client = NodeClient(testnet.nodes[0].rpc_url)
        while int(client.status()["sync_info"]["latest_block_height"]) < 2:
            time.sleep(0.1)
        client.close()
        return body(testnet)
    finally:
        for process in processes:
            stop_process(process)
        stop_testnet(testnet)


def wait_for_rpc_plain(testnet: Testnet, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for node in testnet.nodes:
        with NodeClient(node.rpc_url, timeout=2) as client:
            while True:
                try:
                    client.status()
                    break
                except RpcError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--txs", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--sizes", default="0,20000",
                        help="extra funded identities in genesis (state sizes), comma separated")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="give up after this many seconds without a new commit")
    args = parser.parse_args()
    senders = [sender_key(i) for i in range(args.senders)]
    print(f"presigning {args.txs} transfers from {args.senders} senders ...", file=sys.stderr)
    queues = presign(senders, args.txs)
    tx_size = round(statistics.mean(len(raw) for queue in queues for raw in queue))
    print(f"# {args.validators} validators on one machine, {args.txs} txs of ~{tx_size} bytes, "
          f"{args.senders} concurrent senders, broadcast_tx_sync")
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        accounts = [GenesisAccount(key.public_key, (), 10**12) for key in senders]
        accounts += [GenesisAccount(filler_pubkey(i), (), 1) for i in range(size)]
        options = TestnetOptions(validators=args.validators, chain_id=CHAIN_ID, accounts=accounts)
        with tempfile.TemporaryDirectory(prefix="citychain-bench-") as scratch:
            city = with_testnet(Path(scratch) / "city", options,
                                partial(run_load, queues=queues, timeout=args.timeout),
                                kvstore=False)
            city.name = f"citychain ({size + len(senders)} ids)"
            kv_queues = [[f"k{i}-{j}=".encode().ljust(len(raw), b"v") for j, raw in enumerate(q)]
                         for i, q in enumerate(queues)]
            kv = with_testnet(Path(scratch) / "kv", options,
                              partial(run_load, queues=kv_queues, timeout=args.timeout),
                              kvstore=True)
            kv.name = "kvstore (same sizes)"
        print(city.line())
        print(kv.line())
        ratio = city.rate / kv.rate if kv.rate else float("nan")
        print(f"ratio citychain/kvstore: {ratio:.2f}   (bar: >= 1000 tx/s and ratio >= 0.5)")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
