"""The IoT gateway: MQTT in (QoS 1, manual acks), checks, durable store, sealed batches, anchors.

Threads: the ingest thread drives paho's network loop itself (``loop_read``/``loop_write``/
``loop_misc``, no paho thread: one thread, no lock handoffs or wake-ups per message; the socket
read 64 KiB at a time, the PUBLISH packets in that buffer parsed in one pass by
``citychain.iot.mqtt_receive``): it reads up to ``chunk`` messages and hands their signatures to the
verifier (``citychain.iot.sigverify``: the Go binary or PyNaCl processes); meanwhile it checks
the previous chunk's messages in order, commits the accepted ones (and the rejection counts) in
one store transaction, and only then acks them all to the broker, the chunk's PUBACKs queued
as one packet and written with the socket corked. The seal thread seals the readings
committed into batches. The anchor thread sends sealed batches to the chain in order, up to
``anchor_window`` at once, asking the chain first whether a root sent before is already
anchored. An unreachable node or reading store (PostgreSQL's connection lost) pauses each of
them, which then tries again; anything else stops the gateway. The follow thread reads each
committed block's events and drops the cached device records they name
(``citychain.iot.chain.BlockFollower``). See docs/adr/0008-iot-gateway.md for the protocol and
its guarantees.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from citychain.client.rpc import RpcError
from citychain.core.crypto import verify_signature
from citychain.core.simple_merkle import merkle_root
from citychain.iot.chain import (
    DEFAULT_DEVICE_CACHE_SIZE,
    DEFAULT_DEVICE_TTL,
    AnchorRefusedError,
    BlockFollower,
    ChainLink,
    DeviceCache,
    DeviceInfo,
    preload_devices,
)
from citychain.iot.mqtt_receive import BufferedMqttClient, Delivery
from citychain.iot.reading import (
    BAD_SIGNATURE,
    INACTIVE_DEVICE,
    OUT_OF_ORDER,
    OUT_OF_RANGE,
    OUT_OF_WINDOW,
    REASONS,
    REPLAYED,
    UNKNOWN_DEVICE,
    UNKNOWN_STREAM,
    Reading,
    ReadingRejectedError,
    parse_reading,
)
from citychain.iot.sigverify import (
    Job,
    Pending,
    ReadingJob,
    SignatureVerifier,
    VerifierError,
    open_verifier,
)
from citychain.iot.store import SEALED, Batch, ReadingStore, ReadingStoreUnavailableError
from citychain.modules.oracle.api import compute_batch_id
from citychain.modules.oracle.messages import MsgAnchorBatch

log = logging.getLogger("citychain.iot")

TOPIC_FILTER = "city/+/+"
ROOT_ALREADY_ANCHORED = ("oracle", 12)
# DeviceNotFound, DeviceNotActive, DeviceDecommissioned, NotDeviceOwner: fixed by re-sealing.
DEVICE_REFUSALS = frozenset({1, 5, 6, 7})

Verdict = tuple[bytes, bool]
"""A signature checked ahead: the device key it was checked with, and whether it is valid."""


SEAL_POLL_SECONDS = 0.1
"""How often the seal thread looks at the pending readings when none were committed since."""


def _unreachable(exc: BaseException) -> str:
    return "reading store" if isinstance(exc, ReadingStoreUnavailableError) else "node"


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class GatewayConfig:
    """Settings of one gateway (defaults are the documented ones)."""

    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    client_id: str = ""              # default: derived from the gateway's DID
    batch_seconds: float = 5.0       # seal when the oldest unbatched reading is this old...
    batch_readings: int = 1000       # ...or this many are waiting
    chunk: int = 4000                # readings per store transaction (and per ack round) at
                                     # most; the broker must allow twice as many in flight
    window_past_ms: int = 600_000    # accept readings at most this much older than our clock
    window_future_ms: int = 30_000   # ...or this much ahead of it
    device_ttl: float = DEFAULT_DEVICE_TTL  # seconds a device record is kept at most (safety
                                           # net: committed events invalidate it sooner)
    device_cache_size: int = DEFAULT_DEVICE_CACHE_SIZE  # device records kept at most
    preload_devices: bool = True     # at start, cache the operator's devices in a few pages
    follow_seconds: float = 0.25     # period of polling the node for new blocks' events
    max_batch_devices: int = 1000    # capped by the chain's param
    stats_seconds: float = 10.0      # period of the stats log line
    anchor_retry_seconds: float = 1.0
    anchor_window: int = 16          # anchor txs sent at once (several batches per block)
    verifier: str = "auto"           # who checks signatures: go (citychain-sigverify),
                                     # python (PyNaCl processes), auto (go when built)
    verify_processes: int = 1        # its processes (Go: goroutines) checking each chunk while
                                     # the ingest thread finishes the previous one; 0: none


class ReadingChecker:
    """The stateful checks, in order: device known (registered to the gateway's operator: the
    chain refuses anchors listing another's), active, stream declared, signature, seq
    increasing (a replay repeats an id and so a seq), timestamp increasing, within the window
    of our clock, value within the stream's declared range."""

    def __init__(self, chain_id: str, operator: str,
                 devices: Callable[[str], DeviceInfo | None],
                 progress: dict[str, tuple[int, int]], config: GatewayConfig,
                 clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.chain_id = chain_id
        self.operator = operator
        self.devices = devices
        self.progress = progress
        self.config = config
        self.clock_ms = clock_ms

    def check(self, reading: Reading, verdict: Verdict | None = None) -> None:
        """Raise ReadingRejectedError unless ``reading`` may be stored; on success record it as
        the device's latest (the caller commits the progress with the reading).

        ``verdict`` (key, valid) is the signature checked ahead (:meth:`signature_job`, in
        another process); it counts only if the device's key is still that key. The checks
        apply in their documented order either way."""
        info = self.devices(reading.device)
        if info is None or info.owner != self.operator:
            raise ReadingRejectedError(UNKNOWN_DEVICE, reading.device)
        if not info.active:
            raise ReadingRejectedError(INACTIVE_DEVICE, reading.device)
        bounds = info.streams.get(reading.stream)
        if bounds is None:
            raise ReadingRejectedError(UNKNOWN_STREAM, reading.stream)
        if verdict is not None and verdict[0] == info.pubkey:
            valid = verdict[1]
        else:
            valid = verify_signature(info.pubkey, reading.sign_bytes(self.chain_id), reading.sig)
        if not valid:
            raise ReadingRejectedError(BAD_SIGNATURE, reading.device)
        last_seq, last_ts = self.progress.get(reading.device, (-1, -1))
        if reading.seq <= last_seq:
            raise ReadingRejectedError(REPLAYED, f"seq {reading.seq} <= last {last_seq}")
        if reading.ts_ms <= last_ts:
            raise ReadingRejectedError(OUT_OF_ORDER, f"ts_ms {reading.ts_ms} <= last {last_ts}")
        now = self.clock_ms()
        if not now - self.config.window_past_ms <= reading.ts_ms <= \
                now + self.config.window_future_ms:
            raise ReadingRejectedError(OUT_OF_WINDOW, f"ts_ms {reading.ts_ms}, clock {now}")
        low, high = bounds
        if not low <= reading.value <= high:
            raise ReadingRejectedError(OUT_OF_RANGE, f"{reading.value} outside {low}..{high}")
        self.progress[reading.device] = (reading.seq, reading.ts_ms)

    def signature_job(self, reading: Reading, *, from_payload: bool = False) -> Job | None:
        """What :func:`verify_signature` needs for ``reading``, or None when an earlier check
        (device, status, stream) refuses it anyway. ``from_payload``: a :class:`ReadingJob`
        when the reading came in the wire form (the verifier encodes it)."""
        info = self.devices(reading.device)
        if info is None or info.owner != self.operator or not info.active or \
                reading.stream not in info.streams:
            return None
        payload = reading.wire_payload if from_payload else None
        if payload is not None:
            return ReadingJob(info.pubkey, payload, reading.sig)
        return info.pubkey, reading.sign_bytes(self.chain_id), reading.sig


class Leaf(Protocol):
    """What sealing reads of a reading (a Reading, or the store's PendingLeaf)."""

    @property
    def device(self) -> str: ...

    @property
    def ts_ms(self) -> int: ...

    @property
    def reading_id(self) -> bytes: ...


LeafT = TypeVar("LeafT", bound=Leaf)


def split_batches(readings: Sequence[tuple[int, LeafT]], *, max_devices: int, max_span_ms: int,
                  max_readings: int) -> list[list[tuple[int, LeafT]]]:
    """Cut readings (``(n, leaf)`` in arrival order) into parts of at most ``max_devices``
    devices, ``max_readings`` readings and a first-to-last timestamp span of ``max_span_ms``."""
    parts: list[list[tuple[int, LeafT]]] = []
    current: list[tuple[int, LeafT]] = []
    devices: set[str] = set()
    low = high = 0
    for item in readings:
        leaf = item[1]
        device, ts_ms = leaf.device, leaf.ts_ms
        if current and (
                len(current) >= max_readings
                or (device not in devices and len(devices) >= max_devices)
                or max(high, ts_ms) - min(low, ts_ms) > max_span_ms):
            parts.append(current)
            current, devices = [], set()
        if not current:
            low = high = ts_ms
        current.append(item)
        devices.add(device)
        if ts_ms < low:
            low = ts_ms
        elif ts_ms > high:
            high = ts_ms
    if current:
        parts.append(current)
    return parts


def _anchor_message(batch: Batch) -> MsgAnchorBatch:
    return MsgAnchorBatch(
        merkle_root=batch.merkle_root, devices=batch.devices,
        first_reading_ms=batch.first_reading_ms, last_reading_ms=batch.last_reading_ms,
        reading_count=batch.reading_count, previous_batch_id=batch.previous_batch_id)


def build_batch(part: Sequence[tuple[int, Leaf]], previous_batch_id: bytes) -> Batch:
    """The sealed batch of ``part``: leaves = reading ids in order, the RFC 6962 root over them,
    devices sorted, time range, count, previous id, and the oracle's batch id of these."""
    leaves = tuple(leaf.reading_id for _, leaf in part)
    root = merkle_root(list(leaves))
    devices = tuple(sorted({leaf.device for _, leaf in part}))
    times = [leaf.ts_ms for _, leaf in part]
    first, last = min(times), max(times)
    batch_id = compute_batch_id(root, devices, first, last, len(leaves), previous_batch_id)
    return Batch(batch_id, root, leaves, devices, first, last, len(leaves), previous_batch_id)


@dataclass
class Verifying:
    """Signature checks under way for ``readings``: ``jobs`` (one per reading; None when no
    verifier is used) and the verifier's ``pending`` verdicts of them."""

    jobs: list[Job | None] | None
    pending: Pending | None = None
    readings: list[Reading] = field(default_factory=list)


@dataclass
class StagedChunk:
    """Messages read and parsed (a reading, or why it is refused, each), their signatures
    being checked."""

    messages: list[Delivery]
    parsed: list[Reading | ReadingRejectedError]
    verifying: Verifying


class Gateway:
    """One running gateway: ``start()`` connects and spawns its threads, ``stop()`` ends them."""

    def __init__(self, config: GatewayConfig, store: ReadingStore, chain: ChainLink,
                 clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.config = config
        self.store = store
        self.chain = chain
        self.clock_ms = clock_ms
        self.devices = DeviceCache(chain.device, ttl=config.device_ttl,
                                   max_entries=config.device_cache_size)
        self.follower = BlockFollower(chain, self.devices)
        self.operator = chain.operator()
        self.checker = ReadingChecker(chain.chain_id, self.operator, self.devices.get,
                                      store.device_progress(), config, clock_ms)
        self._seal_lock = threading.Lock()
        params = chain.params()
        self.max_devices = min(config.max_batch_devices, int(params["max_batch_devices"]))
        self.max_span_ms = int(params["max_batch_span_ms"])
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._seal_signal = threading.Event()   # sealed: the anchor thread has work
        self._ingested = threading.Event()      # committed: the seal thread may have work
        self._inbox: list[Delivery] = []
        self._threads: list[threading.Thread] = []
        self._verifier: SignatureVerifier | None = None
        self._lock = threading.Lock()
        self.received = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.anchored = 0
        self.errors: list[str] = []
        client_id = config.client_id or f"citychain-iot-{chain.key.address}"
        self.mqtt = BufferedMqttClient(CallbackAPIVersion.VERSION2, client_id=client_id,
                                clean_session=False, protocol=mqtt.MQTTv311, manual_ack=True)
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_subscribe = self._on_subscribe
        self.mqtt.on_message = self._on_message
        # Writes wait for loop_write in the ingest thread (one per chunk of acks), not one
        # send per queued packet.
        self.mqtt.on_socket_register_write = self._on_socket_register_write

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Gateway:
        """Open the signature verifier, fix the block follower's height, preload the device
        records, connect to the broker and start the threads.

        Raises:
            VerifierError: the verifier asked for cannot be started.
            RpcError, OSError: the node or the broker cannot be reached.
        """
        self._verifier = open_verifier(self.config.verifier, self.config.verify_processes,
                                       chain_id=self.checker.chain_id)
        log.info("signatures checked by %s", self._verifier.name if self._verifier
                 else "the ingest thread")
        try:
            self.follower.start_at()  # before any record is cached: no change can be missed
            if self.config.preload_devices:
                started = time.monotonic()
                kept = preload_devices(self.chain, self.devices, self.operator)
                log.info("preloaded %d device records of %s in %.3f s", kept, self.operator,
                         time.monotonic() - started)
            self.mqtt.connect(self.config.broker_host, self.config.broker_port, keepalive=30)
        except BaseException:
            if self._verifier is not None:
                self._verifier.close()
                self._verifier = None
            raise
        for target, name in ((self._ingest_loop, "iot-ingest"), (self._seal_loop, "iot-seal"),
                             (self._anchor_loop, "iot-anchor"), (self._follow_loop, "iot-follow")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._ingested.set()
        self._seal_signal.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
        if self._verifier is not None:
            self._verifier.close()
            self._verifier = None
        self.mqtt.disconnect()
        self.mqtt.loop_write()  # the DISCONNECT (the ingest thread, which wrote, has ended)

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ MQTT callbacks
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if not reason.is_failure:
            client.subscribe(TOPIC_FILTER, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        self.ready.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.append(Delivery.of(message))  # what take_publishes leaves to paho

    def _on_socket_register_write(self, client: mqtt.Client, userdata: Any,
                                  sock: Any) -> None:
        pass  # the ingest thread writes what is queued after each chunk and each poll

    # ------------------------------------------------------------------ ingest
    def _ingest_loop(self) -> None:
        last_stats = time.monotonic()
        try:
            staged: StagedChunk | None = None
            retry: list[Delivery] = []
            reload_progress = False
            while not self._stop.is_set():
                messages: list[Delivery] = []
                try:
                    if reload_progress:
                        self.checker.progress = self.store.device_progress()
                        reload_progress = False
                    if retry:
                        messages, retry = retry, []
                        # Reading on keeps the connection alive (pings and their answers);
                        # what arrives waits behind the messages retried.
                        messages += self._receive(timeout=0.0)
                        self.process(messages)
                    else:
                        # While the verifier processes check this chunk's signatures, this
                        # thread checks, commits and acks the previous one (in order).
                        messages = self._receive(timeout=0.0 if staged else 0.05)
                        following = self._stage(messages) if messages else None
                        try:
                            if staged is not None:
                                self._finish(staged)
                        except BaseException:
                            if following is not None:  # the verifier answers in order: take
                                self._verdicts(following.verifying)  # its answer, unused
                            raise
                        staged = following
                except (RpcError, OSError, ReadingStoreUnavailableError) as exc:
                    # The node or the store is unreachable: nothing of these chunks was acked
                    # (and, but for a commit whose answer was lost, committed). Try the same
                    # messages again, checked against the progress the store holds then: a
                    # chunk that did commit is refused as replayed and acked.
                    log.warning("ingest paused, %s unreachable: %s", _unreachable(exc), exc)
                    retry = retry + (staged.messages if staged else []) + messages
                    staged = None
                    reload_progress = True
                    self._stop.wait(1.0)
                    continue
                if time.monotonic() - last_stats >= self.config.stats_seconds:
                    last_stats = time.monotonic()
                    try:
                        log.info("%s", self.stats_line())
                    except ReadingStoreUnavailableError as exc:
                        log.warning("no stats: %s", exc)
            # Finish what was read (and can still be acked) before stopping; what the broker
            # sent after is not acked, so it delivers it again on the next connection.
            if staged is not None:
                self._finish(staged)
        except Exception as exc:
            self.errors.append(repr(exc))
            log.exception("iot ingest stopped")
            raise

    def _receive(self, timeout: float) -> list[Delivery]:
        """Run paho's network loop until up to ``chunk`` messages were read or, when none is
        waiting, ``timeout`` seconds passed; return them. A lost connection is reopened here
        (the broker then delivers again whatever was not acked)."""
        client = self.mqtt
        sock = client.socket()
        if sock is None or client.loop_misc() != mqtt.MQTT_ERR_SUCCESS:
            self._reconnect()
            return []
        writing = [sock] if client.want_write() else []
        waiting = client.buffered()  # packets already read from the socket
        readable, writable, _ = select.select([sock], writing, [], 0.0 if waiting else timeout)
        if writable and client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
            return []
        if readable or waiting:
            # The PUBLISH packets in the read buffer, then one packet by paho's loop_read (which
            # refills the buffer when empty); stop when neither adds a message (nothing more
            # is waiting, a partial packet, or another kind of packet: the next poll goes on).
            inbox, chunk = self._inbox, self.config.chunk
            while len(inbox) < chunk:
                if client.take_publishes(inbox, chunk - len(inbox)):
                    continue
                before = len(inbox)  # paho's on_message appends to the same list
                if client.loop_read() != mqtt.MQTT_ERR_SUCCESS or len(inbox) == before:
                    break
        messages, self._inbox = self._inbox, []
        self._write_queued()
        return messages

    def _write_queued(self) -> None:
        """Write the packets paho queued (acks, pings, subscriptions) with the socket corked,
        so that many small packets leave in few TCP segments."""
        sock = self.mqtt.socket()
        if sock is None or not self.mqtt.want_write():
            return
        cork = getattr(socket, "TCP_CORK", None)
        if cork is None or not isinstance(sock, socket.socket):
            self.mqtt.loop_write()
            return
        tcp: socket.socket = sock
        try:
            tcp.setsockopt(socket.IPPROTO_TCP, cork, 1)
        except OSError:
            self.mqtt.loop_write()  # loop_write notices a broken connection
            return
        try:
            self.mqtt.loop_write()
        finally:
            with contextlib.suppress(OSError):  # closed by loop_write: nothing left to send
                tcp.setsockopt(socket.IPPROTO_TCP, cork, 0)

    def _reconnect(self) -> None:
        """Reconnect after a pause (one to two seconds, as paho's own loop would)."""
        if self._stop.wait(1.0):
            return
        try:
            self.mqtt.reconnect()
        except OSError as exc:
            log.warning("broker unreachable: %s", exc)
            return
        self._write_queued()  # the CONNECT

    def process(self, messages: list[Delivery]) -> None:
        """Check ``messages``, commit the accepted ones and the rejection counts in one
        transaction, then ack every message (accepted or rejected) to the broker."""
        parsed = self._parse(messages)
        verdicts = self._verify([each for each in parsed if isinstance(each, Reading)])
        self._commit_and_ack(messages, parsed, verdicts)

    def _stage(self, messages: list[Delivery]) -> StagedChunk:
        """Parse ``messages`` and hand all their signatures to the verifier processes (this
        thread meanwhile finishes the previous chunk)."""
        parsed = self._parse(messages)
        readings = [each for each in parsed if isinstance(each, Reading)]
        return StagedChunk(messages, parsed, self._start_verifying(readings, share_here=False))

    def _finish(self, staged: StagedChunk) -> None:
        self._commit_and_ack(staged.messages, staged.parsed, self._verdicts(staged.verifying))

    @staticmethod
    def _parse(messages: list[Delivery]) -> list[Reading | ReadingRejectedError]:
        parsed: list[Reading | ReadingRejectedError] = []
        for message in messages:
            try:
                parsed.append(parse_reading(message.payload, message.topic))
            except ReadingRejectedError as exc:
                parsed.append(exc)
        return parsed

    def _commit_and_ack(self, messages: list[Delivery],
                        parsed: list[Reading | ReadingRejectedError],
                        verdicts: list[Verdict | None]) -> None:
        """The checks of each parsed message in order (``verdicts``: one per reading, or none
        at all); commit; then ack every message."""
        accepted: list[tuple[Reading, int]] = []
        touched: dict[str, tuple[int, int]] = {}
        rejected: Counter[str] = Counter()
        now = self.clock_ms()
        next_verdict = iter(verdicts)
        for each in parsed:
            try:
                if isinstance(each, ReadingRejectedError):
                    raise each
                reading = each
                self.checker.check(reading, next(next_verdict, None))
            except ReadingRejectedError as exc:
                rejected[exc.reason] += 1
                log.debug("rejected %s", exc)
                continue
            accepted.append((reading, now))
            touched[reading.device] = self.checker.progress[reading.device]
        self.store.commit_readings(accepted, touched, rejected)
        if accepted:
            self._ingested.set()
        self.mqtt.ack_all(messages)
        self._write_queued()
        with self._lock:
            self.received += len(messages)
            self.accepted += len(accepted)
            self.rejected.update(rejected)

    def _verify(self, readings: list[Reading]) -> list[Verdict | None]:
        """Signature verdicts of ``readings`` (None, or none at all: checked in
        :meth:`ReadingChecker.check`), split evenly between this thread and the verifier
        processes."""
        return self._verdicts(self._start_verifying(readings, share_here=True))

    def _start_verifying(self, readings: list[Reading], *, share_here: bool) -> Verifying:
        """Start checking the signatures of ``readings`` in the verifier (PyNaCl processes may
        leave this thread a share when ``share_here``)."""
        if self._verifier is None or len(readings) < 8:
            return Verifying(None)
        from_payload = self._verifier.encodes_readings
        jobs = [self.checker.signature_job(reading, from_payload=from_payload)
                for reading in readings]
        try:
            return Verifying(jobs, self._verifier.submit(jobs, share_here=share_here), readings)
        except VerifierError as exc:
            self._verifier_stopped(exc)
            return Verifying(None)

    def _verdicts(self, verifying: Verifying) -> list[Verdict | None]:
        """The verdicts of :meth:`_start_verifying`, in order."""
        if verifying.jobs is None or verifying.pending is None or self._verifier is None:
            return []  # none: every reading is checked in ReadingChecker.check
        try:
            valid = self._verifier.collect(verifying.pending)
        except VerifierError as exc:
            self._verifier_stopped(exc)
            return []
        # A reading the verifier encoded keeps the id it computed (valid ones only: the
        # others are refused, never stored).
        ids = verifying.pending.reading_ids  # none unless the verifier encodes readings
        for reading, reading_id, ok in zip(verifying.readings, ids, valid,
                                           strict=bool(ids)):
            if reading_id is not None and ok:
                reading.__dict__["reading_id"] = reading_id
        return [None if job is None or ok is None else (job[0], ok)
                for job, ok in zip(verifying.jobs, valid, strict=True)]

    def _verifier_stopped(self, exc: BaseException) -> None:
        if self._verifier is not None:
            log.error("signature verifier stopped (%s): verifying in the ingest thread", exc)
            with contextlib.suppress(Exception):
                self._verifier.close()
        self._verifier = None

    # ------------------------------------------------------------------ batches
    def _seal_loop(self) -> None:
        """Seal whenever the ingest thread commits readings, and at least every
        :data:`SEAL_POLL_SECONDS` (for ``batch_seconds``); beside the ingest thread, so that
        reading, checking and committing a chunk do not wait for sealing (SQLite releases the
        GIL while it works). An unreachable node or store pauses it; anything else stops it and is
        recorded in ``errors``, as the other threads do."""
        try:
            while not self._stop.is_set():
                self._ingested.wait(timeout=SEAL_POLL_SECONDS)
                self._ingested.clear()
                try:
                    self.maybe_seal()
                except (RpcError, OSError, ReadingStoreUnavailableError) as exc:
                    log.warning("sealing paused, %s unreachable: %s", _unreachable(exc), exc)
                    self._stop.wait(1.0)
        except Exception as exc:  # logged and recorded: the thread ends here
            self.errors.append(repr(exc))
            log.exception("iot sealing stopped")

    def maybe_seal(self, force: bool = False) -> int:
        """Seal pending readings into batches when ``batch_readings`` wait or the oldest has
        waited ``batch_seconds`` (or ``force``); return the number of batches sealed."""
        with self._seal_lock:
            return self._seal(force)

    def _seal(self, force: bool) -> int:
        count, oldest = self.store.pending_summary()
        if count == 0 or oldest is None:
            return 0
        if not force and count < self.config.batch_readings and \
                self.clock_ms() - oldest < self.config.batch_seconds * 1000:
            return 0
        pending = self.store.pending_leaves(10 * self.config.batch_readings)
        active = {did: self._active_now(did)
                  for did in sorted({leaf.device for _, leaf in pending})}
        kept = [(n, leaf) for n, leaf in pending if active[leaf.device]]
        dropped = [n for n, leaf in pending if not active[leaf.device]]
        previous = self.store.last_batch_id()
        sealed: list[tuple[Batch, list[int]]] = []
        for part in split_batches(kept, max_devices=self.max_devices,
                                  max_span_ms=self.max_span_ms,
                                  max_readings=self.config.batch_readings):
            batch = build_batch(part, previous)
            sealed.append((batch, [n for n, _ in part]))
            previous = batch.batch_id
        self.store.seal(sealed, dropped)
        if dropped:
            log.warning("dropped %d readings of devices inactive at sealing", len(dropped))
        self._seal_signal.set()
        return len(sealed)

    def _active_now(self, did: str) -> bool:
        info = self.devices.get(did)
        return info is not None and info.active and info.owner == self.operator

    # ------------------------------------------------------------------ anchors
    def _anchor_loop(self) -> None:
        """Anchor sealed batches whenever sealing signals (or every ``anchor_retry_seconds``);
        an unreachable node or store pauses it. Anything else (a SQLite error, say) stops it and is
        recorded in ``errors``, as the ingest thread does, so the process reports it and
        stops instead of ingesting on without anchoring."""
        try:
            while True:
                self._seal_signal.wait(timeout=self.config.anchor_retry_seconds)
                self._seal_signal.clear()
                try:
                    self.anchor_sealed()
                except (RpcError, OSError, ReadingStoreUnavailableError) as exc:
                    log.warning("anchoring paused, %s unreachable: %s", _unreachable(exc), exc)
                if self._stop.is_set():
                    return
        except Exception as exc:  # logged and recorded: the thread ends here
            self.errors.append(repr(exc))
            log.exception("iot anchoring stopped")

    def anchor_sealed(self) -> int:
        """Anchor every sealed batch in order; a root the chain already holds (a batch sent
        before) is recorded, not sent again. Up to ``anchor_window`` batches go at once, one
        tx each, so that several share a block; the first batch a window did not anchor is
        then sent alone, to learn why (a refusal re-seals from it). Returns the number newly
        recorded as anchored."""
        done = 0
        queue: list[Batch] = []
        for batch in self.store.batches(SEALED):
            # Sent before (a crash, a window cut short)? Sends are counted before the txs
            # leave, so a batch never sent cannot be on chain: no query for it.
            existing = self.chain.anchor_by_root(batch.merkle_root) if batch.sends else None
            if existing is not None:
                self.store.mark_anchored(batch.batch_id, int(existing["height"]), "")
                done += 1
                continue
            queue.append(batch)
        while queue:
            window = queue[:self.config.anchor_window]
            anchored = self._anchor_window(window) if len(window) > 1 else 0
            done += anchored
            queue = queue[anchored:]
            if queue:
                if not self._anchor_alone(queue[0]):
                    break  # refused: its readings and the later batches' go back to sealing
                done += 1
                queue = queue[1:]
        with self._lock:
            self.anchored += done
        return done

    def _anchor_window(self, window: list[Batch]) -> int:
        """Send ``window``'s anchors at once and wait for them; return how many, from the
        first, the chain now holds (each is marked anchored)."""
        self.store.record_sends([batch.batch_id for batch in window])
        hashes = self.chain.send_anchors([_anchor_message(batch) for batch in window])
        anchored: list[tuple[bytes, int, str]] = []
        for batch, tx_hash in zip(window, hashes, strict=False):
            existing = self.chain.anchor_by_root(batch.merkle_root)
            if existing is None:
                break
            anchored.append((batch.batch_id, int(existing["height"]), tx_hash))
        self.store.mark_all_anchored(anchored)
        return len(anchored)

    def _anchor_alone(self, batch: Batch) -> bool:
        """Anchor ``batch`` in a tx of its own and wait for its block; on a refusal re-seal
        from it and return False."""
        self.store.record_sends([batch.batch_id])
        try:
            height, tx_hash = self.chain.send_anchor(_anchor_message(batch))
        except AnchorRefusedError as exc:
            if (exc.codespace, exc.code) == ROOT_ALREADY_ANCHORED:
                existing = self.chain.anchor_by_root(batch.merkle_root)
                height = int(existing["height"]) if existing else 0
                self.store.mark_anchored(batch.batch_id, height, "")
                return True
            # Refused: nothing of this batch is on chain. Device problems (suspended,
            # decommissioned, unknown, another operator's) go away by re-sealing, which
            # re-checks every device; anything else sets this batch's readings aside.
            unanchorable = exc.codespace != "oracle" or exc.code not in DEVICE_REFUSALS
            with self._seal_lock:
                self.devices.clear()  # the re-seal re-reads every device from the chain
                returned = self.store.unseal_from(batch.batch_id, unanchorable=unanchorable)
            log.error("anchor of batch %s refused (%s); %d readings back to sealing%s",
                      batch.batch_id.hex(), exc, returned,
                      ", its own set aside" if unanchorable else "")
            return False
        self.store.mark_anchored(batch.batch_id, height, tx_hash)
        return True

    # ------------------------------------------------------------------ device freshness
    def _follow_loop(self) -> None:
        """Apply each committed block's device events to the cache, about every
        ``follow_seconds``. While blocks cannot be read (node unreachable, an answer not
        understood) the cache is emptied at each failed poll, so every device is read from the
        chain instead: never a record older than what the follower has seen."""
        failing = False
        while not self._stop.wait(self.config.follow_seconds):
            try:
                self.follower.poll()
            except (RpcError, OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
                self.devices.clear()
                if not failing:
                    log.warning("following blocks paused at height %d, device cache off: %r",
                                self.follower.height, exc)
                failing = True
                continue
            if failing:
                log.info("following blocks again from height %d", self.follower.height)
                failing = False

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict[str, Any]:
        """Counters of this run (received, accepted, rejected by reason, anchored) and the
        store's totals (readings and batches by status, rejections by reason since creation)."""
        with self._lock:
            run = {"received": self.received, "accepted": self.accepted,
                   "rejected": {reason: self.rejected[reason] for reason in REASONS},
                   "anchored": self.anchored}
        return {**run, "store": self.store.counts(),
                "rejected_total": self.store.rejection_counts()}

    def stats_line(self) -> str:
        stats = self.stats()
        rejected = " ".join(f"{k}={v}" for k, v in stats["rejected"].items() if v)
        store = " ".join(f"{k}={v}" for k, v in sorted(stats["store"].items()))
        return (f"iot gateway: received={stats['received']} accepted={stats['accepted']} "
                f"rejected[{rejected}] anchored={stats['anchored']} {store}")
