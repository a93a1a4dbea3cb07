"""The IoT city of `citychain demo`: its own Mosquitto, the gateway as a child process, the
simulator publishing to the broker, and feed values published every few seconds and
recomputed from their batches when the demo stops (docs/iot.md)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from citychain.client.rpc import RpcError
from citychain.core.crypto import PrivateKey
from citychain.iot.broker import Broker
from citychain.iot.contract_demo import StreetLightingContract
from citychain.iot.feeds import (
    EmptyWindowError,
    FeedError,
    FeedNode,
    compute_feed_value,
    parse_recipe,
    publish_feed_value,
    recompute_feed_value,
)
from citychain.iot.reading import Reading
from citychain.iot.simulator import MqttSink, Simulation, make_devices, register_devices
from citychain.iot.simulator import run_simulation as run_devices
from citychain.iot.store import ReadOnlyReadingStore
from citychain.iot.verify import RpcProver
from citychain.modules.oracle.messages import MsgRegisterDevice

GATEWAY_DISTRICT = "centre"
SIMULATION_SECONDS = 10 * 365 * 86_400.0  # "until stopped"
SETTLE_SECONDS = 5.0  # at stop: how long to wait for the last readings to be anchored


@dataclass(frozen=True)
class DemoFeed:
    """A feed the demo declares and publishes (recipes from docs/iot.md)."""

    feed_id: str
    recipe: str
    aggregation: str
    unit: str
    scale: int
    coverage: str
    text: str

    def show(self, value: int) -> str:
        shown = str(value) if self.scale == 0 else f"{value / 10**self.scale:.{self.scale}f}"
        return f"{shown} {self.text}"


DEMO_FEEDS = (
    DemoFeed("lights-centre", "feed/v1 stream=status type=StreetLight sample=last where=eq:1",
             "count", "C62", 0, "centre", "working street lights in the centre"),
    DemoFeed("pm25-centre", "feed/v1 stream=pm25 type=AirQualityObserved", "mean", "GQ", 1,
             "centre", "µg/m³ mean PM2.5 in the centre"),
)


@dataclass
class IotStats:
    """What the live view shows of the IoT part (written by the demo's IoT thread)."""

    phase: str = "starting"
    published: int = 0
    accepted: int = 0
    rejected: int = 0
    batches_anchored: int = 0
    readings_anchored: int = 0
    sample_reading: str = ""
    feed_values: dict[str, str] = field(default_factory=dict)
    feed_problem: str = ""


class IotDemo:
    """Broker, gateway (``citychain iot gateway`` child process), simulator and feed publisher
    of one demo home; the chain's node (with its RPC at ``rpc_url``) runs elsewhere."""

    def __init__(self, root: Path, rpc_url: str, *, operator: PrivateKey,
                 gateway: PrivateKey, gateway_key_name: str, devices: int = 100,
                 speed: float = 600.0, seed: int = 1, feed_seconds: float = 10.0,
                 batch_seconds: float = 1.0) -> None:
        self.root = root
        self.directory = root / "iot"
        self.rpc_url = rpc_url
        self.operator = operator
        self.gateway = gateway
        self.gateway_key_name = gateway_key_name
        self.fleet = make_devices(devices, seed)
        self.speed = speed
        self.seed = seed
        self.feed_seconds = feed_seconds
        self.batch_seconds = batch_seconds
        self.stats = IotStats()
        self.broker = Broker(self.directory / "mosquitto")
        self.published: list[tuple[str, int]] = []  # (feed id, window end) of each value sent
        self.error: BaseException | None = None
        self._gateway: subprocess.Popen[bytes] | None = None
        self._stop_devices = threading.Event()
        self._stop_feeds = threading.Event()
        self._devices_thread: threading.Thread | None = None
        self._feeds_thread: threading.Thread | None = None
        self._window_start: dict[str, int] = {}
        self._feed_node: FeedNode | None = None
        self.contract: StreetLightingContract | None = None  # attached by the demo command
        self._store: ReadOnlyReadingStore | None = None

    @property
    def store_path(self) -> Path:
        return self.directory / "readings.db"

    def start(self, timeout: float = 30.0) -> IotDemo:
        """Start the broker, register the gateway's device, start the gateway, declare the
        feeds and register the simulated devices, then start publishing readings and feeds.

        Raises:
            RuntimeError: the broker or the gateway did not start.
            FeedError: the chain refused a registration or a feed declaration.
            RpcError: the node could not be reached.
        """
        self.broker.start()
        node = self._feed_node = FeedNode(self.rpc_url, self.operator)
        self.stats.phase = "registering the gateway"
        if node.device(self.gateway.did) is None:
            node.send(MsgRegisterDevice(self.gateway.did, "Gateway", GATEWAY_DISTRICT, (), False,
                                        0, 0))
        self._start_gateway()
        self.stats.phase = f"registering {len(self.fleet)} devices"
        for feed in DEMO_FEEDS:
            node.declare_feed(feed.feed_id, parse_recipe(feed.recipe),
                              aggregation=feed.aggregation, unit=feed.unit, scale=feed.scale,
                              coverage=(feed.coverage,), text=feed.text)
        register_devices(node.client, self.operator, node.chain_id, self.fleet)
        self._wait_for_gateway(timeout)
        self._store = ReadOnlyReadingStore(self.store_path)
        sink = MqttSink(self.broker.host, self.broker.port)
        start_ms = time.time_ns() // 1_000_000
        self._window_start = {feed.feed_id: start_ms for feed in DEMO_FEEDS}
        simulation = Simulation(self.fleet, chain_id=node.chain_id, seed=self.seed,
                                start_ms=start_ms, speed=self.speed)
        self._devices_thread = threading.Thread(target=self._run_devices,
                                                args=(simulation, sink), name="demo-devices",
                                                daemon=True)
        self._feeds_thread = threading.Thread(target=self._run_feeds, name="demo-feeds",
                                              daemon=True)
        self.stats.phase = f"{len(self.fleet)} devices publishing at {self.speed:g}x"
        self._devices_thread.start()
        self._feeds_thread.start()
        return self

    def _start_gateway(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "gateway.out").open("wb") as out, \
                (self.directory / "gateway.log").open("wb") as err:
            self._gateway = subprocess.Popen(
                [sys.executable, "-m", "citychain.cli", "iot", "gateway",
                 "--key", self.gateway_key_name, "--home", str(self.root),
                 "--node", self.rpc_url, "--broker", self.broker.address,
                 "--store", str(self.store_path), "--batch-seconds", f"{self.batch_seconds}",
                 "--stats-seconds", "60"],
                # Its own session: a Ctrl-C in the terminal stops the demo, which then lets
                # the gateway anchor its last readings before stopping it.
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait_for_gateway(self, timeout: float) -> None:
        out = self.directory / "gateway.out"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._gateway is None or self._gateway.poll() is not None:
                raise RuntimeError(f"the IoT gateway exited: {self.gateway_log()}")
            if b"iot gateway ready" in out.read_bytes():
                return
            time.sleep(0.05)
        raise RuntimeError(f"the IoT gateway was not ready within {timeout:g} s: "
                           f"{self.gateway_log()}")

    def gateway_log(self) -> str:
        path = self.directory / "gateway.log"
        return path.read_text(errors="replace").strip()[-500:] if path.exists() else ""

    @property
    def failure(self) -> BaseException | None:
        """Why the IoT part cannot go on, if it can't."""
        if self.error is not None:
            return self.error
        if self._gateway is not None and self._gateway.poll() is not None:
            return RuntimeError(f"the IoT gateway exited: {self.gateway_log()}")
        return None

    def _run_devices(self, simulation: Simulation, sink: MqttSink) -> None:
        try:
            run_devices(simulation, self._count(sink), SIMULATION_SECONDS,
                        stop=self._stop_devices)
        except BaseException as exc:  # shown by the view
            self.error = exc
        finally:
            sink.close()

    def _count(self, sink: MqttSink) -> Callable[[Reading], None]:
        def publish(reading: Reading) -> None:
            sink.publish(reading)
            self.stats.published += 1
        return publish

    def _run_feeds(self) -> None:
        next_round = time.monotonic() + self.feed_seconds
        try:
            while not self._stop_feeds.wait(1.0):
                self.refresh()
                if time.monotonic() >= next_round:
                    next_round += self.feed_seconds
                    # Readings of the last second or two may not be anchored yet.
                    self.publish_feeds(time.time_ns() // 1_000_000
                                       - int(2000 * self.batch_seconds))
        except BaseException as exc:
            self.error = exc

    def refresh(self) -> None:
        """Read the gateway's store: readings accepted and refused, batches anchored."""
        if self._store is None:
            return
        counts = self._store.counts()
        batches, readings, sample = self._store.anchored_summary()
        self.stats.accepted = sum(v for k, v in counts.items() if k.startswith("readings_"))
        self.stats.rejected = sum(self._store.rejection_counts().values())
        self.stats.batches_anchored = batches
        self.stats.readings_anchored = readings
        if sample is not None:
            self.stats.sample_reading = sample.hex()
        if self.contract is not None:
            try:
                self.contract.refresh()
            except (FeedError, RpcError) as exc:
                self.stats.feed_problem = f"contract: {exc}"

    def publish_feeds(self, end_ms: int) -> None:
        """Compute each feed over [its last window end, ``end_ms``) from the anchored batches
        and publish it (a window without readings waits for the next round)."""
        if self._feed_node is None or self._store is None:
            return
        node = self._feed_node
        for feed in DEMO_FEEDS:
            start = self._window_start[feed.feed_id]
            if end_ms <= start:
                continue
            try:
                computed = compute_feed_value(self._store, node.feed(feed.feed_id), start,
                                              end_ms, node.device,
                                              max_sources=node.max_sources())
                publish_feed_value(node, computed)
            except EmptyWindowError:
                continue
            except FeedError as exc:
                self.stats.feed_problem = f"{feed.feed_id}: {exc}"
                continue
            self._window_start[feed.feed_id] = end_ms
            self.published.append((feed.feed_id, end_ms))
            self.stats.feed_values = {**self.stats.feed_values,
                                      feed.feed_id: feed.show(computed.value)}

    def stop(self) -> None:
        """Stop the simulator, let the gateway anchor what it holds and publish a last round of
        feed values, then stop the gateway and the broker. Safe to call twice."""
        self._stop_devices.set()
        if self._devices_thread is not None:
            self._devices_thread.join(30)
        self._stop_feeds.set()
        if self._feeds_thread is not None:
            self._feeds_thread.join(60)
        if self._feeds_thread is not None and self.failure is None and self._store is not None:
            self.stats.phase = "anchoring the last readings"
            deadline = time.monotonic() + SETTLE_SECONDS
            while time.monotonic() < deadline:
                counts = self._store.counts()
                if not counts.get("readings_accepted") and not counts.get("batches_sealed"):
                    break
                time.sleep(0.1)
            self.refresh()
            self.publish_feeds(time.time_ns() // 1_000_000)
        self._feeds_thread = self._devices_thread = None
        self._stop_gateway()
        self.broker.stop()
        if self._feed_node is not None:
            self._feed_node.close()
            self._feed_node = None
        self.stats.phase = "stopped"

    def _stop_gateway(self) -> None:
        process, self._gateway = self._gateway, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def verify_feeds(self, genesis: Path) -> int:
        """Recompute every published feed value from its batches (chain reads proven against
        the genesis validators); return how many.

        Raises:
            FeedRecomputeError, ReadingVerificationError: a value did not recompute.
            FeedError, RpcError: see recompute_feed_value.
        """
        store = self._store or ReadOnlyReadingStore(self.store_path)
        prover = RpcProver(self.rpc_url, genesis)
        try:
            for feed_id, end_ms in self.published:
                recompute_feed_value(store, prover, feed_id, end_ms)
        finally:
            prover.close()
        return len(self.published)

    def close(self) -> None:
        """Stop everything and close the store."""
        self.stop()
        if self._store is not None:
            self._store.close()
            self._store = None
        if self.contract is not None:
            self.contract.close()
            self.contract = None


__all__ = ["DEMO_FEEDS", "DemoFeed", "IotDemo", "IotStats"]
