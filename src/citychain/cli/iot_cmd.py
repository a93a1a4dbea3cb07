"""`citychain iot`: run the IoT gateway (MQTT -> store -> anchors) and verify stored readings."""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, overload

import typer

from citychain.cli.chain import Session
from citychain.cli.common import (
    GenesisOption,
    HomeOption,
    JsonOption,
    NodeOption,
    echo,
    keyring_of,
    parse_hex,
    print_json,
    resolve_home,
    resolve_node_url,
)
from citychain.cli.errors import (
    CliError,
    NodeUnreachable,
    UsageFailure,
    VerificationFailed,
    format_chain_error,
)
from citychain.client.rpc import RpcError
from citychain.iot.chain import ChainLink
from citychain.iot.feeds import (
    FeedError,
    FeedNode,
    FeedPublishError,
    FeedRecomputeError,
    compute_feed_value,
    publish_feed_value,
    recompute_feed_value,
)
from citychain.iot.gateway import Gateway, GatewayConfig
from citychain.iot.ngsi import NgsiServer, NodeDirectory, create_ngsi_app
from citychain.iot.ngsi_subscriptions import (
    SubscriptionNotifier,
    SubscriptionStore,
    mount_subscriptions,
)
from citychain.iot.sigverify import VERIFIERS, VerifierError
from citychain.iot.store import (
    ReadingStore,
    ReadingStoreError,
    ReadOnlyReadingStore,
    is_postgres_location,
    open_reading_store,
)
from citychain.iot.verify import (
    CometbftProver,
    Prover,
    ReadingVerificationError,
    RpcProver,
    verify_reading,
)

app = typer.Typer(help="The IoT pipeline: MQTT gateway, off-chain reading store, anchors.",
                  no_args_is_help=True)

DEFAULTS = GatewayConfig()
StoreOption = Annotated[str | None, typer.Option(
    "--store", metavar="FILE|URL", show_default=False,
    help="The gateway's reading store: a SQLite file (default: HOME/iot/readings.db) or a "
         "PostgreSQL database, postgresql://USER[:PASSWORD]@HOST:PORT/DBNAME.")]


def store_location(home: Path | None, store: str | None) -> Path | str:
    """The --store value: a PostgreSQL URL as given, else a SQLite file path."""
    if store is not None and is_postgres_location(store):
        return store
    return Path(store) if store else resolve_home(home).root / "iot" / "readings.db"


@overload
def open_store(home: Path | None, store: str | None, *, read_only: Literal[True]
               ) -> ReadOnlyReadingStore: ...


@overload
def open_store(home: Path | None, store: str | None, *, read_only: bool) -> ReadingStore: ...


def open_store(home: Path | None, store: str | None, *, read_only: bool) -> ReadingStore:
    """The reading store --store names (a reader needs an existing one).

    Raises:
        UsageFailure: no reading store there, or its PostgreSQL server cannot be reached.
    """
    location = store_location(home, store)
    if read_only and isinstance(location, Path) and not location.exists():
        raise UsageFailure(f"no reading store at {location}")
    try:
        return open_reading_store(location, read_only=read_only)
    except ReadingStoreError as exc:
        raise UsageFailure(str(exc)) from None


def parse_broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageFailure(f"--broker {text!r} must be HOST:PORT")
    return host, int(port)


@app.command("gateway")
def gateway(
    key: Annotated[str, typer.Option(
        "--key", show_default=False,
        help="Keyring key of the gateway's own device (type Gateway, owned by an operator): "
             "it signs the anchors.")],
    broker: Annotated[str, typer.Option("--broker", help="MQTT broker HOST:PORT.")
                      ] = "127.0.0.1:1883",
    home: HomeOption = None,
    node: NodeOption = None,
    store: StoreOption = None,
    batch_seconds: Annotated[float, typer.Option(
        "--batch-seconds", min=0.05, help="Seal a batch when its oldest reading waited this "
                                          "long.")] = DEFAULTS.batch_seconds,
    batch_readings: Annotated[int, typer.Option(
        "--batch-readings", min=1, help="...or when this many readings wait (also the most "
                                        "readings per batch).")] = DEFAULTS.batch_readings,
    device_ttl: Annotated[float, typer.Option(
        "--device-ttl", min=0, help="Seconds a device's key and status are cached at most (a "
                                    "safety net: the chain's events invalidate them within "
                                    "about a block).")] = DEFAULTS.device_ttl,
    window_past_ms: Annotated[int, typer.Option(
        "--window-past-ms", min=0, help="Refuse readings older than this against our clock.")
    ] = DEFAULTS.window_past_ms,
    window_future_ms: Annotated[int, typer.Option(
        "--window-future-ms", min=0, help="Refuse readings this far ahead of our clock.")
    ] = DEFAULTS.window_future_ms,
    stats_seconds: Annotated[float, typer.Option(
        "--stats-seconds", min=0.1, help="Period of the stats line on stderr.")
    ] = DEFAULTS.stats_seconds,
    preload_devices: Annotated[bool, typer.Option(
        "--preload-devices/--no-preload-devices",
        help="At start, read every device of the operator in pages (/oracle/device_records) "
             "instead of one query per device on its first reading.")
    ] = DEFAULTS.preload_devices,
    anchor_window: Annotated[int, typer.Option(
        "--anchor-window", min=1, help="Anchor txs sent at once, one batch each, so that "
                                       "several batches share a block.")
    ] = DEFAULTS.anchor_window,
    verifier: Annotated[str, typer.Option(
        "--verifier", metavar="auto|go|python",
        help="Who checks the readings' signatures beside the ingest thread: go "
             "(citychain-sigverify, built by scripts/install_sigverify.sh), python (PyNaCl "
             "processes), or auto (go when it is built).")] = DEFAULTS.verifier,
    verify_processes: Annotated[int, typer.Option(
        "--verify-processes", min=0, help="Verifier processes (Go: goroutines); 0 checks each "
                                          "signature in the ingest thread.")
    ] = DEFAULTS.verify_processes,
    chunk: Annotated[int, typer.Option(
        "--chunk", min=1, help="Readings committed in one store transaction and acked together, "
                               "at most (fewer when fewer wait). The broker must allow twice "
                               "as many QoS 1 messages in flight to the gateway "
                               "(Mosquitto: max_inflight_messages).")
    ] = DEFAULTS.chunk,
) -> None:
    """Subscribe to city/<device>/<stream> (QoS 1), check each signed reading, store accepted
    ones durably before acking them, seal batches and anchor their Merkle roots on chain.

    Prints "iot gateway ready" once subscribed; stops on SIGINT/SIGTERM.
    """
    host, port = parse_broker(broker)
    if verifier not in VERIFIERS:
        raise UsageFailure(f"--verifier must be one of {', '.join(VERIFIERS)}, got {verifier!r}")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per node call otherwise
    device_key = keyring_of(home).load(key)
    config = GatewayConfig(broker_host=host, broker_port=port, batch_seconds=batch_seconds,
                           batch_readings=batch_readings, device_ttl=device_ttl,
                           window_past_ms=window_past_ms, window_future_ms=window_future_ms,
                           stats_seconds=stats_seconds, preload_devices=preload_devices,
                           anchor_window=anchor_window, verifier=verifier,
                           verify_processes=verify_processes, chunk=chunk)
    reading_store = open_store(home, store, read_only=False)
    chain = ChainLink(resolve_node_url(node, home), device_key)
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        try:
            service = Gateway(config, reading_store, chain).start()
        except (RpcError, OSError) as exc:
            raise NodeUnreachable(f"cannot start the gateway: {exc}") from None
        except VerifierError as exc:
            raise CliError(f"cannot start the gateway: {exc}") from None
        # What start() built (imports, the preloaded device records) lives as long as the
        # process: keep it out of the garbage collector's full passes, which the ingest
        # thread's allocations trigger.
        gc.freeze()
        try:
            if not service.ready.wait(timeout=30):
                raise CliError(f"no subscription acknowledged by the broker at {broker}")
            echo(f"iot gateway ready: {device_key.did} on {broker}, "
                 f"store {reading_store.location}")
            sys.stdout.flush()
            while not stopping.wait(0.5):
                if service.errors:
                    raise CliError(f"gateway stopped: {service.errors[0]}")
        finally:
            service.stop()
            echo(service.stats_line())
    finally:
        reading_store.close()
        chain.close()


@app.command("verify")
def verify(
    reading_id: Annotated[str, typer.Argument(help="The reading id (64 hex).")],
    home: HomeOption = None,
    node: NodeOption = None,
    store: StoreOption = None,
    genesis: GenesisOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check a stored reading end to end: content hashes to its id, Merkle inclusion in its
    batch, the batch root anchored on chain (proven against a header signed by validators
    trusted from the genesis), device listed and time in range, signature by the device's key
    on chain when the batch was anchored (proven, so later rotations do not matter). Works
    against the solo node (a header signed by a genesis validator) and a CometBFT node
    (header H+1 committed by more than 2/3 of the voting power of validators
    followed from the network's genesis: --home a testnet node directory, or --genesis its
    CometBFT genesis.json). Exit code 4 if anything does not match or the node cannot prove it.
    """
    wanted = parse_hex(reading_id, "READING_ID")
    with _proving(home, node, store, genesis) as (reading_store, prover, trusted):
        try:
            proof = verify_reading(reading_store, wanted, prover)
        except ReadingVerificationError as exc:
            raise VerificationFailed(f"reading NOT verified: {exc}") from None
    if json_output:
        print_json(proof.to_value())
        return
    reading = proof.reading
    echo(f"reading {proof.reading_id.hex()}: {reading.device} {reading.stream} seq "
         f"{reading.seq} ts_ms {reading.ts_ms} value {reading.value}")
    echo(f"leaf {proof.index} of {len(proof.batch.leaves)} in batch "
         f"{proof.batch.batch_id.hex()} (root {proof.batch.merkle_root.hex()})")
    echo(f"verified: anchored at height {proof.anchor['height']}, proven at height "
         f"{proof.height} against validators of {trusted}; signed by the device's key")


@app.command("ngsi")
def ngsi(
    home: HomeOption = None,
    node: NodeOption = None,
    store: StoreOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")
                    ] = 1026,
    subscriptions: Annotated[Path | None, typer.Option(
        "--subscriptions", metavar="FILE", show_default=False,
        help="SQLite file of the server's NGSI-LD subscriptions (default: "
             "ngsi-subscriptions.db beside a SQLite reading store, "
             "HOME/iot/ngsi-subscriptions.db with a PostgreSQL one).")] = None,
    notify_seconds: Annotated[float, typer.Option(
        "--notify-seconds", min=0.05, help="How often the notifier looks for newly anchored "
                                           "batches.")] = 1.0,
) -> None:
    """Serve the NGSI-LD API (/ngsi-ld/v1/entities, /temporal/entities, /notifications,
    /subscriptions) over the reading store (opened read-only) and --node (device records,
    anchors), and push subscriptions' notifications of anchored batches (docs/iot.md).

    Prints "iot ngsi ready" once listening; stops on SIGINT/SIGTERM (docs/adr/0009-ngsi-ld.md).
    """
    location = store_location(home, store)
    beside = (location.parent if isinstance(location, Path) else
              resolve_home(home).root / "iot")
    reading_store = open_store(home, store, read_only=True)
    directory = NodeDirectory(resolve_node_url(node, home))
    subscription_store = SubscriptionStore(subscriptions or beside / "ngsi-subscriptions.db")
    notifier = SubscriptionNotifier(reading_store, directory, subscription_store,
                                    poll_seconds=notify_seconds)
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        ngsi_app = create_ngsi_app(reading_store, directory)
        mount_subscriptions(ngsi_app, reading_store, subscription_store, notifier)
        server = NgsiServer(ngsi_app, host=host, port=port)
        try:
            server.start()
        except RuntimeError as exc:
            raise CliError(str(exc)) from None
        notifier.start()
        echo(f"iot ngsi ready: {server.url}/ngsi-ld/v1/entities, "
             f"store {reading_store.location}, "
             f"subscriptions {subscription_store.path}")
        sys.stdout.flush()
        try:
            server.wait(stopping)
        finally:
            server.stop()
            notifier.stop()
    finally:
        directory.close()
        subscription_store.close()
        reading_store.close()


feed_app = typer.Typer(help="Oracle feed values computed from anchored batches: publish, verify "
                            "(docs/iot.md).", no_args_is_help=True)
app.add_typer(feed_app, name="feed")


@feed_app.command("publish")
def feed_publish(
    feed_id: Annotated[str, typer.Argument(help="The declared feed (its description holds the "
                                                "feed/v1 recipe).")],
    key: Annotated[str, typer.Option("--from", show_default=False,
                                     help="Keyring key of the feed's publisher (an operator).")],
    window_start_ms: Annotated[int, typer.Option("--window-start-ms", min=0,
                                                 show_default=False)],
    window_end_ms: Annotated[int | None, typer.Option(
        "--window-end-ms", min=1, show_default=False,
        help="End of the half-open window (default: now).")] = None,
    home: HomeOption = None,
    node: NodeOption = None,
    store: StoreOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute and print, send nothing.")
                       ] = False,
    json_output: JsonOption = False,
) -> None:
    """Compute the feed's value over [start, end) from the store's anchored batches and publish
    it with MsgPublishFeedValue, naming the batches its readings lie in."""
    end = window_end_ms if window_end_ms is not None else time.time_ns() // 1_000_000
    if end <= window_start_ms:
        raise UsageFailure("--window-end-ms must be after --window-start-ms")
    reading_store = open_store(home, store, read_only=True)
    feed_node = FeedNode(resolve_node_url(node, home), keyring_of(home).load(key))
    try:
        feed = feed_node.feed(feed_id)
        computed = compute_feed_value(reading_store, feed, window_start_ms, end,
                                      feed_node.device, max_sources=feed_node.max_sources())
        height, tx_hash = (0, "") if dry_run else publish_feed_value(feed_node, computed)
    except FeedPublishError as exc:
        raise CliError(format_chain_error(exc.codespace, exc.code, exc.log)) from None
    except FeedError as exc:
        raise CliError(f"feed {feed_id}: {exc}") from None
    except RpcError as exc:
        raise NodeUnreachable(str(exc)) from None
    finally:
        reading_store.close()
        feed_node.close()
    if json_output:
        print_json({"feed_id": feed_id, "window_start_ms": window_start_ms, "window_end_ms": end,
                    "value": computed.value, "source_batch_ids": list(computed.source_batch_ids),
                    "samples": computed.sample_count, "readings": computed.reading_count,
                    "height": height, "hash": tx_hash, "published": not dry_run})
        return
    echo(f"feed {feed_id} [{window_start_ms}, {end}): value {computed.value} "
         f"(scale {feed.scale} {feed.unit}) from {computed.sample_count} samples of "
         f"{computed.reading_count} readings in {len(computed.source_batch_ids)} batches")
    echo("dry run: not published" if dry_run else f"published at height {height}, tx {tx_hash}")


@feed_app.command("verify")
def feed_verify(
    feed_id: Annotated[str, typer.Argument(help="The feed whose value to recompute.")],
    window_end_ms: Annotated[int | None, typer.Option(
        "--window-end-ms", min=1, show_default=False,
        help="The value ending there (default: the latest).")] = None,
    home: HomeOption = None,
    node: NodeOption = None,
    store: StoreOption = None,
    genesis: GenesisOption = None,
    json_output: JsonOption = False,
) -> None:
    """Recompute a published feed value from the readings of the batches it names: every chain
    read proven against validators trusted from the genesis, each batch's leaves hashed to its
    anchored root, each reading to its leaf and signed by its device. Exit code 4 if it does
    not recompute."""
    proving = _proving(home, node, store, genesis)
    with proving as (reading_store, prover, trusted):
        try:
            verified = recompute_feed_value(reading_store, prover, feed_id, window_end_ms)
        except (FeedRecomputeError, ReadingVerificationError) as exc:
            raise VerificationFailed(f"feed value NOT verified ({type(exc).__name__}): {exc}"
                                     ) from None
        except FeedError as exc:
            raise CliError(f"feed {feed_id}: {exc}") from None
    if json_output:
        print_json(verified.to_value())
        return
    c = verified.computation
    echo(f"feed {feed_id} [{c.window_start_ms}, {c.window_end_ms}): value {c.value} recomputed "
         f"from {c.sample_count} samples of {c.reading_count} readings in "
         f"{len(c.source_batch_ids)} batches")
    echo(f"verified: proven at height {verified.height} against validators of {trusted}; every "
         "reading in its anchored root and signed by its device")


@contextmanager
def _proving(home: Path | None, node: str | None, store: str | None, genesis: Path | None
             ) -> Iterator[tuple[ReadOnlyReadingStore, Prover, str]]:
    """The reading store (read-only), a prover and the genesis it trusts, closed afterwards.
    The prover is chosen by the node as ``query --prove`` does: a CometBFT node gets a
    :class:`CometbftProver` trusting the network's CometBFT genesis (--genesis FILE, else
    HOME/cometbft/config/genesis.json of a testnet node directory), the solo node an
    :class:`RpcProver` trusting a citychain genesis.json (--genesis FILE, else the home's). A
    node that cannot be asked becomes NodeUnreachable (exit 3).

    Raises:
        UsageFailure: no reading store (or its server cannot be reached), or no genesis
            to trust.
        CliError: the CometBFT genesis has no chain id or validators.
    """
    reading_store = open_store(home, store, read_only=True)
    try:
        with Session(home, node, genesis) as session:
            prover: RpcProver | CometbftProver
            try:
                if session.is_cometbft:
                    network, trusted = session.network(trust_node=False)
                    prover = CometbftProver(network)
                else:
                    trusted_path = genesis or resolve_home(home).genesis_path
                    if not trusted_path.exists():
                        raise UsageFailure(f"no genesis to trust at {trusted_path}; pass "
                                           "--genesis FILE")
                    prover, trusted = (RpcProver(session.client.url, trusted_path),
                                       str(trusted_path))
            except RpcError as exc:
                raise NodeUnreachable(str(exc)) from None
            try:
                yield reading_store, prover, trusted
            except RpcError as exc:
                raise NodeUnreachable(str(exc)) from None
            finally:
                prover.close()
    finally:
        reading_store.close()
