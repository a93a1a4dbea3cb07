"""Feeds: the aggregation functions (integers, one rounding rule), recipes, and end to end —
simulator -> Mosquitto -> gateway -> anchored batches -> a published feed value that recomputes
from the batches it names (also after a device's key rotation), and fails to when a reading is
tampered or the batches are wrong."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from iot_harness import CHAIN_ID, Broker, IotChain, now_ms, running_gateway, wait_for

from citychain.core import codec
from citychain.core.crypto import PrivateKey
from citychain.core.tx import TxBody, sign_tx
from citychain.iot.feeds import (
    DeviceRecord,
    EmptyWindowError,
    FeedComputation,
    FeedDefinition,
    FeedNode,
    FeedRecipe,
    FeedRecipeError,
    FeedValueMismatchError,
    SourceBatchUnusedError,
    SourceReadingTamperedError,
    aggregate_batches,
    compute_aggregate,
    compute_feed_value,
    compute_mean,
    compute_ratio_bp,
    divide_rounded,
    parse_recipe,
    publish_feed_value,
    recompute_feed_value,
)
from citychain.iot.reading import Reading, sign_reading
from citychain.iot.simulator import (
    MqttSink,
    Simulation,
    make_devices,
    register_devices,
    run_simulation,
)
from citychain.iot.store import ReadingStore
from citychain.iot.verify import RpcProver
from citychain.modules.identity.messages import MsgRotateKey, rotation_sign_bytes

values = st.lists(st.integers(min_value=-(2**40), max_value=2**40), min_size=1, max_size=60)


def test_divide_rounded_is_half_away_from_zero() -> None:
    assert [divide_rounded(n, 2) for n in (-3, -1, 0, 1, 3, 5)] == [-2, -1, 0, 1, 2, 3]
    assert divide_rounded(7, 3) == 2 and divide_rounded(8, 3) == 3
    assert divide_rounded(-8, 3) == -3 and divide_rounded(8, -3) == -3
    with pytest.raises(ZeroDivisionError):
        divide_rounded(1, 0)


@given(st.integers(min_value=-(10**30), max_value=10**30),
       st.integers(min_value=1, max_value=10**9))
def test_divide_rounded_is_nearest(numerator: int, denominator: int) -> None:
    result = divide_rounded(numerator, denominator)
    assert abs(result * denominator - numerator) * 2 <= denominator


@given(values, st.integers(min_value=0, max_value=3))
def test_mean_lies_between_min_and_max(sample: list[int], scale: int) -> None:
    mean = compute_mean(sample, scale)
    assert min(sample) * 10**scale <= mean <= max(sample) * 10**scale


@given(values, st.integers(min_value=-(2**40), max_value=2**40))
def test_ratio_bp_is_within_basis_points(sample: list[int], bound: int) -> None:
    ratio = compute_ratio_bp(sample, lambda value: value <= bound)
    assert 0 <= ratio <= 10_000
    if all(value <= bound for value in sample):
        assert ratio == 10_000
    if all(value > bound for value in sample):
        assert ratio == 0


@given(values, st.sampled_from(["count", "mean", "sum", "min", "max", "ratio_bp"]),
       st.randoms(use_true_random=False))
def test_aggregates_do_not_depend_on_order(sample: list[int], kind: str, rng) -> None:  # type: ignore[no-untyped-def]
    where = (lambda value: value % 2 == 0) if kind in ("count", "ratio_bp") else None
    shuffled = list(sample)
    rng.shuffle(shuffled)
    assert compute_aggregate(kind, sample, 0, where) == compute_aggregate(kind, shuffled, 0, where)


def test_invalid_empty_window() -> None:
    for kind in ("mean", "min", "max"):
        with pytest.raises(EmptyWindowError):
            compute_aggregate(kind, [], 0)
    assert compute_aggregate("count", [], 0) == 0
    assert compute_aggregate("sum", [], 0) == 0


def test_recipe_round_trips() -> None:
    recipe = FeedRecipe("status", "StreetLight", "last", "eq", 1)
    assert recipe.to_text() == "feed/v1 stream=status type=StreetLight sample=last where=eq:1"
    assert parse_recipe(recipe.to_text() + " -- working street lights") == recipe
    assert parse_recipe("feed/v1 stream=pm25") == FeedRecipe("pm25")


@pytest.mark.parametrize("text", [
    "mean pm2.5", "feed/v1", "feed/v1 stream=pm25 stream=pm25", "feed/v1 stream=pm25 colour=red",
    "feed/v1 stream=pm25 sample=first", "feed/v1 stream=pm25 where=about:3",
    "feed/v1 stream=9x"])
def test_invalid_recipe(text: str) -> None:
    with pytest.raises(FeedRecipeError):
        parse_recipe(text)


def _feed(aggregation: str, description: str, scale: int = 0) -> dict[str, object]:
    return {"feed_id": "f-test", "publisher": "did:city:" + "0" * 40, "aggregation": aggregation,
            "scale": scale, "unit": "C62", "coverage": ["centre"], "description": description}


@pytest.mark.parametrize(("aggregation", "description", "scale"), [
    ("ratio_bp", "feed/v1 stream=status", 0), ("mean", "feed/v1 stream=pm25 where=ge:3", 0),
    ("count", "feed/v1 stream=status", 1)])
def test_invalid_recipe_for_aggregation(aggregation: str, description: str, scale: int) -> None:
    with pytest.raises(FeedRecipeError):
        FeedDefinition.from_value(_feed(aggregation, description, scale))


def test_aggregate_selects_covered_devices_window_and_last_sample() -> None:
    lights = [PrivateKey.from_secret(f"light-{i}") for i in range(3)]
    districts = {lights[0].did: "centre", lights[1].did: "centre", lights[2].did: "north"}

    def device(did: str) -> DeviceRecord | None:
        return DeviceRecord(did, "StreetLight", districts[did]) if did in districts else None

    readings = [
        sign_reading(lights[0], "c", "status", 1, 1000, 1),
        sign_reading(lights[0], "c", "status", 2, 2000, 0),   # light 0 failed: its last is 0
        sign_reading(lights[1], "c", "status", 1, 1500, 1),
        sign_reading(lights[1], "c", "status", 2, 5000, 0),   # outside [1000, 3000)
        sign_reading(lights[2], "c", "status", 1, 1200, 1),   # not covered (north)
    ]
    batches = [(b"\x01" * 32, readings[:2]), (b"\x02" * 32, readings[2:]), (b"\x03" * 32, [])]
    feed = FeedDefinition.from_value(_feed(
        "count", "feed/v1 stream=status type=StreetLight sample=last where=eq:1"))
    result = aggregate_batches(feed, 1000, 3000, batches, device)
    assert result.value == 1                       # light 1 works, light 0 failed
    assert result.source_batch_ids == ((b"\x01" * 32).hex(), (b"\x02" * 32).hex())
    assert (result.sample_count, result.reading_count) == (2, 3)
    ratio = FeedDefinition.from_value(_feed("ratio_bp", "feed/v1 stream=status where=eq:1"))
    assert aggregate_batches(ratio, 1000, 3000, batches, device).value == 6667   # 2 of 3


# ------------------------------------------------------------------------------------ end to end


def copy_store(source: Path, target: Path) -> ReadingStore:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return ReadingStore(target)


def rotate_key(chain: IotChain, old: PrivateKey, new: PrivateKey) -> None:
    """Rotate ``old``'s account to ``new`` in a committed transaction."""
    account = codec.decode(chain.client.query("/identity/account",
                                              {"address": old.address}).value)
    sequence = int(account["sequence"])
    proof = new.sign(rotation_sign_bytes(CHAIN_ID, old.did, new.public_key, sequence))
    raw = sign_tx(old, TxBody(CHAIN_ID, old.address, sequence,
                              (MsgRotateKey(new.public_key, proof),)))
    result = chain.client.broadcast(raw, commit=True)
    assert (result["tx_result"] or result["check_tx"])["code"] == 0, result


def test_a_feed_value_recomputes_from_its_batches(broker: Broker, chain: IotChain,
                                                 store_path: Path, tmp_path: Path) -> None:
    seed = 2026
    devices = make_devices(16, seed)
    node = FeedNode(chain.rpc_url, chain.key("op"))
    prover = RpcProver(chain.rpc_url, chain.genesis_path)
    try:
        assert register_devices(node.client, chain.key("op"), CHAIN_ID, devices) == 16
        assert register_devices(node.client, chain.key("op"), CHAIN_ID, devices) == 0
        with running_gateway(broker, chain, store_path, batch_seconds=0.3) as gateway:
            sink = MqttSink("127.0.0.1", broker.port)
            published: list[Reading] = []

            def publish(reading: Reading) -> None:
                published.append(reading)
                sink.publish(reading)

            simulation = Simulation(devices, chain_id=CHAIN_ID, seed=seed, start_ms=now_ms(),
                                    speed=3600.0)
            stats = run_simulation(simulation, publish, 4.0)
            assert sink.flush() == stats.published == len(published) > 300
            sink.close()
            wait_for(lambda: gateway.store.counts().get("readings_batched") == len(published)
                     and not gateway.store.batches("sealed"), timeout=30,
                     what="every simulated reading anchored")
            assert gateway.stats()["accepted"] == len(published)
        store = ReadingStore(store_path)
        start = min(r.ts_ms for r in published)
        end = max(r.ts_ms for r in published) + 1

        # Working street lights in the centre: each centre light's last status in the window.
        node.declare_feed("lights-centre", FeedRecipe("status", "StreetLight", "last", "eq", 1),
                          aggregation="count", unit="C62", scale=0, coverage=["centre"],
                          text="working street lights")
        feed = node.feed("lights-centre")
        computed = compute_feed_value(store, feed, start, end, node.device,
                                      max_sources=node.max_sources())
        centre_lights = {d.did for d in devices
                         if d.device_type == "StreetLight" and d.district == "centre"}
        last = {r.device: r.value for r in published if r.device in centre_lights}
        assert computed.value == sum(last.values())
        assert computed.sample_count == len(centre_lights) == 2
        publish_feed_value(node, computed)
        on_chain = node.query("/oracle/feed_value", {"feed_id": "lights-centre"})
        assert on_chain["value"] == computed.value
        assert tuple(on_chain["source_batch_ids"]) == computed.source_batch_ids
        verified = recompute_feed_value(store, prover, "lights-centre")
        assert verified.computation == computed

        # A centre light rotates its key: its readings anchored before still recompute (each
        # is checked against the key in force when its batch was anchored).
        light = next(d for d in devices if d.did in centre_lights)
        rotate_key(chain, light.key, PrivateKey.from_secret("feeds/rotated-light"))
        assert recompute_feed_value(store, prover, "lights-centre").computation == computed

        # A tampered reading (in a copy of the store) no longer recomputes.
        tampered = copy_store(store_path, tmp_path / "tampered.db")
        try:
            source = bytes.fromhex(computed.source_batch_ids[0])
            leaf = tampered.get_batch(source).leaves[0]  # type: ignore[union-attr]
            tampered._db.execute("UPDATE readings SET value = value + 1 WHERE id = ?", (leaf,))
            with pytest.raises(SourceReadingTamperedError):
                recompute_feed_value(tampered, prover, "lights-centre")
        finally:
            tampered.close()

        # Mean PM2.5 over the centre (scale 1: tenths), published as computed: recomputes.
        node.declare_feed("pm25-centre", FeedRecipe("pm25", "AirQualityObserved"),
                          aggregation="mean", unit="GQ", scale=1, coverage=["centre"])
        mean = compute_feed_value(store, node.feed("pm25-centre"), start, end, node.device)
        publish_feed_value(node, mean)
        assert recompute_feed_value(store, prover, "pm25-centre").computation.value == mean.value

        # A value naming the wrong batches: one source left out changes the recomputed count...
        node.declare_feed("pm25-reports", FeedRecipe("pm25"), aggregation="count", unit="C62",
                          scale=0, coverage=["centre", "north", "south"])
        middle = (start + end) // 2
        reports = compute_feed_value(store, node.feed("pm25-reports"), start, middle,
                                     node.device)
        assert len(reports.source_batch_ids) > 1
        publish_feed_value(node, replace(reports,
                                         source_batch_ids=reports.source_batch_ids[:-1]))
        with pytest.raises(FeedValueMismatchError) as mismatch:
            recompute_feed_value(store, prover, "pm25-reports")
        assert mismatch.value.found == reports.value
        # ...and a batch holding none of the window's readings is refused as unused.
        pm25_times = {r.ts_ms for r in published if r.stream == "pm25"}
        bus = next(r for r in reversed(published)
                   if r.stream == "delay" and r.ts_ms > middle and r.ts_ms not in pm25_times)
        batch_id = store.get_reading(bus.reading_id).batch_id  # type: ignore[union-attr]
        assert batch_id is not None
        publish_feed_value(node, FeedComputation("pm25-reports", bus.ts_ms, bus.ts_ms + 1, 0,
                                                 (batch_id.hex(),), 0, 0))
        with pytest.raises(SourceBatchUnusedError):
            recompute_feed_value(store, prover, "pm25-reports")
        store.close()
    finally:
        prover.close()
        node.close()
