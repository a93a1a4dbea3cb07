"""A new organisation's validator joins a running 4-validator CometBFT network by governance.

The test has its own network in a temporary directory (its own ports), so it never disturbs the
network of ``test_testnet_cometbft.py``. ``citychain testnet add-node`` creates node4, which
starts as a full node and block-syncs. Its organisation registers itself and the registrar org0
grants it the validator-org role; org0 proposes adding node4's consensus key with power 1 (1 of
5 moves less than 1/3), org1 and org2 approve (3 of the 4 powers, more than 2/3), and the
validators module returns the update from the end of the block H of the last approval. CometBFT
applies it at H + 2: the ``validators`` RPC lists the key from there, node4 signs commits of
later blocks, and all five applications keep the same app hash. A light client (the SDK through
node4's gateway) trusting only the four genesis validators verifies an answer committed by the
new set, following the change header by header.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from net_harness import NetworkProbe, prepare_cometbft
from typer.testing import CliRunner

from citychain.api.gateway import GatewaySettings
from citychain.api.server import GatewayThread
from citychain.cli.main import app
from citychain.client import Client
from citychain.client.rpc import NodeClient
from citychain.core.crypto import PrivateKey
from citychain.core.messages import Msg
from citychain.core.tx import build_tx
from citychain.modules.identity.api import ROLE_VALIDATOR_ORG
from citychain.modules.identity.messages import MsgCreateIdentity, MsgGrantRole
from citychain.modules.validators.messages import (
    MsgApproveValidatorChange,
    MsgProposeValidatorChange,
)
from citychain.node.cometbft import is_pid_alive
from citychain.node.keyring import Keyring
from citychain.node.testnet import (
    ORGANISATION_KEY,
    Testnet,
    TestnetOptions,
    init_testnet,
    start_node,
    start_testnet,
    stop_testnet,
    wait_for_rpc,
)

CHAIN_ID = "citychain-jointest"
NEW_POWER = 1  # genesis validators have power 1 each: 1 of a total of 5 is below 1/3
pytestmark = [pytest.mark.slow]


# ============================================================================ harness


@dataclass
class Net(NetworkProbe):
    root: Path
    clients: dict[int, NodeClient]

    @property
    def testnet(self) -> Testnet:
        return Testnet.load(self.root)  # the manifest grows when a node is added

    def client(self, index: int) -> NodeClient:
        if index not in self.clients:
            self.clients[index] = NodeClient(self.testnet.nodes[index].rpc_url, timeout=30)
        return self.clients[index]

    def rpc(self, index: int, method: str, **params: Any) -> Any:
        return self.client(index).call(method, **params)

    def send(self, index: int, key: PrivateKey, *messages: Msg) -> dict[str, Any]:
        """Sign with the key's committed sequence, broadcast through node ``index`` and wait
        until every node has the block; return the tx result (asserting code 0), height and
        events."""
        raw = build_tx(key, CHAIN_ID, self.sequence_of(key, index), *messages)
        done: dict[str, Any] = self.client(index).broadcast(raw)
        assert int(done["check_tx"].get("code", 0)) == 0, done
        assert int(done["tx_result"].get("code", 0)) == 0, done
        assert done["hash"].upper() == hashlib.sha256(raw).hexdigest().upper()
        for other in range(len(self.testnet.nodes)):  # so the next tx sees it on any node
            self.wait_height(other, int(done["height"]))
        return done

    def validator_keys(self, index: int, height: int) -> dict[str, int]:
        """Base64 consensus pubkey -> voting power of the set at ``height``, per node's RPC."""
        result = self.rpc(index, "validators", height=str(height), per_page="100")
        return {v["pub_key"]["value"]: int(v["voting_power"]) for v in result["validators"]}


def event_attribute(result: dict[str, Any], event_type: str, key: str) -> str:
    for event in result.get("events", []):
        if event["type"] == event_type:
            for attribute in event["attributes"]:
                if attribute["key"] == key:
                    return str(attribute["value"])
    raise AssertionError(f"no {event_type}.{key} in {result}")


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    prepare_cometbft()
    root = tmp_path / "net"
    testnet = init_testnet(root, TestnetOptions(validators=4, chain_id=CHAIN_ID))
    network = Net(root, {})
    try:
        start_testnet(testnet)
        network.wait_height(0, 2)
        yield network
    finally:
        final = Testnet.load(root)
        stop_testnet(final)
        for index in range(len(final.nodes)):  # anything a failed supervisor left behind
            for process in ("app", "cometbft", "supervisor"):
                pid = final.node_dir(index).read_pid(process)
                if pid is not None and is_pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
        for client in network.clients.values():
            client.close()


# ============================================================================ test


@pytest.mark.timeout(240)
def test_a_new_organisations_validator_joins_a_running_network_by_governance(net: Net) -> None:
    started = time.monotonic()
    # node4: a full node with its own home, ports and organisation key, on the same genesis.
    added = CliRunner().invoke(app, ["testnet", "add-node", "--dir", str(net.root)])
    assert added.exit_code == 0, added.output
    assert "start it with: citychain testnet start" in added.output and "--node 4" in added.output
    testnet = net.testnet
    info = testnet.nodes[4]
    assert info.name == "node4" and len(testnet.nodes) == 5
    assert len({p for n in testnet.nodes for p in (n.p2p_port, n.rpc_port, n.proxy_port)}) == 15
    node4 = testnet.node_dir(4)
    assert ((node4.cometbft_home / "config" / "genesis.json").read_bytes()
            == (testnet.node_dir(0).cometbft_home / "config" / "genesis.json").read_bytes())
    key_file = json.loads((node4.cometbft_home / "config" / "priv_validator_key.json")
                          .read_text())
    pubkey = base64.b64decode(key_file["pub_key"]["value"])
    assert pubkey.hex() == info.validator_pubkey
    address = str(key_file["address"]).upper()
    assert pubkey not in {bytes.fromhex(n.validator_pubkey) for n in testnet.nodes[:4]}

    start_node(testnet, 4)
    wait_for_rpc(testnet, [4])
    # It catches up: same app hash as the validators at a common height.
    deadline = time.monotonic() + 60
    while net.rpc(4, "status")["sync_info"]["catching_up"] or net.height(4) < net.height(0) - 1:
        assert time.monotonic() < deadline, "node4 did not catch up\n" + net.logs(4)
        time.sleep(0.2)
    net.assert_same_app_hash([0, 4])
    assert int(net.rpc(4, "net_info")["n_peers"]) >= 1
    genesis_set = net.validator_keys(0, net.height(0))
    assert len(genesis_set) == 4 and key_file["pub_key"]["value"] not in genesis_set

    # The organisation registers itself; the registrar org0 grants it validator-org.
    org_key = Keyring(node4.keyring_dir).load(ORGANISATION_KEY)
    assert org_key.did == info.organisation
    orgs = [Keyring(testnet.node_dir(i).keyring_dir).load(ORGANISATION_KEY) for i in range(4)]
    net.send(4, org_key, MsgCreateIdentity(org_key.public_key))
    net.send(0, orgs[0], MsgGrantRole(org_key.did, ROLE_VALIDATOR_ORG))
    account = net.query(0, "/identity/account", {"did": org_key.did})
    assert ROLE_VALIDATOR_ORG in account["roles"]

    # org0 proposes (its approval counts: 1 of 4), org1 and org2 approve (3 of 4 > 2/3).
    proposed = net.send(0, orgs[0], MsgProposeValidatorChange(
        "add", pubkey, NEW_POWER, org_key.did, "node4"))
    proposal_id = int(event_attribute(proposed["tx_result"], "validator_change_proposed",
                                      "proposal_id"))
    net.send(1, orgs[1], MsgApproveValidatorChange(proposal_id))
    assert net.query(1, "/validators/proposal", {"id": proposal_id})["status"] == "open"
    passed = net.send(2, orgs[2], MsgApproveValidatorChange(proposal_id))
    event_attribute(passed["tx_result"], "validator_change_passed", "proposal_id")
    height = int(passed["height"])  # the end of this block returns the validator update

    net.wait_height(0, height)  # node0 may be a block behind node2
    results = net.rpc(0, "block_results", height=str(height))
    updates = results.get("validator_updates") or []
    assert len(updates) == 1 and key_file["pub_key"]["value"] in json.dumps(updates), results
    record = net.query(2, "/validators/validator", {"pubkey": pubkey.hex()})
    assert record["organisation"] == org_key.did and record["power"] == NEW_POWER

    # CometBFT applies an update of block H from H + 2; every node's RPC says so.
    net.wait_height(0, height + 3)
    for index in range(5):
        net.wait_height(index, height + 2)
        assert key_file["pub_key"]["value"] not in net.validator_keys(index, height + 1)
        joined = net.validator_keys(index, height + 2)
        assert joined.get(key_file["pub_key"]["value"]) == NEW_POWER, joined
        assert len(joined) == 5

    # node4 votes: its address is among the commit signatures of a later block.
    signed_at = None
    for candidate in range(height + 2, height + 30):
        net.wait_height(0, candidate + 1)
        commit = net.rpc(0, "commit", height=str(candidate))["signed_header"]["commit"]
        if any(str(sig.get("validator_address", "")).upper() == address
               and sig.get("signature") for sig in commit["signatures"]):
            signed_at = candidate
            break
    assert signed_at is not None, "node4 signed none of 28 commits\n" + net.logs(4)

    # All five applications agree, and the chain keeps going with five validators.
    net.wait_height(0, signed_at + 2)
    net.assert_same_app_hash([0, 1, 2, 3, 4])
    net.assert_same_app_hash([4, 0, 1, 2, 3])

    # A citizen's SDK trusting only the genesis (four validators) verifies an answer served by
    # the newcomer's gateway after the change: the light verifier follows the set from 4 to 5.
    gateway = GatewayThread(GatewaySettings(node_url=info.rpc_url, rate_limit=0)).start()
    try:
        genesis = testnet.node_dir(0).cometbft_home / "config" / "genesis.json"
        with Client(gateway.url, trusted_genesis=genesis) as client:
            answer = client.query("validators", "validator", pubkey=pubkey.hex(), verify=True)
            assert answer.verified and answer.value["power"] == NEW_POWER
            assert answer.height > height + 2  # committed by a header the new set signed
    finally:
        gateway.stop()
    assert time.monotonic() - started < 180, "the join took more than 3 minutes"
