"""The city simulator: N devices with plausible behaviour, signing readings in the gateway's wire
format and publishing them to MQTT (QoS 1).

Kinds (Smart Data Models types, one stream each, integers only on the wire):

- ``WasteContainer`` ``fillingLevel`` (percent 0..100): fills over the day, faster in the
  daytime, emptied by the collection rounds at 06:00 and 14:00 when at least 30 % full.
- ``AirQualityObserved`` ``pm25`` (µg/m³ 0..1000): a base level with a morning (08:00) and an
  evening (18:00) traffic peak, plus noise.
- ``StreetLight`` ``status`` (1 working, 0 failed): a working light fails with a small chance
  per hour; a crew repairs it 2 to 8 hours later.
- ``Vehicle`` (a bus; its district is its line) ``delay`` (seconds, -300..3600): one reading per
  departure along its route; the delay drifts, more in the rush hours, and resets at each
  terminus.

Time: device behaviour follows a **simulated clock** that runs ``speed`` times faster than real
time from ``sim_origin_ms`` (default 06:00 UTC of the start day); a reading is stamped with the
**real** time it is due, ``start_ms + simulated elapsed / speed``, and published then, so the
gateway's clock window accepts it. ``seq`` is the timestamp (strictly increasing per device, and
a restarted simulator never repeats one). Everything random comes from ``random.Random`` seeded
per device from ``seed``: the same seed, start and speed give the same readings, byte for byte
(device keys derive from the seed too, and Ed25519 signatures are deterministic).
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from citychain.client.rpc import NodeClient
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.messages import Msg
from citychain.iot.feeds import FeedPublishError, send_messages
from citychain.iot.reading import Reading, sign_reading
from citychain.modules.identity.messages import MsgCreateIdentity, MsgGrantRole
from citychain.modules.oracle.messages import MsgRegisterDevice

log = logging.getLogger("citychain.iot.sim")

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MINUTE_MS = 60_000
DISTRICTS = ("centre", "north", "south")
LINES = ("L1", "L2")
KIND_ORDER = ("WasteContainer", "AirQualityObserved", "StreetLight", "Vehicle")
STREAMS: dict[str, tuple[str, str, int, int]] = {
    # device type: (stream, unit, min, max)
    "WasteContainer": ("fillingLevel", "P1", 0, 100),
    "AirQualityObserved": ("pm25", "GQ", 0, 1000),
    "StreetLight": ("status", "C62", 0, 1),
    "Vehicle": ("delay", "SEC", -300, 3600),
}
INTERVAL_MS = {  # simulated time between two readings of one device
    "WasteContainer": 15 * MINUTE_MS,
    "AirQualityObserved": 10 * MINUTE_MS,
    "StreetLight": 15 * MINUTE_MS,
    "Vehicle": 3 * MINUTE_MS,
}
COLLECTION_HOURS = (6, 14)
COLLECTION_THRESHOLD = 30
STOPS_PER_ROUTE = 20
MAX_REGISTRATIONS_PER_TX = 25


def stream_spec(device_type: str) -> str:
    name, unit, low, high = STREAMS[device_type]
    return f"{name}:{unit}:{low}:{high}"


@dataclass(frozen=True)
class SimDevice:
    """One simulated device: its key (derived from the seed), type and district (a bus: line)."""

    index: int
    key: PrivateKey
    device_type: str
    district: str

    @property
    def did(self) -> str:
        return self.key.did

    @property
    def stream(self) -> str:
        return STREAMS[self.device_type][0]

    @property
    def bounds(self) -> tuple[int, int]:
        _, _, low, high = STREAMS[self.device_type]
        return low, high


def make_devices(count: int, seed: int) -> list[SimDevice]:
    """``count`` devices: kinds in turn (bin, air, light, bus), districts in turn per kind,
    buses on lines L1/L2; keys ``PrivateKey.from_secret("citychain-sim/<seed>/<index>")``."""
    devices = []
    for index in range(count):
        kind = KIND_ORDER[index % len(KIND_ORDER)]
        turn = index // len(KIND_ORDER)
        district = LINES[turn % len(LINES)] if kind == "Vehicle" else \
            DISTRICTS[turn % len(DISTRICTS)]
        devices.append(SimDevice(index, PrivateKey.from_secret(f"citychain-sim/{seed}/{index}"),
                                 kind, district))
    return devices


# ------------------------------------------------------------------------------------ behaviour

@dataclass
class _State:
    """Mutable behaviour state of one device."""

    rng: random.Random
    level: float = 0.0          # bin fill (percent), bus delay (s)
    working: bool = True        # street light
    repair_at_ms: int = 0       # street light: simulated time of the repair
    fill_rate: float = 0.0      # bin: percent per daytime hour
    base: float = 0.0           # air: base PM2.5
    stop: int = 0               # bus: stop index along its route
    last_round_ms: int = -1     # bin: last collection round seen
    events: list[str] = field(default_factory=list)


def _hour_of(sim_ms: int) -> float:
    return (sim_ms % DAY_MS) / HOUR_MS


def _bump(hour: float, centre: float, width: float) -> float:
    distance = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-(distance / width) ** 2)


def _collection_round(sim_ms: int) -> int:
    """The simulated time of the latest collection round at or before ``sim_ms``."""
    day = sim_ms - sim_ms % DAY_MS
    rounds = [day + hour * HOUR_MS for hour in COLLECTION_HOURS]
    past = [r for r in rounds if r <= sim_ms]
    return past[-1] if past else day - DAY_MS + COLLECTION_HOURS[-1] * HOUR_MS


class Simulation:
    """The devices' readings in due order (a pure generator: no I/O, no wall clock)."""

    def __init__(self, devices: Sequence[SimDevice], *, chain_id: str, seed: int, start_ms: int,
                 speed: float = 1.0, sim_origin_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.devices = list(devices)
        self.chain_id = chain_id
        self.seed = seed
        self.start_ms = start_ms
        self.speed = speed
        self.sim_origin_ms = (start_ms - start_ms % DAY_MS + 6 * HOUR_MS
                              if sim_origin_ms is None else sim_origin_ms)
        self._states = [self._initial(device) for device in self.devices]
        self._last_ts = [0] * len(self.devices)
        # Stagger first readings over one interval so devices do not all speak at once.
        self._queue = [(self._states[i].rng.randrange(INTERVAL_MS[d.device_type]), i)
                       for i, d in enumerate(self.devices)]
        heapq.heapify(self._queue)

    def _initial(self, device: SimDevice) -> _State:
        rng = random.Random(f"citychain-sim/{self.seed}/{device.index}")
        state = _State(rng)
        if device.device_type == "WasteContainer":
            state.level = rng.uniform(0, 40)
            state.fill_rate = rng.uniform(4.0, 9.0)
            state.last_round_ms = _collection_round(self.sim_origin_ms)
        elif device.device_type == "AirQualityObserved":
            state.base = rng.uniform(6, 14)
        elif device.device_type == "Vehicle":
            state.stop = rng.randrange(STOPS_PER_ROUTE)
            state.level = rng.uniform(-30, 120)
        return state

    def timestamp(self, elapsed_ms: int) -> int:
        """The real time (UNIX ms) a reading due at simulated ``elapsed_ms`` is stamped with."""
        return self.start_ms + int(elapsed_ms / self.speed)

    def events(self, index: int) -> list[str]:
        """What happened to device ``index`` so far (``emptied``, ``failed``, ``repaired``)."""
        return list(self._states[index].events)

    def readings(self, until_elapsed_ms: int) -> Iterator[Reading]:
        """Readings due up to simulated ``until_elapsed_ms`` after the start, in due order
        (resumable: a later call continues where this one stopped)."""
        while self._queue and self._queue[0][0] <= until_elapsed_ms:
            elapsed, index = heapq.heappop(self._queue)
            device = self.devices[index]
            value = self._step(device, self._states[index], self.sim_origin_ms + elapsed)
            ts = max(self.timestamp(elapsed), self._last_ts[index] + 1)
            self._last_ts[index] = ts
            heapq.heappush(self._queue, (elapsed + INTERVAL_MS[device.device_type], index))
            yield sign_reading(device.key, self.chain_id, device.stream, ts, ts, value)

    def _step(self, device: SimDevice, state: _State, sim_ms: int) -> int:
        kind = device.device_type
        rng = state.rng
        hour = _hour_of(sim_ms)
        step_hours = INTERVAL_MS[kind] / HOUR_MS
        if kind == "WasteContainer":
            last_round = _collection_round(sim_ms)
            if last_round > state.last_round_ms:
                state.last_round_ms = last_round
                if state.level >= COLLECTION_THRESHOLD:
                    state.level = rng.uniform(0, 3)
                    state.events.append("emptied")
            daytime = 1.0 if 7 <= hour < 22 else 0.2
            state.level = min(100.0, state.level + state.fill_rate * daytime * step_hours
                              * rng.uniform(0.5, 1.5))
            value = round(state.level)
        elif kind == "AirQualityObserved":
            curve = state.base + 18 * _bump(hour, 8.5, 1.5) + 14 * _bump(hour, 18.0, 2.0)
            value = round(curve + rng.gauss(0, 2.5))
        elif kind == "StreetLight":
            if state.working and rng.random() < 0.03 * step_hours:
                state.working = False
                state.repair_at_ms = sim_ms + rng.randrange(2 * HOUR_MS, 8 * HOUR_MS)
                state.events.append("failed")
            elif not state.working and sim_ms >= state.repair_at_ms:
                state.working = True
                state.events.append("repaired")
            value = 1 if state.working else 0
        else:  # Vehicle: one departure per reading
            state.stop = (state.stop + 1) % STOPS_PER_ROUTE
            if state.stop == 0:
                state.level = rng.uniform(-30, 60)     # terminus: the schedule resets
            else:
                rush = _bump(hour, 8.0, 1.5) + _bump(hour, 17.5, 1.5)
                state.level += rng.gauss(5 + 25 * rush, 30)
            value = round(state.level)
        low, high = device.bounds
        return max(low, min(high, value))


# ------------------------------------------------------------------------------------ chain

def register_devices(client: NodeClient, operator: PrivateKey, chain_id: str,
                     devices: Sequence[SimDevice]) -> int:
    """Register ``devices`` on chain for ``operator``: each device key creates its identity
    (self-registration), then the operator grants the device role and registers the device,
    up to 25 devices per tx. Devices already registered are skipped. Returns how many were
    registered.

    Raises:
        FeedPublishError: the chain refused a tx (e.g. self-registration disabled), or the
            identities were not committed within a minute (plus 1 s per 50 devices).
        RpcError: the node could not be reached.
    """
    def lookup(path: str, did: str) -> object:
        answer = client.query(path, {"did": did})
        return codec.decode(answer.value) if answer.ok else None

    todo = [d for d in devices if lookup("/oracle/device", d.did) is None]
    # Each device sends its own identity tx (one sender per tx): send them all, then wait once.
    creating = [d for d in todo if lookup("/identity/account", d.did) is None]
    for device in creating:
        send_messages(client, device.key, chain_id, [MsgCreateIdentity(device.key.public_key)],
                      commit=False)
    deadline = time.monotonic() + 60 + len(creating) / 50
    while creating:
        creating = [d for d in creating if lookup("/identity/account", d.did) is None]
        if creating and time.monotonic() > deadline:
            raise FeedPublishError("iot", 0, f"{len(creating)} device identities were not "
                                   "committed in time")
        if creating:
            time.sleep(0.1)
    for first in range(0, len(todo), MAX_REGISTRATIONS_PER_TX):
        messages: list[Msg] = []
        for device in todo[first:first + MAX_REGISTRATIONS_PER_TX]:
            messages.append(MsgGrantRole(device.did, "device"))
            messages.append(MsgRegisterDevice(device.did, device.device_type, device.district,
                                              (stream_spec(device.device_type),), False, 0, 0))
        send_messages(client, operator, chain_id, messages)
    return len(todo)


# ------------------------------------------------------------------------------------ MQTT

@dataclass
class SimStats:
    """What a run published (``by_type``: readings per device type)."""

    published: int = 0
    acknowledged: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class MqttSink:
    """Publishes readings to ``city/<device>/<stream>`` at QoS 1 and counts broker PUBACKs."""

    def __init__(self, host: str, port: int, client_id: str = "") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self._pending: list[mqtt.MQTTMessageInfo] = []
        self.acknowledged = 0
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def publish(self, reading: Reading) -> None:
        self._pending.append(self.client.publish(reading.topic, reading.to_json(), qos=1))
        if len(self._pending) >= 1000:
            self.flush()

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for every PUBACK; return how many the broker acknowledged in total."""
        for info in self._pending:
            info.wait_for_publish(timeout=timeout)
            if info.is_published():
                self.acknowledged += 1
        self._pending.clear()
        return self.acknowledged

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


def run_simulation(simulation: Simulation, sink: Callable[[Reading], None], seconds: float, *,
                   stop: threading.Event | None = None,
                   clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
                   sleep: Callable[[float], None] = time.sleep) -> SimStats:
    """Run ``seconds`` of real time (``seconds * speed`` simulated): publish each reading when
    the real clock reaches its timestamp (waiting on ``stop``, when given, so setting it ends
    the run at once). Returns what was published."""
    stats = SimStats()
    types = {device.did: device.device_type for device in simulation.devices}
    until = int(seconds * 1000 * simulation.speed)
    for reading in simulation.readings(until):
        wait_ms = reading.ts_ms - clock_ms()
        if stop is not None:
            if stop.wait(max(wait_ms, 0) / 1000):
                break
        elif wait_ms > 0:
            sleep(wait_ms / 1000)
        sink(reading)
        stats.published += 1
        kind = types[reading.device]
        stats.by_type[kind] = stats.by_type.get(kind, 0) + 1
    return stats


__all__ = [
    "DISTRICTS", "INTERVAL_MS", "KIND_ORDER", "LINES", "STREAMS", "MqttSink", "SimDevice",
    "SimStats", "Simulation", "make_devices", "register_devices", "run_simulation",
    "stream_spec",
]
