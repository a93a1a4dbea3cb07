"""Fixtures for CLI tests: an initialised home, and the same home with its node running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import GENESIS_TIME_NS, City, cli

from citychain.consensus.solo.rpc import RpcServer
from citychain.node.assemble import open_solo


@pytest.fixture
def city_home(tmp_path: Path) -> City:
    """A home with admin (validator-org, registrar, treasury), alice (citizen, 1000 city) and
    bob (citizen, 5 city)."""
    home = tmp_path / "home"
    result = cli("init", "--home", home, "--chain-id", "test-city",
                 "--genesis-time-ns", GENESIS_TIME_NS,
                 "--account", "alice:citizen", "--account", "bob:citizen",
                 "--balance", "alice:1000000000", "--balance", "bob:5000000")
    assert result.exit_code == 0, result.stderr
    return City(home)


@pytest.fixture
def live_city(city_home: City) -> Iterator[City]:
    """city_home with its solo node and RPC server running in this process."""
    runtime = open_solo(city_home.home)
    runtime.node.block_interval = 0.02
    runtime.node.start()
    server = RpcServer(runtime.node, "127.0.0.1", 0)
    server.start()
    city_home.url = server.url
    # Block 1 (bob becomes an auditor): from here on there is a signed header to verify against.
    first = cli("tx", "identity", "grant-role", "--from", "admin", "--did", city_home.did("bob"),
                "--role", "auditor", "--home", city_home.home, "--node", city_home.url)
    assert first.exit_code == 0, first.stderr
    try:
        yield city_home
    finally:
        server.stop()
        runtime.close()
