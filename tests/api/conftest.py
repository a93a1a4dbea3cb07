"""Fixtures for gateway tests (the harness itself is api_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_harness import SoloCity, init_home

from citychain.consensus.solo.rpc import RpcServer
from citychain.node.assemble import open_solo


@pytest.fixture
def solo_city(tmp_path: Path) -> Iterator[SoloCity]:
    """A solo node (20 ms blocks) with its RPC and a gateway without rate limits."""
    home = tmp_path / "home"
    init_home(home)
    runtime = open_solo(home)
    runtime.node.block_interval = 0.02
    runtime.node.start()
    server = RpcServer(runtime.node, "127.0.0.1", 0)
    server.start()
    city = SoloCity(home, runtime, server.url)
    city.start_gateway()
    try:
        yield city
    finally:
        city.stop_gateway()
        server.stop()
        runtime.close()
