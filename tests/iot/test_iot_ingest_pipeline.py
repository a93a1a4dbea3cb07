"""The gateway's ingest thread runs the MQTT network loop and overlaps chunks (one being
verified while the one before is checked, committed and acked): a node outage holds both
chunks back and then stores each reading once, in order; a broker restart is followed by a
reconnect and a new subscription; chunks of every size pass the signature split unchanged."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from iot_harness import (
    Broker,
    DeviceClock,
    IotChain,
    Publisher,
    running_gateway,
    stored_ids,
    wait_for,
)

from citychain.iot.broker import broker_config, find_mosquitto
from citychain.iot.chain import DeviceInfo
from citychain.iot.gateway import Gateway
from citychain.iot.reading import Reading
from citychain.iot.store import ReadingStore


def stored_in_order(store_path: Path) -> list[tuple[str, int]]:
    store = ReadingStore(store_path)
    try:
        return [(reading.device, reading.seq) for _, reading, _ in store.pending(10_000)]
    finally:
        store.close()


class Outage:
    """Stands between the gateway's checks and its device records: while ``down`` every
    lookup fails as an unreachable node does."""

    def __init__(self, gateway: Gateway) -> None:
        self.lookup = gateway.checker.devices
        self.down = threading.Event()
        self.failures = 0
        gateway.checker.devices = self.get

    def get(self, did: str) -> DeviceInfo | None:
        if self.down.is_set():
            self.failures += 1
            raise OSError("node unreachable (test)")
        return self.lookup(did)


def test_a_node_outage_holds_chunks_back_then_stores_each_once_in_order(
        broker: Broker, chain: IotChain, store_path: Path) -> None:
    devices = [DeviceClock(chain.key(name)) for name in ("s1", "s2", "s3")]
    before = [device.next(value) for value in range(1, 41) for device in devices]
    during = [device.next(value) for value in range(1, 41) for device in devices]
    with running_gateway(broker, chain, store_path, chunk=16, batch_seconds=3600) as gateway:
        outage = Outage(gateway)
        publisher = Publisher(broker)
        try:
            assert len(publisher.publish_readings(before)) == len(before)
            wait_for(lambda: gateway.stats()["accepted"] == len(before), what="first readings")
            outage.down.set()
            assert len(publisher.publish_readings(during)) == len(during)
            wait_for(lambda: outage.failures >= 2, what="a retry")
            assert gateway.stats()["accepted"] == len(before)
            outage.down.clear()
            wait_for(lambda: gateway.stats()["accepted"] == len(before) + len(during),
                     what="readings held back")
        finally:
            publisher.close()
        assert gateway.errors == []
        stats = gateway.stats()
    assert stats["received"] == len(before) + len(during)
    assert all(count == 0 for count in stats["rejected"].values())
    readings = before + during
    assert stored_ids(store_path) == {reading.reading_id for reading in readings}
    assert stored_in_order(store_path) == [(r.device, r.seq) for r in readings]


def start_mosquitto(directory: Path, port: int) -> subprocess.Popen[bytes]:
    binary = find_mosquitto()
    assert binary is not None
    conf = directory / f"mosquitto-{port}.conf"
    conf.write_text(broker_config(port))
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("mosquitto did not open its port")


@contextmanager
def restartable_broker(directory: Path) -> Iterator[Any]:
    """A Mosquitto on a fixed free port that ``restart()`` stops and starts again there
    (in memory: the gateway's session and subscription are gone after it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    processes = [start_mosquitto(directory, port)]

    def restart() -> None:
        processes[-1].terminate()
        processes[-1].wait(timeout=10)
        time.sleep(0.3)
        processes.append(start_mosquitto(directory, port))

    try:
        yield SimpleNamespace(port=port, restart=restart)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)


def test_a_broker_restart_is_followed_by_a_reconnect_and_a_new_subscription(
        chain: IotChain, store_path: Path, tmp_path: Path) -> None:
    device = DeviceClock(chain.key("s4"))
    first = [device.next(value) for value in range(1, 21)]
    second = [device.next(value) for value in range(21, 41)]
    with restartable_broker(tmp_path) as broker, \
            running_gateway(broker, chain, store_path, batch_seconds=3600) as gateway:
        publisher = Publisher(broker)
        try:
            assert len(publisher.publish_readings(first)) == len(first)
            wait_for(lambda: gateway.stats()["accepted"] == len(first), what="first readings")
        finally:
            publisher.close()
        gateway.ready.clear()
        broker.restart()
        assert gateway.ready.wait(20), "the gateway did not subscribe again"
        publisher = Publisher(broker)
        try:
            assert len(publisher.publish_readings(second)) == len(second)
            wait_for(lambda: gateway.stats()["accepted"] == len(first) + len(second),
                     what="readings after the restart")
        finally:
            publisher.close()
        assert gateway.errors == []
    assert stored_ids(store_path) == {reading.reading_id for reading in first + second}


def test_every_chunk_size_gets_one_verdict_per_reading_in_order(
        broker: Broker, chain: IotChain, store_path: Path, verifier: str) -> None:
    # Small chunks are verified in the checks, larger ones split among the processes (and,
    # when not pipelined, the ingest thread); a forged signature keeps its place.
    clock = DeviceClock(chain.key("s5"), start_seq=5000)
    with running_gateway(broker, chain, store_path, verifier=verifier,
                         verify_processes=2) as gateway:
        for size in (1, 7, 8, 9, 31, 64):
            readings = [clock.next(v) for v in range(size)]
            forged = Reading(readings[-1].device, "pm25", readings[-1].seq, readings[-1].ts_ms,
                             1, bytes(64))
            chunk = [*readings[:-1], forged]
            expected = [True] * (size - 1) + [False]
            for share_here in (False, True):
                verdicts = gateway._verdicts(gateway._start_verifying(chunk,
                                                                      share_here=share_here))
                if size < 8:
                    assert verdicts == []
                else:
                    assert [v if v is None else v[1] for v in verdicts] == expected


def test_a_store_failure_in_the_anchor_thread_is_reported_in_errors(
        broker: Broker, chain: IotChain, store_path: Path) -> None:
    """The anchor thread does not die silently: a store that fails while it lists sealed
    batches ends up in ``Gateway.errors``, which the CLI turns into "gateway stopped: ..."."""
    device = DeviceClock(chain.key("s1"))
    with running_gateway(broker, chain, store_path, batch_seconds=0.1) as gateway:
        def broken(status: str | None = None) -> Any:
            raise RuntimeError("store gone (test)")

        gateway.store.batches = broken  # type: ignore[method-assign]
        publisher = Publisher(broker)
        try:
            publisher.publish_readings([device.next(1)])
            wait_for(lambda: bool(gateway.errors), what="the anchor thread's error")
        finally:
            publisher.close()
        assert "store gone (test)" in gateway.errors[0]
