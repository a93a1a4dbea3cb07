"""`citychain verify` on a chain with blocks: verified, then the first inconsistency."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cli_helpers import City, cli, one_error_line

from citychain.modules.oracle.messages import MsgAnchorBatch, MsgRegisterDevice
from citychain.testing.chain import Cast, ChainRunner, solo_home


def test_verify_reports_the_first_inconsistency(city_home: City) -> None:
    from citychain.node.assemble import open_solo

    runtime = open_solo(city_home.home)
    runtime.node.handshake()
    runtime.node.produce_block()
    runtime.node.produce_block()
    runtime.close()
    verified = cli("verify", "--home", city_home.home)
    assert verified.exit_code == 0, verified.stderr
    assert verified.stdout.startswith("chain verified: 2 blocks, 0 txs in ")

    with sqlite3.connect(city_home.home / "data" / "blocks.db") as db:
        db.execute("UPDATE blocks SET hash = zeroblob(32) WHERE height = 2")
    tampered = cli("verify", "--home", city_home.home)
    assert tampered.exit_code == 1
    line = one_error_line(tampered)
    assert line.startswith("error: chain NOT verified: height 2: stored block hash is not the "
                           "hash of the stored header (expected ")


def test_verify_checks_the_query_index_and_node_reindex_repairs_it(tmp_path: Path) -> None:
    from citychain.node.assemble import open_solo

    cast = Cast.make(devices=2, prefix="cli-reindex/")
    home, genesis, _ = solo_home(tmp_path / "home", cast)
    runtime = open_solo(home.root)
    runtime.node.handshake()
    signer = ChainRunner(runtime.app, genesis)
    gateway, sensor = cast.devices
    for raw in (signer.tx(cast.operator, MsgRegisterDevice(gateway.did, "Gateway", "centre", (),
                                                           False, 0, 0)),
                signer.tx(cast.operator, MsgRegisterDevice(sensor.did, "WasteContainer", "north",
                                                           ("fillingLevel:P1:0:100",), False, 0,
                                                           0))):
        assert runtime.node.submit(raw).ok
    runtime.node.produce_block()
    now_ms = genesis.genesis_time_ns // 1_000_000
    anchor = MsgAnchorBatch(bytes(range(32)), (sensor.did,), now_ms - 5_000, now_ms - 1_000, 3,
                            b"")
    assert runtime.node.submit(signer.tx(gateway, anchor)).ok
    assert runtime.node.produce_block().failed == 0
    runtime.close()
    assert cli("verify", "--home", home.root).exit_code == 0

    with sqlite3.connect(home.state_db) as db:
        db.execute("UPDATE query_index SET value = x'00'")
    tampered = cli("verify", "--home", home.root)
    assert tampered.exit_code == 1
    line = one_error_line(tampered)
    assert "query index entry 0405" in line and "citychain node reindex" in line, line

    repaired = cli("node", "reindex", "--home", home.root)
    assert repaired.exit_code == 0, repaired.stderr
    assert repaired.stdout.strip() == "query indexes rebuilt: 1 entry"
    assert cli("verify", "--home", home.root).exit_code == 0


def test_node_reindex_before_the_first_block_says_there_is_nothing(city_home: City) -> None:
    result = cli("node", "reindex", "--home", city_home.home)
    assert result.exit_code == 1
    assert one_error_line(result).endswith("has no state database yet ("
                                           f"{city_home.home / 'data' / 'state.db'}): "
                                           "nothing to index")
