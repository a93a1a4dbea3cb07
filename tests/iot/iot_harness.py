"""Harness of the IoT tests: a real Mosquitto on a free loopback port, a solo chain (node + RPC
in this process) with an operator, a Gateway device and sensor devices registered through the
oracle module, an MQTT publisher that reports which readings the broker acknowledged, and
looks into a reading store on either backend (a SQLite path or a PostgreSQL URL)."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from citychain.cli.main import app as cli_app
from citychain.client.rpc import NodeClient
from citychain.consensus.solo.rpc import RpcServer
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.messages import Msg
from citychain.core.tx import TxBody, sign_tx
from citychain.iot.broker import Broker
from citychain.iot.broker import free_port as free_port  # the tests import it from here
from citychain.iot.chain import ChainLink
from citychain.iot.gateway import Gateway, GatewayConfig
from citychain.iot.reading import Reading, sign_reading
from citychain.iot.store import ReadingStore, ReadOnlyReadingStore, is_postgres_location
from citychain.modules.identity.messages import MsgSuspendIdentity
from citychain.modules.oracle.messages import MsgRegisterDevice
from citychain.node.assemble import SoloRuntime, open_solo
from citychain.node.keyring import Keyring

CHAIN_ID = "iot-city"
SENSORS = ("s1", "s2", "s3", "s4", "s5", "s6")
STREAMS = ("pm25:GQ:0:1000", "temp:CEL:-500:600")


def start_broker(directory: Path) -> Broker:
    """A Mosquitto of our own on a free loopback port (citychain.iot.broker)."""
    return Broker(directory).start()


@dataclass
class IotChain:
    """A running solo chain: admin (registrar), op (operator), gw (its Gateway device) and
    sensors s1..s6 (AirQualityObserved, streams pm25 0..1000 and temp -500..600); op2, another
    operator, owns sensor x1."""

    home: Path
    runtime: SoloRuntime
    server: RpcServer
    client: NodeClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = NodeClient(self.server.url)

    @property
    def rpc_url(self) -> str:
        return self.server.url

    @property
    def genesis_path(self) -> Path:
        return self.home / "genesis.json"

    def key(self, name: str) -> PrivateKey:
        return Keyring(self.home / "keyring").load(name)

    def send(self, name: str, *messages: Msg) -> dict[str, Any]:
        key = self.key(name)
        account = codec.decode(self.client.query("/identity/account",
                                                 {"address": key.address}).value)
        sequence = 0 if account is None else int(account["sequence"])
        raw = sign_tx(key, TxBody(CHAIN_ID, key.address, sequence, messages))
        result = self.client.broadcast(raw, commit=True)
        final = result["tx_result"] or result["check_tx"]
        assert final["code"] == 0, final
        return result

    def suspend(self, name: str) -> None:
        self.send("admin", MsgSuspendIdentity(self.key(name).did, "test"))

    def anchor(self, merkle_root: bytes) -> dict[str, Any] | None:
        answer = self.client.query("/oracle/anchor", {"merkle_root": merkle_root.hex()})
        value: dict[str, Any] | None = codec.decode(answer.value)
        return value

    def height(self) -> int:
        return int(self.client.status()["sync_info"]["latest_block_height"])

    def anchored_roots(self, after: int = 0) -> list[str]:
        """Every batch_anchored event's merkle_root, from block ``after + 1`` to the tip, in
        order."""
        roots = []
        for height in range(after + 1, self.height() + 1):
            for raw in self.client.call("block_results", height=height)["txs_results"]:
                for event in raw["events"]:
                    if event["type"] == "batch_anchored":
                        roots.append(dict(event["attributes"])["merkle_root"])
        return roots

    def close(self) -> None:
        self.client.close()
        self.server.stop()
        self.runtime.close()


def start_chain(home: Path) -> IotChain:
    accounts = ["op:operator", "gw:device", *(f"{name}:device" for name in SENSORS),
                "op2:operator", "x1:device"]
    result = CliRunner().invoke(cli_app, [
        "init", "--home", str(home), "--chain-id", CHAIN_ID,
        *(arg for spec in accounts for arg in ("--account", spec))],
        env={"CITYCHAIN_HOME": None, "CITYCHAIN_NODE": None})
    assert result.exit_code == 0, result.stderr
    runtime = open_solo(home)
    runtime.node.block_interval = 0.05
    runtime.node.start()
    server = RpcServer(runtime.node, "127.0.0.1", 0)
    server.start()
    chain = IotChain(home, runtime, server)
    try:
        chain.send("op", MsgRegisterDevice(chain.key("gw").did, "Gateway", "centre", (), False,
                                           0, 0),
                   *(MsgRegisterDevice(chain.key(name).did, "AirQualityObserved", "centre",
                                       STREAMS, False, 0, 0) for name in SENSORS))
        chain.send("op2", MsgRegisterDevice(chain.key("x1").did, "AirQualityObserved", "north",
                                            STREAMS, False, 0, 0))
    except BaseException:
        chain.close()
        raise
    return chain


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class DeviceClock:
    """Signs consecutive readings of one device (seq and ts_ms increasing)."""

    def __init__(self, key: PrivateKey, start_seq: int = 1) -> None:
        self.key = key
        self.seq = start_seq
        self.ts = now_ms() - 1000

    def next(self, value: int = 5, stream: str = "pm25") -> Reading:
        self.ts = max(self.ts + 1, now_ms())
        reading = sign_reading(self.key, CHAIN_ID, stream, self.seq, self.ts, value)
        self.seq += 1
        return reading


class Publisher:
    """An MQTT publisher (QoS 1) remembering which payloads the broker acknowledged."""

    def __init__(self, broker: Broker, client_id: str = "") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str, wait: bool = True) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=1)
        if wait:
            info.wait_for_publish(timeout=10)
        return info

    def publish_readings(self, readings: Iterable[Reading]) -> list[Reading]:
        """Publish and wait for every PUBACK; return the readings the broker acknowledged."""
        sent = [(r, self.publish(r.topic, r.to_json(), wait=False)) for r in readings]
        acked = []
        for reading, info in sent:
            info.wait_for_publish(timeout=10)
            if info.is_published():
                acked.append(reading)
        return acked

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, step: float = 0.05,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


class Ticker(threading.Thread):
    """Runs ``action`` every ``period`` seconds until stopped (for streaming publishers)."""

    def __init__(self, action: Callable[[], None], period: float) -> None:
        super().__init__(daemon=True)
        self.action = action
        self.period = period
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.period):
            self.action()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


def stored_ids(location: Path | str) -> set[bytes]:
    """The ids of every reading in the store at ``location`` (opened read-only)."""
    store = ReadOnlyReadingStore(location)
    try:
        return set(store.reading_ids())
    finally:
        store.close()


def store_counts(location: Path | str) -> dict[str, int]:
    """``ReadingStore.counts()`` of the store at ``location`` (opened read-only)."""
    store = ReadOnlyReadingStore(location)
    try:
        return store.counts()
    finally:
        store.close()


def tamper_reading(location: Path | str, reading_id: bytes) -> None:
    """Add one to a stored reading's value behind the store's back (as an attacker would)."""
    statement = "UPDATE readings SET value = value + 1 WHERE id = ?"
    if is_postgres_location(location):
        with psycopg.connect(str(location)) as db:
            assert db.execute(statement.replace("?", "%s"), (reading_id,)).rowcount == 1
    else:
        with sqlite3.connect(location) as db:
            assert db.execute(statement, (reading_id,)).rowcount == 1


@contextmanager
def running_gateway(broker: Broker, chain: IotChain, store_path: Path | str,
                    **settings: Any) -> Iterator[Gateway]:
    """An IoT gateway in this process on ``broker`` and ``chain`` (the ``gw`` device key),
    storing in ``store_path`` (a SQLite file or a PostgreSQL URL); ``settings`` override
    GatewayConfig fields (batch_seconds...)."""
    config = GatewayConfig(broker_host="127.0.0.1", broker_port=broker.port,
                           client_id=f"gw-{uuid.uuid4().hex[:8]}", stats_seconds=60,
                           **settings)
    link = ChainLink(chain.rpc_url, chain.key("gw"))
    store = ReadingStore(store_path)
    gateway = Gateway(config, store, link)
    try:
        gateway.start()
        assert gateway.ready.wait(10)
        yield gateway
    finally:
        gateway.stop()
        store.close()
        link.close()
