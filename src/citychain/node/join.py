"""Add a node to an existing local testnet: the directory a new organisation's node starts from.

``add_node`` creates ``nodeN`` (N = the number of nodes so far) next to the others, the same way
``init_testnet`` made them, except that the node is not in the genesis validator set:

* ``cometbft init`` makes its CometBFT home, validator key and node key;
* ``config/genesis.json`` is the network's, copied from node0 (byte for byte);
* ``config/config.toml`` is node0's (so the same consensus, mempool and p2p settings) with its
  own moniker and loopback ports (``base + 10 N``, ``+1``, ``+2``) and every existing node as a
  persistent peer; each existing node's config also lists the new one, which takes effect the
  next time that node starts (CometBFT reads its config only at start);
* a fresh organisation key in its keyring, which holds nothing on chain yet.

Started (``citychain testnet start --dir DIR --node N``), it is a full node: CometBFT block-syncs
from its peers and replays every block into its application. It becomes a validator only when a
validators-module proposal to add its consensus key passes (docs/network.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from citychain.core.crypto import PrivateKey
from citychain.node.cometbft import (
    find_cometbft,
    node_id,
    run_cometbft,
    set_config_values,
    validator_pubkey,
)
from citychain.node.keyring import Keyring
from citychain.node.supervisor import ValidatorDir
from citychain.node.testnet import (
    ORGANISATION_KEY,
    NodeInfo,
    Testnet,
    TestnetError,
    node_ports,
    ports_are_free,
)


def _peer(info: NodeInfo) -> str:
    return f"{info.node_id}@127.0.0.1:{info.p2p_port}"


def add_node(root: Path) -> NodeInfo:
    """Create the next node directory of the testnet in ``root`` and record it in the
    manifest; return its description. The running nodes are not touched.

    Raises:
        TestnetError: ``root`` is not a testnet, the node's directory exists, or its ports are
            taken.
        CometBftError: the cometbft binary is missing or ``cometbft init`` failed.
    """
    testnet = Testnet.load(root)
    index = len(testnet.nodes)
    name = f"node{index}"
    node = ValidatorDir(root / name)
    if node.root.exists():
        raise TestnetError(f"{node.root} exists but is not in {root / 'testnet.json'}; "
                           "remove it first")
    p2p, rpc, proxy = node_ports(testnet.nodes[0].p2p_port, index)  # node0's p2p is the base
    taken = {port for other in testnet.nodes
             for port in (other.p2p_port, other.rpc_port, other.proxy_port)}
    if taken & {p2p, rpc, proxy} or not ports_are_free([p2p, rpc, proxy]) or proxy > 65535:
        raise TestnetError(f"ports {p2p}-{proxy} on 127.0.0.1 for {name} are not all free")
    source = testnet.node_dir(0).cometbft_home / "config"
    binary = find_cometbft()

    try:
        run_cometbft("init", "--home", str(node.cometbft_home), binary=binary)
        config = node.cometbft_home / "config"
        shutil.copyfile(source / "genesis.json", config / "genesis.json")
        shutil.copyfile(source / "config.toml", config / "config.toml")
        set_config_values(config / "config.toml", {
            "": {"moniker": name, "proxy_app": f"tcp://127.0.0.1:{proxy}"},
            "rpc": {"laddr": f"tcp://127.0.0.1:{rpc}"},
            "p2p": {"laddr": f"tcp://127.0.0.1:{p2p}",
                    "persistent_peers": ",".join(_peer(other) for other in testnet.nodes)},
        })
        key = PrivateKey.generate()
        Keyring(node.keyring_dir).create(ORGANISATION_KEY, key)
        info = NodeInfo(index=index, name=name, p2p_port=p2p, rpc_port=rpc, proxy_port=proxy,
                        node_id=node_id(node.cometbft_home, binary), organisation=key.did,
                        validator_pubkey=validator_pubkey(node.cometbft_home).hex())
        node.settings_path.write_text(json.dumps({
            "name": name, "chain_id": testnet.chain_id, "proxy_app": info.proxy_app,
            "rpc_port": rpc, "p2p_port": p2p}, indent=2) + "\n")
        node.log_dir.mkdir(parents=True, exist_ok=True)
    except BaseException:
        shutil.rmtree(node.root, ignore_errors=True)
        raise

    Testnet(root, testnet.chain_id, (*testnet.nodes, info)).save()
    for other in testnet.nodes:  # so that a restarted node dials the newcomer too
        peers = ",".join(_peer(peer) for peer in (*testnet.nodes, info)
                         if peer.index != other.index)
        set_config_values(testnet.node_dir(other.index).cometbft_home / "config" / "config.toml",
                          {"p2p": {"persistent_peers": peers}})
    return info
