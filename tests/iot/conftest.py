"""Fixtures of the IoT tests: one Mosquitto and one solo chain per test module, one PostgreSQL
server per session (a fresh database per test), the reading store's location on either
backend, and the gateway's signature verifiers (the harness itself is iot_harness.py)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from iot_harness import Broker, IotChain, start_broker, start_chain

from citychain.iot.sigverify import SIGVERIFY, SIGVERIFY_ENV
from citychain.node.tools import REPO_ROOT, find_tool
from citychain.testing.postgres import PostgresServer

_databases = itertools.count(1)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    started = start_broker(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IotChain]:
    running = start_chain(tmp_path_factory.mktemp("iot-chain") / "home")
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "readings.db"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL of our own on a free loopback port (citychain.testing.postgres)."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database on the session's PostgreSQL."""
    return postgres.create_database(f"readings_{next(_databases)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a reading store lives: a SQLite file, then a PostgreSQL database URL."""
    if request.param == "sqlite":
        return tmp_path / "readings.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def sigverify() -> Path:
    """``citychain-sigverify`` built from tools/sigverify (never skipped: Go is required)."""
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "install_sigverify.sh")], check=True,
                   stdout=sys.stderr)
    found = find_tool(SIGVERIFY, SIGVERIFY_ENV)
    assert found is not None, "scripts/install_sigverify.sh did not install citychain-sigverify"
    return found


@pytest.fixture(params=["go", "python"])
def verifier(request: pytest.FixtureRequest) -> str:
    """Each signature verifier of the gateway in turn (the Go one built first)."""
    if request.param == "go":
        request.getfixturevalue("sigverify")
    return str(request.param)
