"""Committed tx/s and commit latency of a 4-validator citychain testnet vs CometBFT's kvstore.

    .venv/bin/python bench/network_throughput.py [--txs 20000] [--senders 32] [--validators 4]
        [--sizes 0,20000] [--batch 100] [--rate 0] [--block-bytes N] [--set SECTION.KEY=VALUE]

For each state size (``--sizes``: extra identities with a balance in genesis), the script:

1. creates a local testnet (``citychain.node.testnet``) and starts it: one supervisor, one
   Python application and one CometBFT per validator, all on this machine;
2. pre-signs ``--txs`` transfers among ``--senders`` funded accounts and encodes them into
   JSON-RPC batch requests of ``--batch`` ``broadcast_tx_async`` calls, one list per node
   (sender ``i`` is pinned to node ``i % validators``, so its sequence numbers arrive in order);
   none of this is timed;
3. sends each node's batches from one thread over one keep-alive HTTP connection, as fast as
   the node answers (or paced to ``--rate`` tx/s in all); the client costs ~5 µs of CPU per tx
   to send (printed on stderr with the block reader's cost), so it does not limit either app;
4. follows node 0's blocks (``block`` per height; ``block_results`` once the load is in) and
   matches each block's txs (sha256) to their send times: committed tx/s = txs committed
   with code 0 / (last commit - first send); p50/p99 latency from send to the moment the
   block was seen. With the default ``--rate 0`` the whole load is offered at once, so latency
   is mostly queueing: use ``--rate`` for latency at a given load.

The reference runs the same way in the same run: the same directories and CometBFT settings,
but each CometBFT runs its built-in ``kvstore`` application (``--proxy_app=kvstore``), and the
txs are ``key=value`` strings of exactly the byte size of the signed transfers, sent by the
same client in the same batches. The ratio citychain / kvstore is the figure to compare across
machines. Both testnets get the bench's settings (``BENCH_CONSENSUS``, ``BENCH_CONFIG``) on top
of the testnet defaults; ``recheck`` stays on because citychain's sequence numbers need it.

Figures on the 2-core project machine (CometBFT v0.38.25, 344-byte txs; details, the CPU
budget and the old figures in docs/network.md, "Throughput"):

* 20,000 txs offered at once: citychain 1,624 tx/s (32 ids) and 1,530 tx/s (20,032 ids);
  kvstore 5,808 and 5,639 tx/s; ratio 0.28 and 0.27 (the 0.5 bar is not met).
* paced at 1,000 tx/s: both keep up; citychain p50/p99 0.69/1.15 s, kvstore 0.43/0.65 s.
* the old client (32 threads of broadcast_tx_sync, one tx per call) measured 435 vs 667 tx/s:
  it was the limit for both apps.
* the signature floor (``--apps`` includes ``verify-floor``, bench/verify_floor_app.py: decode
  and Ed25519-check each tx once per node, no state), 20,000 txs offered at once, two runs:
  citychain 1,606 and 1,166, kvstore 4,939 and 3,761, verify-floor 2,240 and 1,388 tx/s;
  ratios 0.33/0.31 and **0.45/0.37**. An app that does nothing but what every citychain
  validator must do for a tx stays under the 0.5 bar on this machine.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import socket
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
from typing import Any
from urllib.parse import urlsplit

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


def node_batches(queues: list[list[bytes]], nodes: int, batch: int) -> list[list[NodeBatch]]:
    """Per node, its JSON-RPC batches of ``broadcast_tx_async``, encoded before any timing.

    Sender ``i`` is pinned to node ``i % nodes``; a node's txs interleave its senders
    round-robin, so every sender's txs reach its node (and, by in-order gossip, every node)
    in sequence order.
    """
    per_node: list[list[bytes]] = [[] for _ in range(nodes)]
    for node in range(nodes):
        mine = [queue for index, queue in enumerate(queues) if index % nodes == node]
        for position in range(max((len(q) for q in mine), default=0)):
            per_node[node].extend(q[position] for q in mine if position < len(q))
    batches: list[list[NodeBatch]] = []
    for txs in per_node:
        chunks = []
        for first in range(0, len(txs), batch):
            chunk = txs[first:first + batch]
            body = json.dumps([{"jsonrpc": "2.0", "id": first + k, "method": "broadcast_tx_async",
                                "params": {"tx": base64.b64encode(raw).decode()}}
                               for k, raw in enumerate(chunk)]).encode()
            chunks.append(NodeBatch(body, [hashlib.sha256(raw).digest() for raw in chunk]))
        batches.append(chunks)
    return batches


@dataclass
class NodeBatch:
    body: bytes
    hashes: list[bytes]


def run_load(testnet: Testnet, batches: list[list[NodeBatch]], rate: float,
             timeout: float) -> Result:
    """Send each node's batches from one thread over one keep-alive HTTP connection (at
    ``rate`` tx/s in all, or as fast as the nodes take them when 0); follow node 0's blocks
    until every tx is in a block or nothing new commits for ``timeout`` seconds, then count
    the txs whose ``block_results`` code is 0."""
    sent_at: dict[bytes, float] = {}
    refused: list[str] = []
    client_cpu: list[float] = []
    reader_cpu = time.thread_time()
    total = sum(len(b.hashes) for node in batches for b in node)
    per_thread_rate = rate / len(batches) if rate > 0 else 0.0
    start = time.perf_counter() + 0.05

    def send(index: int) -> None:
        url = urlsplit(testnet.nodes[index].rpc_url)
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
        done = 0
        for chunk in batches[index]:
            if per_thread_rate:
                delay = start + done / per_thread_rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            now = time.perf_counter()
            for digest in chunk.hashes:
                sent_at[digest] = now
            connection.request("POST", "/", chunk.body, {"Content-Type": "application/json"})
            answers = json.loads(connection.getresponse().read())
            for answer in answers:
                if "error" in answer:
                    refused.append(str(answer["error"].get("data") or answer["error"]))
            done += len(chunk.hashes)
        connection.close()
        client_cpu.append(time.thread_time())

    reader = NodeClient(testnet.nodes[0].rpc_url, timeout=30)
    height = int(reader.status()["sync_info"]["latest_block_height"])
    delay = start - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    threads = [threading.Thread(target=send, args=(i,), daemon=True)
               for i in range(len(batches))]
    for thread in threads:
        thread.start()
    seen_in: dict[int, list[float]] = {}  # height -> latency of each of our txs, block order
    last_seen: dict[int, float] = {}
    last_progress = time.perf_counter()
    included = 0
    while included < total and time.perf_counter() - last_progress < timeout:
        latest = int(reader.status()["sync_info"]["latest_block_height"])
        if latest <= height:
            time.sleep(0.01)
            continue
        for current in range(height + 1, latest + 1):
            block = reader.call("block", height=str(current))["block"]
            seen = time.perf_counter()
            ours = []
            for encoded in block["data"]["txs"] or []:
                sent = sent_at.get(hashlib.sha256(base64.b64decode(encoded)).digest())
                ours.append(float("nan") if sent is None else seen - sent)
            if any(latency == latency for latency in ours):
                seen_in[current] = ours
                last_seen[current] = seen
                included += sum(1 for latency in ours if latency == latency)
                last_progress = seen
        height = latest
        if all(not t.is_alive() for t in threads) and included + len(refused) >= total:
            break
    for thread in threads:
        thread.join(5)
    reader_cpu = time.thread_time() - reader_cpu
    # Only txs executed with code 0 count; results are read after the timed part.
    latencies: list[float] = []
    failed = 0
    last_commit = start
    for current, ours in seen_in.items():
        codes = [int(r.get("code", 0)) for r in
                 block_results(reader, current)["txs_results"] or []]
        for latency, code in zip(ours, codes, strict=True):
            if latency != latency:
                continue
            if code != 0:
                failed += 1
                continue
            latencies.append(latency)
            last_commit = max(last_commit, last_seen[current])
    reader.close()
    print(f"  client CPU: senders {1e6 * sum(client_cpu) / total:.1f} us/tx, block reader "
          f"{1e6 * reader_cpu / total:.1f} us/tx", file=sys.stderr)
    if refused or failed:
        print(f"  {len(refused)} refused by RPC (first: {refused[:1]}), {failed} failed in "
              "blocks", file=sys.stderr)
    return Result("", total, len(latencies), last_commit - start, latencies)


def block_results(reader: NodeClient, height: int) -> dict[str, Any]:
    """``block_results`` at ``height``; the block is visible a moment before its results."""
    for _attempt in range(200):
        try:
            result: dict[str, Any] = reader.call("block_results", height=str(height))
            return result
        except RpcError:
            time.sleep(0.01)
    result = reader.call("block_results", height=str(height))
    return result


def with_testnet(root: Path, options: TestnetOptions,
                 body: Callable[[Testnet], Result], app: str) -> Result:
    """Run ``body`` on a fresh testnet whose nodes run ``app``: ``citychain`` (the supervised
    node), ``kvstore`` (CometBFT's built-in app) or ``verify-floor`` (bench/verify_floor_app.py
    in its own process per node, served on the node's proxy_app address)."""
    testnet = init_testnet(root, options)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if app == "citychain":
            start_testnet(testnet)
        else:
            for index, info in enumerate(testnet.nodes):
                node = testnet.node_dir(index)
                args = ["--proxy_app", "kvstore"]
                if app == "verify-floor":
                    args = []
                    with (node.log_dir / "floor.log").open("ab") as log:
                        processes.append(subprocess.Popen(
                            [sys.executable, str(Path(__file__).with_name("verify_floor_app.py")),
                             "--address", info.proxy_app],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
                    wait_for_port(info.proxy_port)
                processes.append(start_cometbft(node.cometbft_home, node.log_dir / f"{app}.log",
                                                args))
            wait_for_rpc_plain(testnet)
        client = NodeClient(testnet.nodes[0].rpc_url)
        while int(client.status()["sync_info"]["latest_block_height"]) < 2:
            time.sleep(0.1)
        client.close()
        return body(testnet)
    finally:
        for process in processes:
            stop_process(process)
        stop_testnet(testnet)


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


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


# The bench's own CometBFT settings, the same for both apps (see the module docstring).
BENCH_CONSENSUS: dict[str, str | int | bool] = {}
# p2p rates: CometBFT's 5 MB/s per peer is a WAN default; on loopback it throttles the gossip
# of multi-MB blocks (kvstore went from ~2,100 to ~5,000 tx/s with 20 MB/s).
BENCH_CONFIG: dict[str, dict[str, str | int | bool]] = {
    "rpc": {"max_request_batch_size": 500, "max_body_bytes": 8_000_000},
    "p2p": {"send_rate": 20_480_000, "recv_rate": 20_480_000},
}
BENCH_BLOCK_MAX_BYTES: int | None = None


def parse_setting(text: str) -> tuple[str, str, str | int | bool]:
    """``section.key=value`` (section ``consensus``, ``mempool``, ``p2p``...)."""
    name, _, value = text.partition("=")
    section, _, key = name.rpartition(".")
    parsed: str | int | bool = value
    if value in ("true", "false"):
        parsed = value == "true"
    elif value.lstrip("-").isdigit():
        parsed = int(value)
    return section, key, parsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--txs", type=int, default=20000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--sizes", default="0,20000",
                        help="extra funded identities in genesis (state sizes), comma separated")
    parser.add_argument("--batch", type=int, default=100,
                        help="txs per JSON-RPC batch request")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="offered load in tx/s over all nodes (0: as fast as accepted)")
    parser.add_argument("--block-bytes", type=int, default=BENCH_BLOCK_MAX_BYTES,
                        help="genesis block.max_bytes")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="extra config.toml setting for both testnets (repeatable)")
    parser.add_argument("--apps", default="citychain,kvstore,verify-floor",
                        help="comma separated: citychain, kvstore, verify-floor")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="give up after this many seconds without a new commit")
    args = parser.parse_args()
    consensus = dict(BENCH_CONSENSUS)
    config = {name: dict(values) for name, values in BENCH_CONFIG.items()}
    for text in args.set:
        section, key, value = parse_setting(text)
        if section == "consensus":
            consensus[key] = value
        else:
            config.setdefault(section, {})[key] = value
    senders = [sender_key(i) for i in range(args.senders)]
    print(f"presigning {args.txs} transfers from {args.senders} senders ...", file=sys.stderr)
    queues = presign(senders, args.txs)
    kv_queues = [[f"k{i}-{j}=".encode().ljust(len(raw), b"v") for j, raw in enumerate(q)]
                 for i, q in enumerate(queues)]
    city_batches = node_batches(queues, args.validators, args.batch)
    kv_batches = node_batches(kv_queues, args.validators, args.batch)
    tx_size = round(statistics.mean(len(raw) for queue in queues for raw in queue))
    print(f"# {args.validators} validators on one machine, {args.txs} txs of ~{tx_size} bytes "
          f"from {args.senders} accounts; broadcast_tx_async in batches of {args.batch}, one "
          f"connection per node, offered {args.rate or 'max'} tx/s; consensus {consensus}, "
          f"config {config}, block.max_bytes {args.block_bytes or 'default'}")
    apps = args.apps.split(",")
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        accounts = [GenesisAccount(key.public_key, (), 10**12) for key in senders]
        accounts += [GenesisAccount(filler_pubkey(i), (), 1) for i in range(size)]
        options = TestnetOptions(validators=args.validators, chain_id=CHAIN_ID, accounts=accounts,
                                 consensus=consensus, config=config,
                                 block_max_bytes=args.block_bytes)
        results: dict[str, Result] = {}
        with tempfile.TemporaryDirectory(prefix="citychain-bench-") as scratch:
            # Each app runs on its own testnet: (directory, the txs it gets, its label).
            runs = {"citychain": ("city", city_batches, f"citychain ({size + len(senders)} ids)"),
                    "kvstore": ("kv", kv_batches, "kvstore (same sizes)"),
                    "verify-floor": ("floor", city_batches, "verify-floor (same txs)")}
            for app in [name for name in runs if name in apps]:
                directory, batches, label = runs[app]
                results[app] = with_testnet(
                    Path(scratch) / directory, options,
                    partial(run_load, batches=batches, rate=args.rate, timeout=args.timeout),
                    app=app)
                results[app].name = label
        for result in results.values():
            print(result.line())
        reference = results.get("kvstore")
        for name in ("citychain", "verify-floor"):
            if reference is not None and name in results:
                ratio = results[name].rate / reference.rate if reference.rate else float("nan")
                print(f"ratio {name}/kvstore: {ratio:.2f}"
                      + ("   (bar: >= 1000 tx/s and ratio >= 0.5)" if name == "citychain" else
                         "   (the most any app checking these signatures in Python reaches)"))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
