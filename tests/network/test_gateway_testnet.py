"""The gateway and the SDK on a real 4-validator CometBFT testnet, one gateway in front of node 0
and one in front of node 2.

Over plain HTTP: a tx submitted through one gateway is read back, with its proof bundle, through
the other; a refused tx is a problem with the chain's code and field; blocks, light headers and
events come from CometBFT. Through the SDK: a tx submitted with a wallet has its inclusion and
the new balance proven through the other gateway by the light verifier from the network's
genesis (sync and async), and forged answers are refused."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from net_harness import prepare_cometbft

from citychain.api.gateway import GatewaySettings
from citychain.api.server import GatewayThread
from citychain.client import AsyncClient, Client, TxBuilder, Wallet
from citychain.client.cometbft import InsufficientVotingPowerError
from citychain.client.network import AnswerMismatchError
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

CHAIN_ID = "citychain-sdknet"
DENOM = "ucity"
ALICE = Wallet.from_seed(PrivateKey.from_secret("citychain-sdk-testnet/alice").seed)
BOB = Wallet.from_seed(PrivateKey.from_secret("citychain-sdk-testnet/bob").seed)
CAROL = PrivateKey.from_secret("citychain-sdk-testnet/carol")
"""Signs the raw txs of the plain-HTTP tests (its own sequence numbers)."""


@dataclass
class SdkNet:
    testnet: Testnet
    urls: list[str]

    @property
    def genesis_path(self) -> Path:
        return self.testnet.node_dir(0).cometbft_home / "config" / "genesis.json"


@pytest.fixture(scope="module")
def sdknet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SdkNet]:
    """Four validators; gateways in front of nodes 0 and 2."""
    prepare_cometbft()
    root = tmp_path_factory.mktemp("sdknet") / "net"
    testnet = init_testnet(root, TestnetOptions(
        validators=4, chain_id=CHAIN_ID,
        accounts=[GenesisAccount(ALICE.pubkey, (), 10**9),
                  GenesisAccount(BOB.pubkey, (), 10**6),
                  GenesisAccount(CAROL.public_key, (), 10**9)]))
    gateways: list[GatewayThread] = []
    try:
        start_testnet(testnet)
        for index in (0, 2):
            gateways.append(GatewayThread(GatewaySettings(
                node_url=testnet.nodes[index].rpc_url, rate_limit=0)).start())
        net = SdkNet(testnet, [g.url for g in gateways])
        with Client(net.urls[0]) as client:
            wait_for(client, 2)
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


def http(net: SdkNet, index: int) -> httpx.Client:
    return httpx.Client(base_url=net.urls[index], timeout=60)


def wait_for(client: Client, height: int) -> None:
    for _ in range(600):
        if client.status().latest_height >= height:
            return
        time.sleep(0.05)
    raise AssertionError(f"height {height} did not come")


def test_submit_then_prove_through_another_gateway(sdknet: SdkNet) -> None:
    msg = TxBuilder(CHAIN_ID).bank.transfer(to=BOB.did, denom=DENOM, amount=250)
    with Client(sdknet.urls[0], trusted_genesis=sdknet.genesis_path) as first, \
            Client(sdknet.urls[1], trusted_genesis=sdknet.genesis_path) as second:
        assert first.verifier is not None and first.verifier.driver == "cometbft"
        sent = first.submit(msg, ALICE, raise_on_failure=True)
        height = sent.height or 0
        wait_for(second, height + 1)  # header height + 1 commits the state after the tx
        for _ in range(300):  # node 2 may commit the block a moment after node 0
            try:
                proven = second.tx(sent.hash)
                break
            except Exception:
                time.sleep(0.05)
        assert proven.verified and proven.height == height
        assert second.balance(BOB.did, DENOM, height=height) == 10**6 + 250
        account = second.account(ALICE.address)
        assert account.verified and account.sequence == 1
        again = first.submit(msg, ALICE, raise_on_failure=True)  # sequence 1, remembered
        assert again.ok


def test_async_client_verifies_on_cometbft(sdknet: SdkNet) -> None:
    async def scenario() -> tuple[int, bool]:
        async with AsyncClient(sdknet.urls[1], trusted_genesis=sdknet.genesis_path) as client:
            answer = await client.query("bank", "balance", address=ALICE.address, denom=DENOM)
            return answer.value["amount"], answer.verified

    amount, verified = asyncio.run(scenario())
    assert verified and 0 < amount <= 10**9


class Tampering(httpx.BaseTransport):
    def __init__(self, path_part: str, tamper: Callable[[Any], Any]) -> None:
        self.inner = httpx.HTTPTransport()
        self.path_part, self.tamper = path_part, tamper

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.path_part not in request.url.path or response.status_code != 200:
            return response
        response.read()
        return httpx.Response(200, json=self.tamper(response.json()))


def test_invalid_forged_answers_are_refused(sdknet: SdkNet) -> None:
    def richer(body: Any) -> Any:
        body["value"]["amount"] += 1
        return body

    with Client(sdknet.urls[0], trusted_genesis=sdknet.genesis_path,
                transport=Tampering("/bank/balance", richer)) as client, \
            pytest.raises(AnswerMismatchError):
        client.balance(BOB.address, DENOM)

    def half_signed(body: Any) -> Any:  # headers fetched to follow the set: 2 of 4 signed
        for signature in body["signed_header"]["commit"]["signatures"][2:]:
            signature.update(block_id_flag=1, validator_address="", signature=None)
        return body

    with Client(sdknet.urls[0], trusted_genesis=sdknet.genesis_path,
                transport=Tampering("/v1/light/", half_signed)) as client, \
            pytest.raises(InsufficientVotingPowerError):
        client.balance(BOB.address, DENOM)


# ------------------------------------------------------------------------ plain HTTP
def test_status_names_the_cometbft_driver(sdknet: SdkNet) -> None:
    with http(sdknet, 0) as client:
        status = client.get("/v1/status").json()
    assert status["driver"] == "cometbft"
    assert status["chain_id"] == CHAIN_ID
    assert status["latest_height"] >= 2


def test_a_tx_sent_through_one_gateway_is_proven_through_another(sdknet: SdkNet) -> None:
    raw = build_tx(CAROL, CHAIN_ID, 0, MsgTransfer(BOB.did, DENOM, 250))
    with http(sdknet, 0) as first, http(sdknet, 1) as second:
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
        params = {"address": BOB.address, "denom": DENOM}
        balance = second.get("/v1/query/bank/balance", params={
            **params, "prove": "true", "height": height}).json()
        before = second.get("/v1/query/bank/balance", params={
            **params, "height": height - 1}).json()
    assert balance["value"]["amount"] - before["value"]["amount"] == 250
    proof = balance["proof"]
    assert proof["light"]["driver"] == "cometbft"
    assert proof["light"]["height"] == balance["height"] + 1
    assert len(proof["light"]["validators"]["validators"]) == 4


def test_a_refused_tx_is_a_problem_with_the_chain_code(sdknet: SdkNet) -> None:
    raw = build_tx(CAROL, "another-chain", 0, MsgTransfer(BOB.did, DENOM, 1))
    with http(sdknet, 1) as client:
        answer = client.post("/v1/txs", json={"tx": base64.b64encode(raw).decode()})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["codespace"] == "core" and problem["code"] > 0
    assert problem["field"] == "body.chain_id", problem


def test_blocks_and_light_headers(sdknet: SdkNet) -> None:
    with http(sdknet, 0) as client:
        page = client.get("/v1/blocks", params={"limit": 2}).json()
        assert len(page["items"]) == 2
        top = page["items"][0]["height"]
        assert page["items"][1]["height"] == top - 1
        light = client.get(f"/v1/light/{top}").json()
    assert light["driver"] == "cometbft"
    assert int(light["signed_header"]["header"]["height"]) == top
    assert len(light["signed_header"]["commit"]["signatures"]) == 4


def test_events_of_a_committed_tx_on_cometbft(sdknet: SdkNet) -> None:
    raw = build_tx(CAROL, CHAIN_ID, 1, MsgTransfer(BOB.did, DENOM, 17))
    with http(sdknet, 0) as first, http(sdknet, 1) as second:
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
