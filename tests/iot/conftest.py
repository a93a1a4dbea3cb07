"""Fixtures of the IoT tests: one Mosquitto and one solo chain per test module, one PostgreSQL
server per session (a fresh database per test), and the reading store's location on either
backend (the harness itself is iot_harness.py)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from iot_harness import Broker, IotChain, start_broker, start_chain

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
