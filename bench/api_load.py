"""HTTP gateway under load: paced and saturating reads, proven reads and tx submissions, with the
node's own JSON-RPC as the same-run reference, at two state sizes.

    .venv/bin/python bench/api_load.py [--sizes 10000,200000] [--rate 500] [--light-rate 100]
                                       [--seconds 10] [--concurrency 16] [--txs 3000]
                                       [--profile-gateway DIR]

For each state size (identities in state, each with a balance, built by one genesis as in
bench/solo_throughput.py) the script starts, on loopback:

* a solo node (SQLite state, 50 ms blocks) and its JSON-RPC server, in a child process;
* the gateway in another process, as a user runs it:
  ``python -m citychain.cli api --node URL --port P --rate-limit 0``;

then, from this process, with one aiohttp client session and at most ``--concurrency`` requests in
flight:

a. paced reads: ``GET /v1/query/bank/balance`` of a random account in state for ``--seconds``,
   unproven at ``--light-rate`` (100/s) and at ``--rate`` (500/s), then with ``prove=true`` at
   ``--rate``. Requests are sent by schedule (request i at start + i/rate), not after the
   previous answer, so a request's latency counts from its scheduled time and includes any
   queueing;
b. saturating reads, unproven and proven: ``--concurrency`` requests back to back for
   ``--seconds``;
c. tx submissions: ``POST /v1/txs`` with ``wait=check`` of ``--txs`` pre-signed transfers among
   2,000 funded accounts (round robin, so no sender has two txs in flight), ``--concurrency``
   at a time;
d. the same-run reference: the unproven balance query sent straight to the node's JSON-RPC
   ``abci_query``, paced at ``--rate`` and saturating; the summary prints the ratio
   gateway/direct of the saturating rates.

Every phase also reports the CPU each process spent per request (from /proc), which holds still
when other work shares the machine, unlike rates and latencies. The bar: p99 < 50 ms at 500
reads/s. ``--profile-gateway DIR`` runs the gateway under cProfile and prints its top functions.

Figures (2 cores shared by the node, the gateway and this load generator; python 3.11.7; 10 s
per phase; cpu in ms per request: gateway / node / generator):

    state 10,000 accounts          per s  p50 ms  p99 ms   gw cpu  node cpu  gen cpu
    gateway 100/s                    100     2.8     6.4     1.36      0.42     0.57
    gateway 500/s                    499     2.7    15.0     1.29      0.39     0.44
    gateway 500/s prove=true         500     3.2    13.9     1.29      0.59     0.43
    gateway saturating             1,145    13.0    45.0     0.81      0.26     0.17
    gateway saturating prove=true    982    15.6    33.9     0.85      0.44     0.19
    POST /v1/txs wait=check          882    16.3    53.9     0.75      0.73     0.23
    node RPC 500/s                   499     1.4     3.3     0.01      0.34     0.53
    node RPC saturating            2,744     5.1    17.1     0.00      0.32     0.22
    ratio gateway/direct saturating reads/s: 0.42

    state 200,000 accounts         per s  p50 ms  p99 ms   gw cpu  node cpu  gen cpu
    gateway 100/s                    100     2.7     6.0     1.33      0.41     0.56
    gateway 500/s                    500     2.4     9.3     1.13      0.36     0.41
    gateway 500/s prove=true         500     2.7    11.2     1.17      0.58     0.41
    gateway saturating             1,207    12.4    42.2     0.77      0.25     0.17
    gateway saturating prove=true    967    15.9    34.6     0.88      0.44     0.19
    POST /v1/txs wait=check          745    19.4    55.4     0.87      0.90     0.26
    node RPC 500/s                   499     1.4     3.3     0.01      0.34     0.52
    node RPC saturating            2,710     5.1    17.7     0.00      0.33     0.22
    ratio gateway/direct saturating reads/s: 0.45

The bar (p99 < 50 ms at 500 reads/s) is met at both sizes, proven or not. State size does not
matter (one point read, a logarithmic proof); prove=true costs the node +0.2 ms per read. The
gateway costs about twice the node's CPU per read (its node call, uvicorn, routing, validation).

How it got there (same machine, gateway CPU per read; before: 200-290 reads/s, p99 of seconds
at 500/s as the queue grew): the first version spent ~3 ms per read, ~1.3 ms of it in the httpx
call to the node and the rest in uvicorn's pure-Python HTTP parser, Starlette's
BaseHTTPMiddleware and FastAPI. Then: httpcore's repeated failed import of sniffio avoided
(3.6 -> 3.0 ms; moot once httpx left the hot paths); uvicorn on httptools and uvloop
(-> 2.5 ms); the node call through aiohttp with kept-alive connections and the solo RPC on
HTTP/1.1 with TCP_NODELAY, and the limit and latency middleware as plain ASGI (-> 0.8-1.3 ms).
The load generator moved from httpx to aiohttp too (1.3-1.7 -> 0.2-0.6 ms per request), so it
no longer takes a core from the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import pstats
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx

from citychain.core import codec
from citychain.core.crypto import address_from_pubkey
from citychain.testing.chain import CHAIN_ID, filler_pubkey, named_key, transfer

FUNDED = 2_000
BLOCK_INTERVAL = 0.05


# ------------------------------------------------------------------------------ node process
def serve_node(accounts: int, directory: str, conn: multiprocessing.connection.Connection) -> None:
    """Child process: build the state, start the solo node and its RPC, serve until told."""
    from citychain.consensus.solo.blockstore import BlockStore
    from citychain.consensus.solo.node import SoloNode
    from citychain.consensus.solo.rpc import RpcServer
    from citychain.node.assemble import build_app
    from citychain.store import SqliteStore
    from citychain.testing.chain import Cast, make_genesis

    funded = [named_key(f"bench-funded-{i}") for i in range(FUNDED)]
    cast = Cast.make(citizens=0, devices=0, prefix="bench-")
    filler = max(0, accounts - len(funded) - len(cast.accounts()))
    genesis = make_genesis(cast, extra_funded=funded, extra_balance=10**12,
                           filler_accounts=filler, filler_balance=1)
    store = SqliteStore(str(Path(directory) / "state.db"))
    blocks = BlockStore(Path(directory) / "blocks.db")
    node = SoloNode(build_app(store), blocks, cast.node, genesis, block_interval=BLOCK_INTERVAL,
                    max_block_txs=5000, mempool_size=1_000_000)
    node.handshake()
    node.produce_block()  # commits genesis with an empty block 1: proofs have a header
    node.start()
    server = RpcServer(node, "127.0.0.1", 0)
    server.start()
    try:
        conn.send((server.url, filler))
        conn.recv()  # any message (or the parent's exit) stops the node
    except EOFError:
        pass
    finally:
        server.stop()
        node.stop()
        blocks.close()
        store.close()


# ------------------------------------------------------------------------------ measuring
@dataclass
class Figures:
    name: str
    sent: int
    ok: int
    seconds: float
    latencies: list[float]
    cpu_ms: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """CPU per request (ms) of the gateway, the node and this load generator."""

    @property
    def per_s(self) -> float:
        return self.ok / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    def row(self) -> str:
        failed = f"  ({self.sent - self.ok} failed)" if self.sent != self.ok else ""
        gateway, node, client = self.cpu_ms
        return (f"  {self.name:<34}{self.per_s:>9,.0f}{self.percentile(0.5):>9.1f}"
                f"{self.percentile(0.99):>9.1f}{gateway:>9.2f}{node:>9.2f}{client:>9.2f}{failed}")


Request = Callable[[aiohttp.ClientSession, int], Awaitable[bool]]


ERRORS: dict[str, int] = {}


async def attempt(request: Request, client: aiohttp.ClientSession, index: int) -> bool:
    """One request; a transport error counts as a failed request (and is tallied by type)."""
    for retry in (True, False):
        try:
            return await request(client, index)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            # a keep-alive connection the server closed as it was reused: resend once
            ERRORS[type(exc).__name__] = ERRORS.get(type(exc).__name__, 0) + 1
            if not retry:
                return False
        except (aiohttp.ClientError, TimeoutError) as exc:
            ERRORS[type(exc).__name__] = ERRORS.get(type(exc).__name__, 0) + 1
            return False
    return False


async def paced(name: str, client: aiohttp.ClientSession, request: Request, rate: float,
                seconds: float, concurrency: int) -> Figures:
    """Request i is due at start + i/rate; its latency runs from that moment to the answer."""
    total = int(rate * seconds)
    slots = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    ok = 0

    async def one(index: int, due: float) -> None:
        nonlocal ok
        async with slots:
            good = await attempt(request, client, index)
        latencies.append(time.perf_counter() - due)
        ok += good

    started = time.perf_counter()
    tasks = []
    for index in range(total):
        due = started + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    return Figures(name, total, ok, time.perf_counter() - started, latencies)


async def saturating(name: str, client: aiohttp.ClientSession, request: Request, seconds: float,
                     concurrency: int, limit: int | None = None) -> Figures:
    """``concurrency`` workers send back to back for ``seconds`` (or until ``limit`` sent)."""
    latencies: list[float] = []
    counter = iter(range(limit if limit is not None else 2**62))
    ok = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal ok
        for index in counter:
            if time.perf_counter() > deadline:
                return
            sent = time.perf_counter()
            good = await attempt(request, client, index)  # not `ok += await`: ok is read first
            ok += good
            latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Figures(name, len(latencies), ok, time.perf_counter() - started, latencies)


def balance_via_gateway(addresses: list[str], *, prove: bool) -> Request:
    async def request(client: aiohttp.ClientSession, index: int) -> bool:
        params = {"address": addresses[index % len(addresses)], "denom": "ucity"}
        if prove:
            params["prove"] = "true"
        async with client.get("/v1/query/bank/balance", params=params) as answer:
            await answer.read()
            return answer.status == 200
    return request


def balance_direct(node_url: str, addresses: list[str]) -> Request:
    datas = [codec.encode({"address": a, "denom": "ucity"}).hex() for a in addresses]

    async def request(client: aiohttp.ClientSession, index: int) -> bool:
        async with client.post(node_url, json={
                "jsonrpc": "2.0", "id": index, "method": "abci_query",
                "params": {"path": "/bank/balance", "data": datas[index % len(datas)],
                           "height": 0, "prove": False}}) as answer:
            body = await answer.json()
            return answer.status == 200 and body["result"]["response"]["code"] == 0
    return request


def submit_via_gateway(bodies: list[dict[str, str]]) -> Request:
    async def request(client: aiohttp.ClientSession, index: int) -> bool:
        async with client.post("/v1/txs", json=bodies[index]) as answer:
            await answer.read()
            return answer.status == 200
    return request


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def with_cpu(pids: tuple[int, int], phase: Awaitable[Figures]) -> Figures:
    """Run ``phase`` and attach the CPU per request of the gateway, node and this process."""
    before = (cpu_seconds(pids[0]), cpu_seconds(pids[1]), time.process_time())
    figures = await phase
    after = (cpu_seconds(pids[0]), cpu_seconds(pids[1]), time.process_time())
    count = max(figures.sent, 1)
    gateway, node, client = ((a - b) / count * 1e3 for a, b in zip(after, before, strict=True))
    figures.cpu_ms = (gateway, node, client)
    return figures


# ------------------------------------------------------------------------------ one size
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gateway(node_url: str, profile: Path | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    prefix = [sys.executable]
    if profile is not None:
        prefix += ["-m", "cProfile", "-o", str(profile)]
    command = [*prefix, "-m", "citychain.cli", "api", "--node", node_url, "--port", str(port),
               "--rate-limit", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYCHAIN_")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the gateway did not answer /healthz within 30 s")


def stop_gateway(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # uvicorn stops cleanly; cProfile writes its file
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def measure(api_url: str, node_url: str, addresses: list[str], txs: list[bytes],
                  pids: tuple[int, int], args: argparse.Namespace) -> list[Figures]:
    def session(base_url: str | None = None) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(base_url=base_url,
                                     connector=aiohttp.TCPConnector(limit=args.concurrency),
                                     timeout=aiohttp.ClientTimeout(total=60))

    rate, light, seconds, most = args.rate, args.light_rate, args.seconds, args.concurrency
    results = []
    async with session(api_url) as client:
        unproven = balance_via_gateway(addresses, prove=False)
        proven = balance_via_gateway(addresses, prove=True)
        await saturating("warm-up", client, unproven, 1.0, 8)
        await saturating("warm-up", client, proven, 1.0, 8)
        for phase in (
            paced(f"gateway {light:g}/s", client, unproven, light, seconds, most),
            paced(f"gateway {rate:g}/s", client, unproven, rate, seconds, most),
            paced(f"gateway {rate:g}/s prove=true", client, proven, rate, seconds, most),
            saturating("gateway saturating", client, unproven, seconds, most),
            saturating("gateway saturating prove=true", client, proven, seconds, most),
        ):
            results.append(await with_cpu(pids, phase))
        bodies = [{"tx": base64.b64encode(raw).decode(), "wait": "check"} for raw in txs]
        results.append(await with_cpu(pids, saturating(
            "gateway POST /v1/txs wait=check", client, submit_via_gateway(bodies), 600, most,
            limit=len(bodies))))
    async with session() as client:
        direct = balance_direct(node_url, addresses)
        await saturating("warm-up", client, direct, 1.0, 8)
        results.append(await with_cpu(pids, paced(f"node RPC {rate:g}/s", client, direct, rate,
                                                  seconds, most)))
        results.append(await with_cpu(pids, saturating("node RPC saturating", client, direct,
                                                       seconds, most)))
    return results


def run_size(accounts: int, args: argparse.Namespace) -> list[Figures]:
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="citychain-api-bench-") as directory:
        parent, child = context.Pipe()
        node = context.Process(target=serve_node, args=(accounts, directory, child), daemon=True)
        print(f"  state of {accounts:,} accounts: building ...", flush=True)
        started = time.perf_counter()
        node.start()
        gateway: subprocess.Popen[bytes] | None = None
        try:
            if not parent.poll(1800):
                raise RuntimeError("the node did not start")
            node_url, filler = parent.recv()
            print(f"  node up in {time.perf_counter() - started:.0f} s at {node_url}",
                  flush=True)
            profile = None
            if args.profile_gateway:
                profile = Path(args.profile_gateway) / f"gateway-{accounts}.prof"
            gateway, api_url = start_gateway(node_url, profile)
            rng = random.Random(accounts)
            addresses = [address_from_pubkey(filler_pubkey(rng.randrange(filler)))
                         for _ in range(5000)]
            funded = [named_key(f"bench-funded-{i}") for i in range(FUNDED)]
            txs = [transfer(funded[i % FUNDED], CHAIN_ID, i // FUNDED,
                            funded[(i + 1) % FUNDED], 1) for i in range(args.txs)]
            pids = (gateway.pid, node.pid or 0)
            results = asyncio.run(measure(api_url, node_url, addresses, txs, pids, args))
        finally:
            if gateway is not None:
                stop_gateway(gateway)
            with contextlib.suppress(OSError):
                parent.send("stop")
            node.join(timeout=60)
            if node.is_alive():
                node.kill()
    if args.profile_gateway and profile is not None and profile.exists():
        print(f"\n  gateway cProfile ({accounts:,} accounts), by cumulative time:")
        pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(30)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="10000,200000",
                        help="comma-separated state sizes in accounts")
    parser.add_argument("--rate", type=float, default=500.0, help="paced reads per second")
    parser.add_argument("--light-rate", type=float, default=100.0,
                        help="a second, light paced rate (latency without queueing)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="requests in flight at most (and client connections)")
    parser.add_argument("--txs", type=int, default=3000, help="transfers to submit")
    parser.add_argument("--profile-gateway", metavar="DIR",
                        help="run the gateway under cProfile, write its profile into DIR")
    args = parser.parse_args(argv)
    print(f"gateway load: {args.rate:g} reads/s paced for {args.seconds:g} s, "
          f"{args.concurrency} in flight at most, {args.txs:,} txs "
          f"(python {sys.version.split()[0]}, {os.cpu_count()} cores)", flush=True)
    table: dict[int, list[Figures]] = {}
    sizes = [int(size) for size in args.sizes.split(",")]
    if min(sizes) < FUNDED + 100:
        parser.error(f"--sizes: each size must be at least {FUNDED + 100:,} accounts "
                     f"({FUNDED:,} funded senders plus accounts to read)")
    for size in sizes:
        table[size] = run_size(size, args)
    print("\n== summary ==")
    if ERRORS:
        print(f"  transport errors: {ERRORS}")
    ok = True
    for size, results in table.items():
        print(f"\n  state of {size:,} accounts{'':<10}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'gw cpu':>9}{'node cpu':>9}{'gen cpu':>9}  (cpu: ms per request)")
        for figures in results:
            print(figures.row())
        by_name = {f.name: f for f in results}
        gateway, direct = by_name["gateway saturating"], by_name["node RPC saturating"]
        print(f"  ratio gateway/direct saturating reads/s: {gateway.per_s / direct.per_s:.2f}; "
              f"p50 at {args.rate:g}/s: "
              f"{by_name[f'gateway {args.rate:g}/s'].percentile(0.5):.1f} ms vs "
              f"{by_name[f'node RPC {args.rate:g}/s'].percentile(0.5):.1f} ms")
        for name in (f"gateway {args.rate:g}/s", f"gateway {args.rate:g}/s prove=true"):
            figures = by_name[name]
            met = figures.percentile(0.99) < 50 and figures.ok == figures.sent
            ok = ok and met
            print(f"  bar p99 < 50 ms at {args.rate:g}/s, {name}: "
                  f"{'met' if met else 'MISSED'} ({figures.percentile(0.99):.1f} ms, "
                  f"{statistics.fmean(figures.latencies) * 1e3:.1f} ms mean)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
