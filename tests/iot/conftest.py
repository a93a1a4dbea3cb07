"""Fixtures of the IoT tests: one Mosquitto and one solo chain per test module (the harness
itself is iot_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from iot_harness import Broker, IotChain, start_broker, start_chain


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
