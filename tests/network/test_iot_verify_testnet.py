"""`citychain iot verify` and `iot feed verify` against a real 4-validator CometBFT testnet.

An operator registers a gateway device and a sensor; the sensor's signed readings go into a
reading store (``node0/iot/readings.db``, where ``--home node0`` looks) and are sealed into one
batch, which the gateway anchors with MsgAnchorBatch through another node (no MQTT needed); the
operator declares a feed and publishes its value over that batch. The CLI, given only the
testnet node directory, proves every chain read against header H+1, its commit and validator set,
trusted from the network's CometBFT genesis: the reading and the feed value verify; a tampered
reading, or a genesis naming other validators, fails with exit code 4.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from net_harness import NetworkProbe, prepare_cometbft
from typer.testing import CliRunner, Result

from citychain.cli.main import app
from citychain.client.rpc import NodeClient
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.messages import Msg
from citychain.core.tx import build_tx
from citychain.iot.feeds import (
    FeedDefinition,
    FeedRecipe,
    compute_feed_value,
    device_record,
)
from citychain.iot.gateway import build_batch
from citychain.iot.reading import Reading, sign_reading
from citychain.iot.store import ReadingStore, ReadOnlyReadingStore
from citychain.iot.verify import (
    CometbftProver,
    ProofUnavailableError,
    ReadingVerificationError,
    verify_reading,
)
from citychain.modules.identity.api import ROLE_DEVICE, ROLE_OPERATOR
from citychain.modules.oracle.messages import (
    MsgAnchorBatch,
    MsgDeclareFeed,
    MsgPublishFeedValue,
    MsgRegisterDevice,
)
from citychain.node.cometbft import is_pid_alive
from citychain.node.testnet import (
    GenesisAccount,
    Testnet,
    TestnetOptions,
    init_testnet,
    start_testnet,
    stop_testnet,
)

pytestmark = [pytest.mark.slow]

CHAIN_ID = "citychain-iotnet"
FEED = "pm25.d1"
VALUES = (120, 135, 150, 165)
EXIT_UNVERIFIED = 4


def key(name: str) -> PrivateKey:
    return PrivateKey.from_secret(f"citychain-iot-verify-testnet/{name}")


OPERATOR, GATEWAY, SENSOR = key("operator"), key("gateway"), key("sensor")


def cli(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env={"CITYCHAIN_HOME": None,
                                                               "CITYCHAIN_NODE": None})


def one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@dataclass
class IotNet(NetworkProbe):
    testnet: Testnet
    clients: list[NodeClient]
    readings: list[Reading] = field(default_factory=list)
    window: tuple[int, int] = (0, 0)
    sequences: dict[str, int] = field(default_factory=dict)

    def rpc(self, index: int, method: str, **params: Any) -> Any:
        return self.clients[index].call(method, **params)

    def send(self, index: int, signer: PrivateKey, *messages: Msg) -> tuple[int, str]:
        """Commit ``messages`` through node ``index``; return (height, tx hash) once every node
        has gone past that height."""
        sequence = self.sequences.get(signer.address, 0)
        answer = self.clients[index].broadcast(build_tx(signer, CHAIN_ID, sequence, *messages))
        assert answer["check_tx"]["code"] == 0, answer
        assert answer["tx_result"].get("code", 0) == 0, answer
        self.sequences[signer.address] = sequence + 1
        height = int(answer["height"])
        for node in range(len(self.clients)):
            self.wait_height(node, height + 1)
        return height, str(answer["hash"])

    @property
    def home(self) -> Path:
        """node0's directory: its CometBFT genesis, RPC port and (here) the reading store."""
        return self.testnet.node_dir(0).root

    @property
    def store_path(self) -> Path:
        return self.home / "iot" / "readings.db"

    @property
    def genesis_path(self) -> Path:
        return self.testnet.node_dir(0).cometbft_home / "config" / "genesis.json"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IotNet]:
    prepare_cometbft()
    root = tmp_path_factory.mktemp("iotnet") / "net"
    accounts = [GenesisAccount(OPERATOR.public_key, (ROLE_OPERATOR,), 0),
                GenesisAccount(GATEWAY.public_key, (ROLE_DEVICE,), 0),
                GenesisAccount(SENSOR.public_key, (ROLE_DEVICE,), 0)]
    testnet = init_testnet(root, TestnetOptions(validators=4, chain_id=CHAIN_ID,
                                                accounts=accounts))
    clients = [NodeClient(node.rpc_url, timeout=60) for node in testnet.nodes]
    network = IotNet(testnet, clients)
    try:
        start_testnet(testnet)
        network.wait_height(0, 2)
        populate(network)
        yield network
    finally:
        stop_testnet(testnet)
        for index in range(len(testnet.nodes)):
            for process in ("app", "cometbft"):
                pid = testnet.node_dir(index).read_pid(process)
                if pid is not None and is_pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
        for client in clients:
            client.close()


def populate(net: IotNet) -> None:
    """Devices and a feed on chain; four signed readings stored, sealed, anchored; the feed's
    mean over them published."""
    net.send(0, OPERATOR,
             MsgRegisterDevice(GATEWAY.did, "Gateway", "d1", (), False, 0, 0),
             MsgRegisterDevice(SENSOR.did, "AirQualityObserved", "d1", ("pm25:GQ:0:1000",),
                               False, 0, 0),
             MsgDeclareFeed(FEED, FeedRecipe("pm25", "AirQualityObserved").to_text(), "GQ", 1,
                            "mean", ("d1",)))
    start = int(time.time() * 1000) - 60_000
    readings = [sign_reading(SENSOR, CHAIN_ID, "pm25", seq, start + 1_000 * seq, value)
                for seq, value in enumerate(VALUES, start=1)]
    store = ReadingStore(net.store_path)
    try:
        last = readings[-1]
        store.commit_readings([(r, r.ts_ms + 50) for r in readings],
                              {SENSOR.did: (last.seq, last.ts_ms)}, {})
        pending = store.pending(100)
        batch = build_batch([(n, reading) for n, reading, _ in pending], store.last_batch_id())
        store.seal([(batch, [n for n, _, _ in pending])], [])
        height, tx_hash = net.send(1, GATEWAY, MsgAnchorBatch(
            batch.merkle_root, batch.devices, batch.first_reading_ms, batch.last_reading_ms,
            batch.reading_count, batch.previous_batch_id))
        store.mark_anchored(batch.batch_id, height, tx_hash)
        feed = FeedDefinition.from_value(net.query(2, "/oracle/feed", {"feed_id": FEED}))
        window = (start, last.ts_ms + 1)
        computed = compute_feed_value(
            store, feed, *window,
            lambda did: device_record(net.query(2, "/oracle/device", {"did": did})))
        assert computed.source_batch_ids == (batch.batch_id.hex(),)
        net.send(2, OPERATOR, MsgPublishFeedValue(FEED, *window, computed.value,
                                                  computed.source_batch_ids))
    finally:
        store.close()
    net.readings = readings
    net.window = window


def tampered_store(net: IotNet, reading: Reading) -> Path:
    """A copy of the store in which ``reading``'s value was changed."""
    target = net.store_path.parent / "tampered.db"
    if not target.exists():
        with sqlite3.connect(net.store_path) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        with sqlite3.connect(target) as db:
            db.execute("UPDATE readings SET value = value + 1 WHERE id = ?",
                       (reading.reading_id,))
    return target


def test_a_reading_verifies_from_the_testnet_home(net: IotNet) -> None:
    reading = net.readings[1]
    result = cli("iot", "verify", reading.reading_id.hex(), "--home", net.home)
    assert result.exit_code == 0, result.stderr
    assert f"value {reading.value}" in result.stdout
    assert "leaf 1 of 4 in batch" in result.stdout
    assert re.search(r"^verified: anchored at height \d+, proven at height \d+ against "
                     rf"validators of {re.escape(str(net.genesis_path))}; signed by the "
                     r"device's key$", result.stdout, re.MULTILINE), result.stdout


def test_every_reading_verifies_as_json_through_another_node(net: IotNet) -> None:
    for reading in net.readings:
        result = cli("iot", "verify", reading.reading_id.hex(), "--home", net.home,
                     "--node", net.testnet.nodes[3].rpc_url, "--json")
        assert result.exit_code == 0, result.stderr
        proof = json.loads(result.stdout)
        assert proof["verified"] is True and proof["total"] == len(net.readings)
        assert proof["reading"]["value"] == reading.value
        assert proof["anchor"]["devices"] == [SENSOR.did]
        assert proof["proven_height"] >= proof["anchor"]["height"]


def test_invalid_tampered_reading_is_not_verified(net: IotNet) -> None:
    reading = net.readings[2]
    result = cli("iot", "verify", reading.reading_id.hex(), "--home", net.home,
                 "--store", tampered_store(net, reading))
    assert result.exit_code == EXIT_UNVERIFIED, (result.stdout, result.stderr)
    assert "reading NOT verified" in one_error_line(result)
    assert "verified:" not in result.stdout


def test_the_published_feed_value_verifies(net: IotNet) -> None:
    result = cli("iot", "feed", "verify", FEED, "--home", net.home, "--json")
    assert result.exit_code == 0, result.stderr
    verified = json.loads(result.stdout)
    assert verified["verified"] is True, verified
    text = cli("iot", "feed", "verify", FEED, "--home", net.home)
    assert text.exit_code == 0, text.stderr
    mean = sum(VALUES) * 10 // len(VALUES)  # scale 1: tenths of a GQ
    assert f"value {mean} recomputed from 4 samples" in text.stdout, text.stdout
    assert f"against validators of {net.genesis_path}" in text.stdout


def test_invalid_feed_value_over_a_tampered_reading(net: IotNet) -> None:
    result = cli("iot", "feed", "verify", FEED, "--home", net.home,
                 "--store", tampered_store(net, net.readings[2]))
    assert result.exit_code == EXIT_UNVERIFIED, (result.stdout, result.stderr)
    assert "feed value NOT verified (SourceReadingTamperedError)" in one_error_line(result)


def test_invalid_genesis_with_other_validators(net: IotNet) -> None:
    genesis: dict[str, Any] = json.loads(net.genesis_path.read_text())
    stranger = PrivateKey.from_secret("citychain-iot-verify-testnet/stranger")
    for validator in genesis["validators"]:
        validator.pop("address", None)
        validator["pub_key"]["value"] = base64.b64encode(stranger.public_key).decode()
        break
    foreign = net.store_path.parent / "foreign-genesis.json"
    foreign.write_text(json.dumps(genesis))
    reading = net.readings[0]
    result = cli("iot", "verify", reading.reading_id.hex(), "--home", net.home,
                 "--genesis", foreign)
    assert result.exit_code == EXIT_UNVERIFIED, (result.stdout, result.stderr)
    line = one_error_line(result)
    assert "reading NOT verified: proof of /oracle/anchor failed" in line, line


def test_invalid_home_without_a_cometbft_genesis(net: IotNet, tmp_path: Path) -> None:
    result = cli("iot", "verify", net.readings[0].reading_id.hex(), "--home", tmp_path,
                 "--node", net.testnet.nodes[0].rpc_url, "--store", net.store_path)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "needs the network's genesis.json" in one_error_line(result)


def test_the_cometbft_prover_as_a_library(net: IotNet) -> None:
    genesis = json.loads(net.genesis_path.read_text())
    prover = CometbftProver.connect(net.testnet.nodes[2].rpc_url, genesis)
    store = ReadOnlyReadingStore(net.store_path)
    try:
        assert prover.chain_id == CHAIN_ID
        proof = verify_reading(store, net.readings[0].reading_id, prover)
        assert proof.reading == net.readings[0] and proof.index == 0
        with pytest.raises(ProofUnavailableError, match="cannot prove /oracle/anchor"):
            prover.proven("anchor", {"merkle_root": "not hex"})
        with pytest.raises(ReadingVerificationError, match="not anchored"):
            verify_reading(store, net.readings[0].reading_id, _Unanchored(prover))
    finally:
        store.close()
        prover.close()


@dataclass
class _Unanchored:
    """A prover whose chain holds no anchor (the other answers come from ``inner``)."""

    inner: CometbftProver
    chain_id: str = CHAIN_ID

    def proven(self, name: str, params: dict[str, Any],
               module: str = "oracle") -> tuple[Any, int]:
        value, height = self.inner.proven(name, params, module)
        return (None if name == "anchor" else value), height


def test_every_node_answers_anchors_by_device_alike_from_its_own_query_index(
        net: IotNet) -> None:
    """The (device, batch) pairs are outside the app hash, so consensus does not compare them:
    each node derives them from the anchor records, and all four must give the same answer."""
    params = {"did": SENSOR.did, "from_ms": net.window[0], "to_ms": net.window[1]}
    height = min(int(net.rpc(i, "status")["sync_info"]["latest_block_height"])
                 for i in range(len(net.clients)))
    answers = []
    for node in range(len(net.clients)):
        response = net.rpc(node, "abci_query", path="/oracle/anchors_by_device",
                           data=codec.encode(params).hex(), height=str(height))["response"]
        assert int(response.get("code", 0)) == 0, response
        assert int(response["height"]) == height
        answers.append(codec.decode(base64.b64decode(response["value"])))
    assert len(answers[0]["anchors"]) == 1
    assert all(answer == answers[0] for answer in answers)
