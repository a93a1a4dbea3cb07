"""`citychain verify` on a chain with blocks: verified, then the first inconsistency."""

from __future__ import annotations

import sqlite3

from cli_helpers import City, cli, one_error_line


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
