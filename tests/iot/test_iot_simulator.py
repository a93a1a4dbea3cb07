"""The simulator: same seed -> same readings; plausible values over a simulated day (inside the
declared ranges, bins emptied, lights failing and repaired, PM2.5 peaking in the rush hours);
readings pass the gateway's stateless checks; paced publishing follows the real clock."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from iot_harness import Broker, IotChain, now_ms, wait_for
from typer.testing import CliRunner

from citychain.cli.main import app as cli_app
from citychain.iot.chain import ChainLink
from citychain.iot.gateway import Gateway, GatewayConfig
from citychain.iot.reading import parse_reading
from citychain.iot.simulator import (
    DAY_MS,
    HOUR_MS,
    STREAMS,
    Simulation,
    make_devices,
    run_simulation,
)
from citychain.iot.store import ReadingStore

START_MS = 1_700_000_000_000


def simulate(seed: int, count: int = 16, speed: float = 1000.0,
             span_ms: int = DAY_MS) -> tuple[Simulation, list]:  # type: ignore[type-arg]
    devices = make_devices(count, seed)
    simulation = Simulation(devices, chain_id="sim-city", seed=seed, start_ms=START_MS,
                            speed=speed)
    return simulation, list(simulation.readings(span_ms))


def test_same_seed_gives_the_same_readings() -> None:
    _, first = simulate(11)
    _, again = simulate(11)
    _, other = simulate(12)
    assert [r.reading_id for r in first] == [r.reading_id for r in again]
    assert [r.to_json() for r in first] == [r.to_json() for r in again]
    assert [r.value for r in first] != [r.value for r in other]


def test_resumed_generation_equals_one_run() -> None:
    _simulation, whole = simulate(3, span_ms=6 * HOUR_MS)
    parts = Simulation(make_devices(16, 3), chain_id="sim-city", seed=3, start_ms=START_MS,
                       speed=1000.0)
    resumed = list(parts.readings(HOUR_MS)) + list(parts.readings(6 * HOUR_MS))
    assert [r.reading_id for r in resumed] == [r.reading_id for r in whole]


def test_values_are_plausible_over_a_day() -> None:
    simulation, readings = simulate(5, count=24)
    by_device = defaultdict(list)
    for reading in readings:
        by_device[reading.device].append(reading)
    kinds = Counter()
    for index, device in enumerate(simulation.devices):
        series = by_device[device.did]
        name, _, low, high = STREAMS[device.device_type]
        assert series, device
        assert all(r.stream == name and low <= r.value <= high for r in series)
        # seq and ts strictly increase per device (the gateway's replay and order checks)
        assert all(a.seq < b.seq and a.ts_ms < b.ts_ms for a, b in itertools.pairwise(series))
        kinds.update(f"{device.device_type}:{event}" for event in simulation.events(index))
        if device.device_type == "WasteContainer":
            rises = sum(1 for a, b in itertools.pairwise(series) if b.value > a.value)
            assert rises > len(series) // 2           # it fills most of the time
    assert kinds["WasteContainer:emptied"] >= 6       # every bin meets a collection round
    assert kinds["StreetLight:failed"] >= 1
    assert kinds["StreetLight:repaired"] >= 1
    air = [r for r in readings if r.stream == "pm25"]
    sim_hour = {r.reading_id: ((r.ts_ms - START_MS) * 1000 // HOUR_MS + 6) % 24 for r in air}
    rush = [r.value for r in air if sim_hour[r.reading_id] in (8, 9, 18)]
    night = [r.value for r in air if sim_hour[r.reading_id] in (1, 2, 3)]
    assert sum(rush) / len(rush) > sum(night) / len(night) + 5
    delays = [r.value for r in readings if r.stream == "delay"]
    assert min(delays) < 60 < max(delays)


def test_readings_use_the_gateway_wire_format() -> None:
    _, readings = simulate(9, count=8, span_ms=HOUR_MS)
    for reading in readings:
        assert parse_reading(reading.to_json().encode(), reading.topic) == reading


def test_paced_run_stamps_real_time() -> None:
    devices = make_devices(8, 1)
    simulation = Simulation(devices, chain_id="sim-city", seed=1, start_ms=START_MS,
                            speed=3600.0)
    now = [START_MS]
    sent = []

    def sleep(seconds: float) -> None:
        now[0] += int(seconds * 1000)

    stats = run_simulation(simulation, sent.append, 10.0, clock_ms=lambda: now[0], sleep=sleep)
    assert stats.published == len(sent) > 0
    assert sum(stats.by_type.values()) == stats.published
    assert all(START_MS <= r.ts_ms <= START_MS + 10_000 for r in sent)
    assert now[0] <= START_MS + 10_000


def test_cli_sim_feeds_the_gateway_and_a_feed_verifies(broker: Broker, chain: IotChain,
                                                       store_path: Path) -> None:
    """`citychain sim` (a subprocess) registers its devices and publishes; the gateway anchors;
    `citychain iot feed publish` and `iot feed verify` (exit 0, then 4 once tampered)."""
    config = GatewayConfig(broker_host="127.0.0.1", broker_port=broker.port,
                           client_id="gw-sim-cli", stats_seconds=60, batch_seconds=0.3)
    link = ChainLink(chain.rpc_url, chain.key("gw"))
    store = ReadingStore(store_path)
    gateway = Gateway(config, store, link)
    common = ["--home", str(chain.home), "--node", chain.rpc_url]
    env = {**os.environ, "CITYCHAIN_HOME": "", "CITYCHAIN_NODE": ""}
    try:
        gateway.start()
        assert gateway.ready.wait(10)
        start = now_ms()
        done = subprocess.run(
            [str(Path(sys.executable).parent / "citychain"), "sim", "--broker", broker.address,
             *common, "--devices", "8", "--seconds", "3", "--speed", "3600", "--seed", "4",
             "--operator", "op"], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        assert "sim: 8 devices registered" in done.stdout
        published = int(done.stdout.split("published=")[1].split()[0])
        assert f"acknowledged={published}" in done.stdout and published > 50
        wait_for(lambda: store.counts().get("readings_batched") == published
                 and not store.batches("sealed"), timeout=30, what="the sim's readings anchored")
    finally:
        gateway.stop()
        store.close()
        link.close()
    end = now_ms()
    runner = CliRunner()
    declared = runner.invoke(cli_app, [
        "tx", "oracle", "declare-feed", "--from", "op", *common, "--feed-id", "bins-centre",
        "--description", "feed/v1 stream=fillingLevel type=WasteContainer sample=last -- fill",
        "--unit", "P1", "--scale", "1", "--aggregation", "mean", "--coverage", "centre"])
    assert declared.exit_code == 0, declared.output
    publish = runner.invoke(cli_app, [
        "iot", "feed", "publish", "bins-centre", "--from", "op", *common, "--store",
        str(store_path), "--window-start-ms", str(start), "--window-end-ms", str(end), "--json"])
    assert publish.exit_code == 0, publish.output
    value = json.loads(publish.stdout)
    assert value["published"] and value["samples"] == 1     # one bin in the centre (of 8)
    verify = runner.invoke(cli_app, ["iot", "feed", "verify", "bins-centre", *common,
                                     "--store", str(store_path), "--json"])
    assert verify.exit_code == 0, verify.output
    assert json.loads(verify.stdout)["value"] == value["value"]
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE readings SET value = value + 1 WHERE stream = 'fillingLevel'")
    tampered = runner.invoke(cli_app, ["iot", "feed", "verify", "bins-centre", *common,
                                       "--store", str(store_path)])
    assert tampered.exit_code == 4, tampered.output
    assert "SourceReadingTamperedError" in tampered.stderr


def test_stop_ends_a_slow_run_at_once() -> None:
    simulation = Simulation(make_devices(4, 2), chain_id="sim-city", seed=2,
                            start_ms=now_ms(), speed=1.0)
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    began = time.monotonic()
    stats = run_simulation(simulation, lambda reading: None, 3600.0, stop=stop)
    assert time.monotonic() - began < 5
    assert stats.published <= 4
