"""The CLI against a real CometBFT node: send a transfer, read it back plain and proven, show the
tx with its inclusion proof, and refuse to verify against a genesis naming another validator.

One single-validator CometBFT node runs the application (the harness of test_abci_server.py).
Its CometBFT home sits at ``node0/cometbft`` and Alice's key in ``node0/keyring``, so ``--home
node0`` is laid out like a testnet node directory and supplies the genesis to trust.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import test_abci_server as harness  # the node harness; importing it builds CometBFT (never skip)
from typer.testing import CliRunner, Result

from citychain.cli.main import app
from citychain.client.cometbft import TrustedBlock
from citychain.client.cometbft_rpc import CometRpcClient, is_cometbft_status, open_node
from citychain.core.crypto import PrivateKey
from citychain.node.keyring import Keyring

DENOM = harness.DENOM
BOB = harness.BOB


def cli(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env={"CITYCHAIN_HOME": None,
                                                               "CITYCHAIN_NODE": None})


def one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@dataclass
class Network:
    url: str
    home: Path
    """A testnet-node-like directory: cometbft/config/genesis.json and keyring/alice.json."""
    genesis_path: Path
    tx_hash: str
    tmp: Path

    def args(self, *args: object) -> list[object]:
        return [*args, "--home", self.home, "--node", self.url]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """One validator running the application; Alice sends Bob 250 ucity through the CLI.
    ``node0/validator.json`` names the node's RPC port, as in a testnet node directory."""
    tmp = tmp_path_factory.mktemp("cli-network")
    home = tmp / "node0"
    app_process = harness.AppProcess(tmp / "state.db", tmp / "app.log")
    app_process.start()
    node = harness.CometNode(home / "cometbft", f"tcp://127.0.0.1:{app_process.port}")
    try:
        node.init(harness.CHAIN_ID, harness.app_state())
        node.start()
        node.wait_for_height(1)
        Keyring(home / "keyring").create("alice", harness.ALICE)
        (home / "validator.json").write_text(json.dumps({"name": "node0",
                                                         "rpc_port": node.rpc_port}))
        url = f"http://127.0.0.1:{node.rpc_port}"
        sent = cli("tx", "bank", "transfer", "--from", "alice", "--to", BOB.did,
                   "--denom", DENOM, "--amount", 250, "--home", home, "--node", url)
        assert sent.exit_code == 0, sent.stderr
        match = re.search(r"committed at height (\d+): tx ([0-9a-f]{64})", sent.stdout)
        assert match is not None, sent.stdout
        yield Network(url, home, home / "cometbft" / "config" / "genesis.json", match[2], tmp)
    except BaseException:
        print(harness.tail(node.log), harness.tail(app_process.log), sep="\n")
        raise
    finally:
        node.kill()
        app_process.kill()
        node.http.close()


def test_the_node_is_detected_as_cometbft(network: Network) -> None:
    with open_node(network.url) as client:
        assert isinstance(client, CometRpcClient)
        assert is_cometbft_status(client.status())
    assert not is_cometbft_status({"node_info": {"network": "c", "moniker": "solo"}})


def test_plain_query_and_tx_show(network: Network) -> None:
    balance = cli(*network.args("query", "balance", BOB.did, DENOM, "--json"))
    assert balance.exit_code == 0, balance.stderr
    answer = json.loads(balance.stdout)
    assert answer["value"]["amount"] == 250 and answer["verified"] is False
    shown = cli(*network.args("tx", "show", network.tx_hash))
    assert shown.exit_code == 0, shown.stderr
    assert f"tx {network.tx_hash}" in shown.stdout and "result ok" in shown.stdout
    assert "message citychain.bank.v1.MsgTransfer" in shown.stdout
    assert "verified" not in shown.stdout


def test_proven_balance_from_the_testnet_home(network: Network) -> None:
    result = cli(*network.args("query", "balance", BOB.did, DENOM, "--prove"))
    assert result.exit_code == 0, result.stderr
    assert '"amount": 250' in result.stdout
    [line] = [x for x in result.stdout.splitlines() if x.startswith("verified: ")]
    assert re.fullmatch(r"verified: proof checked against app hash [0-9a-f]{64} of header \d+ "
                        r"signed by validators holding 10 of 10 voting power \(trusted from "
                        rf"{re.escape(str(network.genesis_path))}\)", line), line


def test_the_testnet_home_alone_names_node_key_and_genesis(network: Network) -> None:
    """--home node0 without --node: the RPC port comes from validator.json."""
    result = cli("query", "balance", BOB.did, DENOM, "--prove", "--home", network.home)
    assert result.exit_code == 0, result.stderr
    assert "verified: proof checked against app hash" in result.stdout


def test_proven_module_query_and_key_with_genesis_file(network: Network) -> None:
    genesis = ["--genesis", network.genesis_path]
    result = cli(*network.args("query", "bank", "balance", "--param", f"did={BOB.did}",
                               "--param", f"denom={DENOM}", "--prove", *genesis, "--json"))
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["value"]["amount"] == 250 and answer["verified"] is True
    absent = cli(*network.args("query", "key", "ff00", "--prove", *genesis))
    assert absent.exit_code == 0, absent.stderr
    assert absent.stdout.startswith("not found") and "verified: proof" in absent.stdout


def test_proven_tx_show(network: Network) -> None:
    result = cli(*network.args("tx", "show", network.tx_hash, "--prove"))
    assert result.exit_code == 0, result.stderr
    assert "result ok" in result.stdout
    assert re.search(r"^verified: inclusion proof checked against data hash [0-9a-f]{64} of "
                     r"header \d+ signed by validators holding 10 of 10 voting power",
                     result.stdout, re.MULTILINE), result.stdout


def test_trust_node_without_a_genesis(network: Network) -> None:
    elsewhere = network.tmp / "empty-home"
    refused = cli("query", "balance", BOB.did, DENOM, "--prove", "--home", elsewhere,
                  "--node", network.url)
    assert refused.exit_code == 2
    assert "--genesis FILE" in one_error_line(refused)
    trusted = cli("query", "balance", BOB.did, DENOM, "--prove", "--trust-node",
                  "--home", elsewhere, "--node", network.url)
    assert trusted.exit_code == 0, trusted.stderr
    assert f"trusted from the genesis served by {network.url}" in trusted.stdout


def _foreign_genesis(network: Network) -> Path:
    genesis: dict[str, Any] = json.loads(network.genesis_path.read_text())
    stranger = PrivateKey.from_secret("test_cli_network_proofs/stranger")
    [validator] = genesis["validators"]
    validator.pop("address", None)
    validator["pub_key"]["value"] = base64.b64encode(stranger.public_key).decode()
    path = network.tmp / "foreign-genesis.json"
    path.write_text(json.dumps(genesis))
    return path


def test_invalid_genesis_with_another_validator(network: Network) -> None:
    foreign = _foreign_genesis(network)
    for command in (("query", "balance", BOB.did, DENOM), ("tx", "show", network.tx_hash),
                    ("query", "key", "ff00")):
        result = cli(*network.args(*command, "--prove", "--genesis", foreign))
        assert result.exit_code == 4, (command, result.stdout, result.stderr)
        line = one_error_line(result)
        assert "verification failed (validator set does not match the header)" in line, line
        assert "verified" not in result.stdout


def test_invalid_testnet_home_with_another_validator(network: Network) -> None:
    home = network.tmp / "tampered-node"
    (home / "cometbft" / "config").mkdir(parents=True)
    shutil.copy(_foreign_genesis(network), home / "cometbft" / "config" / "genesis.json")
    result = cli("query", "balance", BOB.did, DENOM, "--prove", "--home", home,
                 "--node", network.url)
    assert result.exit_code == 4, result.stderr
    one_error_line(result)



def test_a_genesis_file_with_initial_height_zero_starts_at_one(network: Network) -> None:
    """``cometbft init`` writes initial_height "0", which CometBFT reads as 1."""
    genesis = json.loads(network.genesis_path.read_text())
    assert genesis["initial_height"] in ("0", "1")
    for written in ("0", "1", None):
        trusted = TrustedBlock.genesis({**genesis, "initial_height": written})
        assert trusted.height == 0
