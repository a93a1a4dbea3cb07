"""The simulator: same seed -> same readings; plausible values over a simulated day (inside the
declared ranges, bins emptied, lights failing and repaired, PM2.5 peaking in the rush hours);
readings pass the gateway's stateless checks; paced publishing follows the real clock."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

from citychain.iot.reading import parse_reading
from citychain.iot.simulator import (
    DAY_MS,
    HOUR_MS,
    STREAMS,
    Simulation,
    make_devices,
    run_simulation,
)

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
