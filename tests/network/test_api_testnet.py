"""The HTTP gateway on a real 4-validator CometBFT testnet: one gateway per node, txs submitted
through one and read back, proven, through another; blocks, light headers and events."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from net_harness import prepare_cometbft

from citychain.api.gateway import GatewaySettings
from citychain.api.server import GatewayThread
from citychain.core.crypto import PrivateKey
from citychain.core.tx import build_tx
from citychain.modules.bank.messages import MsgTransfer
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

CHAIN_ID = "citychain-apinet"
DENOM = "ucity"
ALICE = PrivateKey.from_secret("citychain-api-testnet/alice")
BOB = PrivateKey.from_secret("citychain-api-testnet/bob")


@dataclass
class ApiNet:
    testnet: Testnet
    gateways: list[GatewayThread]

    def api(self, index: int) -> httpx.Client:
        return httpx.Client(base_url=self.gateways[index].url, timeout=60)


@pytest.fixture(scope="module")
def apinet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiNet]:
    """Four validators; gateways in front of nodes 0 and 2."""
    prepare_cometbft()
    root = tmp_path_factory.mktemp("apinet") / "net"
    testnet = init_testnet(root, TestnetOptions(
        validators=4, chain_id=CHAIN_ID,
        accounts=[GenesisAccount(ALICE.public_key, (), 10**9),
                  GenesisAccount(BOB.public_key, (), 10**6)]))
    gateways: list[GatewayThread] = []
    try:
        start_testnet(testnet)
        for index in (0, 2):
            gateways.append(GatewayThread(GatewaySettings(
                node_url=testnet.nodes[index].rpc_url, rate_limit=0)).start())
        net = ApiNet(testnet, gateways)
        with net.api(0) as client:
            for _ in range(300):
                if client.get("/v1/status").json()["latest_height"] >= 2:
                    break
                time.sleep(0.1)
        yield net
    finally:
        for gateway in gateways:
            gateway.stop()
        stop_testnet(testnet)
        for index in range(len(testnet.nodes)):
            for process in ("app", "cometbft"):
                pid = testnet.node_dir(index).read_pid(process)
                if pid is not None and is_pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)


def test_status_names_the_cometbft_driver(apinet: ApiNet) -> None:
    with apinet.api(0) as client:
        status = client.get("/v1/status").json()
    assert status["driver"] == "cometbft"
    assert status["chain_id"] == CHAIN_ID
    assert status["latest_height"] >= 2


def test_a_tx_sent_through_one_gateway_is_proven_through_another(apinet: ApiNet) -> None:
    raw = build_tx(ALICE, CHAIN_ID, 0, MsgTransfer(BOB.did, DENOM, 250))
    with apinet.api(0) as first, apinet.api(1) as second:
        sent = first.post("/v1/txs", json={"tx": base64.b64encode(raw).decode()})
        assert sent.status_code == 200, sent.text
        body = sent.json()
        assert body["result"]["code"] == 0, body
        height = body["height"]
        for _ in range(300):  # the other node may commit the block a moment later
            found = second.get(f"/v1/txs/{body['hash']}", params={"prove": "true"})
            if found.status_code != 404:
                break
            time.sleep(0.05)
        assert found.status_code == 200, found.text
        tx = found.json()
        assert tx["height"] == height and tx["proof"] is not None
        assert tx["light"]["driver"] == "cometbft"
        for _ in range(300):  # header height + 1 commits the state after the tx's block
            if second.get("/v1/status").json()["latest_height"] > height:
                break
            time.sleep(0.05)
        balance = second.get("/v1/query/bank/balance", params={
            "address": BOB.address, "denom": DENOM, "prove": "true"}).json()
    assert balance["value"]["amount"] == 10**6 + 250
    proof = balance["proof"]
    assert proof["light"]["driver"] == "cometbft"
    assert proof["light"]["height"] == balance["height"] + 1
    assert len(proof["light"]["validators"]["validators"]) == 4


def test_a_refused_tx_is_a_problem_with_the_chain_code(apinet: ApiNet) -> None:
    raw = build_tx(BOB, "another-chain", 0, MsgTransfer(ALICE.did, DENOM, 1))
    with apinet.api(1) as client:
        answer = client.post("/v1/txs", json={"tx": base64.b64encode(raw).decode()})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["codespace"] == "core" and problem["code"] > 0
    assert problem["field"] == "body.chain_id", problem


def test_blocks_and_light_headers(apinet: ApiNet) -> None:
    with apinet.api(0) as client:
        page = client.get("/v1/blocks", params={"limit": 2}).json()
        assert len(page["items"]) == 2
        top = page["items"][0]["height"]
        assert page["items"][1]["height"] == top - 1
        light = client.get(f"/v1/light/{top}").json()
    assert light["driver"] == "cometbft"
    assert int(light["signed_header"]["header"]["height"]) == top
    assert len(light["signed_header"]["commit"]["signatures"]) == 4


def test_events_of_a_committed_tx_on_cometbft(apinet: ApiNet) -> None:
    raw = build_tx(ALICE, CHAIN_ID, 1, MsgTransfer(BOB.did, DENOM, 17))
    with apinet.api(0) as first, apinet.api(1) as second:
        sent = first.post("/v1/txs", json={"tx": base64.b64encode(raw).decode()}).json()
        assert sent["result"]["code"] == 0, sent
        height = sent["height"]
        for _ in range(300):
            if second.get("/v1/status").json()["latest_height"] >= height:
                break
            time.sleep(0.05)
        page = second.get("/v1/events/history", params={
            "from_height": height, "to_height": height, "module": "bank",
            "account": BOB.did}).json()
        with second.stream("GET", "/v1/events", params={"from_height": height,
                                                        "type": "coins_transferred"}) as stream:
            data = next(line for line in stream.iter_lines() if line.startswith("data:"))
    [event] = page["items"]
    assert event["type"] == "coins_transferred" and event["tx_hash"] == sent["hash"]
    assert event["attributes"]["amount"] == "17" and event["id"].startswith(f"{height}.")
    assert json.loads(data.removeprefix("data:"))["id"] == event["id"]
