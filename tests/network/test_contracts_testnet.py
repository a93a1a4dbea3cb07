"""Rule contracts on a real 4-validator CometBFT testnet: every end-block outcome is the same on
every node.

The city (payer), a contractor (payee) and an inspector sign three street-lighting contracts,
sending their txs through different nodes: one is released once its feed shows enough working
lights (anchored to a batch) and the inspector has signed off; one is refunded because its
feed never gets a value before its deadline; one has a condition that divides by zero, which
end-block records as the milestone's outcome while the contract stays active. The deadlines and
feed ages are judged against CometBFT's block time, so the nodes must agree on them too. Then
every node reports the same app hashes at the same heights and the same answers, at one fixed
height, to the contract, audit and balance queries.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from net_harness import NetworkProbe, prepare_cometbft

from citychain.client.rpc import NodeClient
from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.messages import Msg
from citychain.core.tx import build_tx
from citychain.modules.contracts.messages import (
    MsgAttestMilestone,
    MsgCreateContract,
    MsgFundContract,
    MsgSignContract,
)
from citychain.modules.contracts.templates import STREET_LIGHTING
from citychain.modules.identity.api import ROLE_CITIZEN, ROLE_DEVICE, ROLE_OPERATOR
from citychain.modules.oracle.messages import (
    MsgAnchorBatch,
    MsgDeclareFeed,
    MsgPublishFeedValue,
    MsgRegisterDevice,
)
from citychain.modules.oracle.types import compute_batch_id
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

CHAIN_ID = "citychain-contractnet"
DENOM = "ucity"
AMOUNT = 5_000
BALANCE = 10**9
LIT_FEED = "lights.d1.working"
DARK_FEED = "lights.d2.working"
REFUND_AFTER_S = 40
"""The refunded contract's deadline, in seconds after its creation (time to sign and fund)."""


def key(name: str) -> PrivateKey:
    return PrivateKey.from_secret(f"citychain-contracts-testnet/{name}")


CITY, CONTRACTOR, INSPECTOR = key("city"), key("contractor"), key("inspector")
OPERATOR, GATEWAY, SENSOR = key("operator"), key("gateway"), key("sensor")


@dataclass
class ContractNet(NetworkProbe):
    testnet: Testnet
    clients: list[NodeClient]
    sequences: dict[str, int] = field(default_factory=dict)

    def rpc(self, index: int, method: str, **params: Any) -> Any:
        return self.clients[index].call(method, **params)

    def send(self, index: int, signer: PrivateKey, *messages: Msg) -> int:
        """Sign ``messages`` and commit them through node ``index``; return the block height
        once every node has gone past it (so a query to any node sees the tx)."""
        sequence = self.sequences.get(signer.address, 0)
        answer = self.clients[index].broadcast(build_tx(signer, CHAIN_ID, sequence, *messages))
        assert answer["check_tx"]["code"] == 0, answer
        assert answer["tx_result"].get("code", 0) == 0, answer
        self.sequences[signer.address] = sequence + 1
        height = int(answer["height"])
        for node in range(len(self.clients)):
            self.wait_height(node, height + 1)
        return height

    def block_time(self, index: int) -> int:
        """The latest block's time on node ``index``, in UNIX seconds."""
        height = self.height(index)
        header = self.rpc(index, "block", height=str(height))["block"]["header"]
        stamp = str(header["time"])[:19]  # 2026-01-01T00:00:00.123456789Z -> seconds
        return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))

    def query_at(self, index: int, path: str, params: dict[str, Any], height: int) -> Any:
        response = self.rpc(index, "abci_query", path=path, data=codec.encode(params).hex(),
                            height=str(height))["response"]
        assert int(response.get("code", 0)) == 0, response
        return codec.decode(base64.b64decode(response["value"])) if response.get("value") else None

    def contract(self, index: int, contract_id: int) -> dict[str, Any]:
        answer: dict[str, Any] = self.query(index, "/contracts/contract",
                                            {"contract_id": contract_id})
        return answer

    def wait_until(self, what: str, check: Any, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not happen in {timeout} s\n" + self.logs(0))
            time.sleep(0.3)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContractNet]:
    prepare_cometbft()
    root = tmp_path_factory.mktemp("contractnet") / "net"
    accounts = [GenesisAccount(CITY.public_key, (ROLE_CITIZEN,), BALANCE),
                GenesisAccount(CONTRACTOR.public_key, (ROLE_CITIZEN,), BALANCE),
                GenesisAccount(INSPECTOR.public_key, (ROLE_CITIZEN,), BALANCE),
                GenesisAccount(OPERATOR.public_key, (ROLE_OPERATOR,), 0),
                GenesisAccount(GATEWAY.public_key, (ROLE_DEVICE,), 0),
                GenesisAccount(SENSOR.public_key, (ROLE_DEVICE,), 0)]
    testnet = init_testnet(root, TestnetOptions(validators=4, chain_id=CHAIN_ID,
                                                accounts=accounts))
    clients = [NodeClient(node.rpc_url, timeout=60) for node in testnet.nodes]
    network = ContractNet(testnet, clients)
    try:
        start_testnet(testnet)
        network.wait_height(0, 2)
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


def lighting_terms(title: str, feed: str, deadline: int, condition: str = "") -> str:
    terms = json.loads(STREET_LIGHTING.terms({
        "payer": CITY.did, "payee": CONTRACTOR.did, "inspector": INSPECTOR.did,
        "title": title, "districts": [f"d1:{feed}:100"], "amount_per_district": AMOUNT,
        "deadline": deadline, "hold_days": 0, "check_every_blocks": 1}))
    if condition:
        terms["milestones"][0]["condition"] = condition
    return json.dumps(terms, sort_keys=True, separators=(",", ":"))


@pytest.mark.timeout(300)
def test_contract_outcomes_are_identical_on_every_node(net: ContractNet) -> None:
    # The oracle: two devices and two declared feeds (one will never get a value).
    net.send(0, OPERATOR,
             MsgRegisterDevice(GATEWAY.did, "Gateway", "d1", (), False, 0, 0),
             MsgRegisterDevice(SENSOR.did, "StreetLight", "d1", ("on:P1:0:1",), False, 0, 0),
             MsgDeclareFeed(LIT_FEED, "working lights d1", "C62", 0, "count", ("d1",)),
             MsgDeclareFeed(DARK_FEED, "working lights d2", "C62", 0, "count", ("d2",)))

    # Three contracts (ids 1, 2, 3 on a fresh chain), signed and funded through other nodes.
    now = net.block_time(1)
    division = f'feeds["{LIT_FEED}"].value / (feeds["{LIT_FEED}"].value - 120) > 0'
    net.send(1, CITY,
             MsgCreateContract(lighting_terms("released", LIT_FEED, now + 3_600)),
             MsgCreateContract(lighting_terms("refunded", DARK_FEED, now + REFUND_AFTER_S)),
             MsgCreateContract(lighting_terms("division", LIT_FEED, now + 3_600, division)))
    released, refunded, divided = 1, 2, 3
    titles = {net.contract(2, number)["terms"]["title"] for number in (1, 2, 3)}
    assert titles == {"released", "refunded", "division"}
    assert net.contract(2, refunded)["terms"]["title"] == "refunded"
    contracts = (released, refunded, divided)
    net.send(2, CONTRACTOR, *(MsgSignContract(number) for number in contracts))
    net.send(3, INSPECTOR, *(MsgSignContract(number) for number in contracts))
    before = {who.address: int(net.query(0, "/bank/balance", {"address": who.address,
                                                               "denom": DENOM})["amount"])
              for who in (CITY, CONTRACTOR)}
    net.send(0, CITY, *(MsgFundContract(number, AMOUNT) for number in contracts))
    for number in contracts:
        assert net.contract(1, number)["status"] == "active"

    # A batch of readings anchored by the gateway, the feed value citing it, the sign-off.
    now_ms = int(time.time() * 1000)
    root = bytes(range(32))
    net.send(1, GATEWAY, MsgAnchorBatch(root, (SENSOR.did,), now_ms - 60_000, now_ms - 1_000,
                                        10, b""))
    batch = compute_batch_id(root, (SENSOR.did,), now_ms - 60_000, now_ms - 1_000, 10, b"")
    net.send(2, OPERATOR, MsgPublishFeedValue(LIT_FEED, now_ms - 60_000, now_ms, 120,
                                              (batch.hex(),)))
    report = hashlib.sha256(b"site visit report, district d1").hexdigest()
    net.send(3, INSPECTOR, MsgAttestMilestone(released, 0, report),
             MsgAttestMilestone(divided, 0, report))

    net.wait_until("the release", lambda: net.contract(0, released)["status"] == "completed")
    net.wait_until("the refund after the deadline",
                   lambda: net.contract(3, refunded)["status"] == "completed")
    net.wait_until("the division-by-zero outcome",
                   lambda: net.contract(1, divided)["milestones"][0]["state"]["outcome"]
                   == "division_by_zero")

    # Every node: the same app hashes at the same heights ...
    height = max(net.height(index) for index in range(4))
    for index in range(4):
        net.wait_height(index, height + 1)
    headers = [[net.header_app_hash(index, h) for h in range(2, height + 2)] for index in range(4)]
    assert all(column == headers[0] for column in headers), "nodes store different headers"
    checked = net.assert_same_app_hash()
    assert checked >= height

    # ... and the same answers at one height, which are the expected outcomes.
    answers = []
    for index in range(4):
        answer: dict[Any, Any] = {}
        for number in contracts:
            contract = net.query_at(index, "/contracts/contract", {"contract_id": number},
                                    height)
            audit = net.query_at(index, "/contracts/audit", {"contract_id": number}, height)
            answer[number] = (contract["status"],
                              [(item["state"]["status"], item["state"]["outcome"],
                                item["state"]["paid"], item["state"]["refunded"])
                               for item in contract["milestones"]],
                              contract["audit_count"], len(audit["entries"]), contract)
        answer["balances"] = tuple(
            int(net.query_at(index, "/bank/balance", {"address": who.address, "denom": DENOM},
                             height)["amount"]) for who in (CITY, CONTRACTOR))
        answers.append(answer)
    assert all(answer == answers[0] for answer in answers[1:])
    first = answers[0]
    assert first[released][:2] == ("completed", [("released", "met", AMOUNT, 0)])
    assert first[refunded][0] == "completed"
    assert first[refunded][1][0][0] == "missed" and first[refunded][1][0][3] == AMOUNT
    assert first[divided][:2] == ("active", [("pending", "division_by_zero", 0, 0)])
    for number in contracts:
        assert first[number][2] == first[number][3] > 0  # audit_count == entries in the trail
    # The city paid three escrows and got the refunded one back; the contractor was paid once.
    assert first["balances"] == (before[CITY.address] - 2 * AMOUNT,
                                 before[CONTRACTOR.address] + AMOUNT)
